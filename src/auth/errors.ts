/**
 * etcd's auth errors (api/v3rpc/rpctypes/error.go): the gRPC code and the exact message, as
 * clients match on them (clientv3 re-authenticates on "invalid auth token" and "revision of
 * auth store is old").
 */
import { status } from '@grpc/grpc-js';
import { namedErrors } from '../etcd/errors.js';

export const AuthErrors = namedErrors({
  rootUserNotExist: [status.FAILED_PRECONDITION, 'etcdserver: root user does not exist'],
  rootRoleNotExist: [status.FAILED_PRECONDITION, 'etcdserver: root user does not have root role'],
  userAlreadyExist: [status.FAILED_PRECONDITION, 'etcdserver: user name already exists'],
  userEmpty: [status.INVALID_ARGUMENT, 'etcdserver: user name is empty'],
  userNotFound: [status.FAILED_PRECONDITION, 'etcdserver: user name not found'],
  roleAlreadyExist: [status.FAILED_PRECONDITION, 'etcdserver: role name already exists'],
  roleNotFound: [status.FAILED_PRECONDITION, 'etcdserver: role name not found'],
  roleEmpty: [status.INVALID_ARGUMENT, 'etcdserver: role name is empty'],
  authFailed: [status.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'],
  permissionDenied: [status.PERMISSION_DENIED, 'etcdserver: permission denied'],
  roleNotGranted: [status.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user'],
  permissionNotGranted: [status.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role'],
  authNotEnabled: [status.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'],
  invalidAuthToken: [status.UNAUTHENTICATED, 'etcdserver: invalid auth token'],
  invalidAuthMgmt: [status.INVALID_ARGUMENT, 'etcdserver: invalid auth management'],
  authOldRevision: [status.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old'],
});
