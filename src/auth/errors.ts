/**
 * etcd's auth errors (api/v3rpc/rpctypes/error.go): the gRPC code and the exact message, as
 * clients match on them (clientv3 re-authenticates on "invalid auth token" and "revision of
 * auth store is old").
 */
import { status } from '@grpc/grpc-js';
import { EtcdError } from '../etcd/errors.js';

const e = (code: status, message: string) => () => new EtcdError(code, message);

export const AuthErrors = {
  rootUserNotExist: e(status.FAILED_PRECONDITION, 'etcdserver: root user does not exist'),
  rootRoleNotExist: e(status.FAILED_PRECONDITION, 'etcdserver: root user does not have root role'),
  userAlreadyExist: e(status.FAILED_PRECONDITION, 'etcdserver: user name already exists'),
  userEmpty: e(status.INVALID_ARGUMENT, 'etcdserver: user name is empty'),
  userNotFound: e(status.FAILED_PRECONDITION, 'etcdserver: user name not found'),
  roleAlreadyExist: e(status.FAILED_PRECONDITION, 'etcdserver: role name already exists'),
  roleNotFound: e(status.FAILED_PRECONDITION, 'etcdserver: role name not found'),
  roleEmpty: e(status.INVALID_ARGUMENT, 'etcdserver: role name is empty'),
  authFailed: e(status.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'),
  permissionDenied: e(status.PERMISSION_DENIED, 'etcdserver: permission denied'),
  roleNotGranted: e(status.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user'),
  permissionNotGranted: e(status.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role'),
  authNotEnabled: e(status.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'),
  invalidAuthToken: e(status.UNAUTHENTICATED, 'etcdserver: invalid auth token'),
  invalidAuthMgmt: e(status.INVALID_ARGUMENT, 'etcdserver: invalid auth management'),
  authOldRevision: e(status.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old'),
};
