/**
 * The gateway's routes: etcd 3.4's google.api.http annotations (rpc.proto), every one a POST
 * with the whole request as the body. etcd 3.4 serves them under /v3/ and /v3beta/.
 * Two methods share /v3/maintenance/hash in etcd 3.4; its gateway answers it with Hash.
 */

export interface Route {
  service: string;
  method: string;
}

const TABLE: Array<[string, string, string]> = [
  ['kv/range', 'KV', 'Range'],
  ['kv/put', 'KV', 'Put'],
  ['kv/deleterange', 'KV', 'DeleteRange'],
  ['kv/txn', 'KV', 'Txn'],
  ['kv/compaction', 'KV', 'Compact'],
  ['watch', 'Watch', 'Watch'],
  ['lease/grant', 'Lease', 'LeaseGrant'],
  ['lease/revoke', 'Lease', 'LeaseRevoke'],
  ['kv/lease/revoke', 'Lease', 'LeaseRevoke'],
  ['lease/keepalive', 'Lease', 'LeaseKeepAlive'],
  ['lease/timetolive', 'Lease', 'LeaseTimeToLive'],
  ['kv/lease/timetolive', 'Lease', 'LeaseTimeToLive'],
  ['lease/leases', 'Lease', 'LeaseLeases'],
  ['kv/lease/leases', 'Lease', 'LeaseLeases'],
  ['cluster/member/add', 'Cluster', 'MemberAdd'],
  ['cluster/member/remove', 'Cluster', 'MemberRemove'],
  ['cluster/member/update', 'Cluster', 'MemberUpdate'],
  ['cluster/member/list', 'Cluster', 'MemberList'],
  ['cluster/member/promote', 'Cluster', 'MemberPromote'],
  ['maintenance/alarm', 'Maintenance', 'Alarm'],
  ['maintenance/status', 'Maintenance', 'Status'],
  ['maintenance/defragment', 'Maintenance', 'Defragment'],
  ['maintenance/hash', 'Maintenance', 'Hash'],
  ['maintenance/snapshot', 'Maintenance', 'Snapshot'],
  ['maintenance/transfer-leadership', 'Maintenance', 'MoveLeader'],
  ['auth/enable', 'Auth', 'AuthEnable'],
  ['auth/disable', 'Auth', 'AuthDisable'],
  ['auth/status', 'Auth', 'AuthStatus'],
  ['auth/authenticate', 'Auth', 'Authenticate'],
  ['auth/user/add', 'Auth', 'UserAdd'],
  ['auth/user/get', 'Auth', 'UserGet'],
  ['auth/user/list', 'Auth', 'UserList'],
  ['auth/user/delete', 'Auth', 'UserDelete'],
  ['auth/user/changepw', 'Auth', 'UserChangePassword'],
  ['auth/user/grant', 'Auth', 'UserGrantRole'],
  ['auth/user/revoke', 'Auth', 'UserRevokeRole'],
  ['auth/role/add', 'Auth', 'RoleAdd'],
  ['auth/role/get', 'Auth', 'RoleGet'],
  ['auth/role/list', 'Auth', 'RoleList'],
  ['auth/role/delete', 'Auth', 'RoleDelete'],
  ['auth/role/grant', 'Auth', 'RoleGrantPermission'],
  ['auth/role/revoke', 'Auth', 'RoleRevokePermission'],
];

const PREFIXES = ['/v3/', '/v3beta/'];

const ROUTES = new Map<string, Route>(TABLE.map(([p, service, method]) => [p, { service, method }]));

/** True for the paths the gateway owns (anything under /v3/ or /v3beta/). */
export function isGatewayPath(pathname: string): boolean {
  return PREFIXES.some((p) => pathname.startsWith(p));
}

/** The method a gateway path calls, or null (404). */
export function routeOf(pathname: string): Route | null {
  const prefix = PREFIXES.find((p) => pathname.startsWith(p));
  return prefix ? (ROUTES.get(pathname.slice(prefix.length)) ?? null) : null;
}
