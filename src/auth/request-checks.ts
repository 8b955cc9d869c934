/**
 * Which permission each request needs, as etcd checks it (etcdserver/apply_auth.go,
 * v3_server.go, api/v3rpc/maintenance.go and watch.go):
 * - Range and read-only Txn: read on the range; Put: write on the key, write on every key of
 *   the lease it attaches, read on the key with prev_kv; DeleteRange: write (and read with
 *   prev_kv) on the range; Txn: read on every compare, then each op of both branches.
 * - LeaseRevoke: write on every key attached to the lease.
 * - Defragment, Hash, HashKV, Snapshot and the Auth service's management calls: the root role.
 * - Compact, LeaseGrant, Alarm, AuthStatus: a valid token if one is given, no permission
 *   (etcd puts them through raft, which checks the token only).
 * - LeaseTimeToLive, LeaseLeases, LeaseKeepAlive, Status, MoveLeader, MemberList: nothing
 *   (etcd does not look at the token there).
 * A check returns null when the method needs nothing at all.
 */
import { status } from '@grpc/grpc-js';
import { EtcdError } from '../etcd/errors.js';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../etcd/types.js';
import { checkAdmin, checkDelete, checkPut, checkRange, hasRole, type AuthInfo } from './authorize.js';
import type { AuthState } from './state.js';

export interface CheckContext {
  state: AuthState;
  who: AuthInfo | null;
  /** The user keys attached to a lease (none when it does not exist). */
  leaseKeys(id: bigint): Promise<Buffer[]>;
}

export type RequestCheck = (req: never, c: CheckContext) => Promise<void> | void;

const EMPTY = Buffer.alloc(0);

function buf(b: Buffer | null | undefined): Buffer {
  return b ?? EMPTY;
}

function id64(v: unknown): bigint {
  try {
    return BigInt(String(v ?? '0'));
  } catch {
    return 0n;
  }
}

async function leasePuts(c: CheckContext, lease: bigint): Promise<void> {
  if (lease === 0n || !c.state.enabled) return;
  // Root may write every key: no need to list the lease's keys (etcd's answer is the same).
  if (c.who && c.who.revision >= c.state.revision && c.state.users.get(c.who.user)?.roles.includes('root')) return;
  for (const key of await c.leaseKeys(lease)) checkPut(c.state, c.who, key);
}

function txnOps(c: CheckContext, ops: RequestOp[]): void {
  for (const op of ops) {
    if (op.request_range) checkRange(c.state, c.who, buf(op.request_range.key), buf(op.request_range.range_end));
    else if (op.request_put) checkPut(c.state, c.who, buf(op.request_put.key));
    else if (op.request_delete_range) {
      const d = op.request_delete_range;
      if (d.prev_kv) checkRange(c.state, c.who, buf(d.key), buf(d.range_end));
      checkDelete(c.state, c.who, buf(d.key), buf(d.range_end));
    } else if (op.request_txn) txn(c, op.request_txn);
  }
}

function txn(c: CheckContext, r: TxnRequest): void {
  for (const cmp of r.compare ?? []) checkRange(c.state, c.who, buf(cmp.key), buf(cmp.range_end));
  txnOps(c, r.success ?? []);
  txnOps(c, r.failure ?? []);
}

const tokenOnly: RequestCheck = () => undefined;
const admin: RequestCheck = (_req: never, c: CheckContext) => checkAdmin(c.state, c.who);

/**
 * etcd's Maintenance server returns the auth package's own errors untranslated: gRPC UNKNOWN
 * with "auth: ..." messages (api/v3rpc/maintenance.go isAuthenticated).
 */
const RAW_AUTH_MESSAGES: Record<string, string> = {
  'etcdserver: user name is empty': 'auth: user name is empty',
  'etcdserver: user name not found': 'auth: user not found',
  'etcdserver: permission denied': 'auth: permission denied',
  'etcdserver: invalid auth token': 'auth: invalid auth token',
};

export function rawAuthError(err: unknown): unknown {
  if (!(err instanceof EtcdError)) return err;
  const raw = RAW_AUTH_MESSAGES[err.message];
  return raw ? new EtcdError(status.UNKNOWN, raw) : err;
}

const maintenanceAdmin: RequestCheck = (_req: never, c: CheckContext) => {
  try {
    checkAdmin(c.state, c.who);
  } catch (err) {
    throw rawAuthError(err);
  }
};

/** service -> method -> check; a method not listed needs nothing (not even a valid token). */
export const REQUEST_CHECKS: Record<string, Record<string, RequestCheck>> = {
  KV: {
    Range: (r: RangeRequest, c: CheckContext) => checkRange(c.state, c.who, buf(r.key), buf(r.range_end)),
    Put: async (r: PutRequest, c: CheckContext) => {
      checkPut(c.state, c.who, buf(r.key));
      await leasePuts(c, id64(r.lease));
      if (r.prev_kv) checkRange(c.state, c.who, buf(r.key), EMPTY);
    },
    DeleteRange: (r: DeleteRangeRequest, c: CheckContext) => {
      checkDelete(c.state, c.who, buf(r.key), buf(r.range_end));
      if (r.prev_kv) checkRange(c.state, c.who, buf(r.key), buf(r.range_end));
    },
    Txn: (r: TxnRequest, c: CheckContext) => txn(c, r),
    Compact: tokenOnly,
  },
  Lease: {
    LeaseGrant: tokenOnly,
    LeaseRevoke: (r: { ID?: unknown }, c: CheckContext) => leasePuts(c, id64(r.ID)),
  },
  Maintenance: {
    Alarm: tokenOnly,
    Defragment: maintenanceAdmin,
    Hash: maintenanceAdmin,
    HashKV: maintenanceAdmin,
    Snapshot: maintenanceAdmin,
  },
  Auth: {
    AuthEnable: admin,
    AuthDisable: admin,
    AuthStatus: tokenOnly,
    UserAdd: admin,
    UserDelete: admin,
    UserChangePassword: admin,
    UserGrantRole: admin,
    UserRevokeRole: admin,
    UserList: admin,
    RoleAdd: admin,
    RoleDelete: admin,
    RoleGrantPermission: admin,
    RoleRevokePermission: admin,
    RoleList: admin,
    // A user may read its own record, and the roles it holds.
    UserGet: (r: { name?: string }, c: CheckContext) => {
      try {
        checkAdmin(c.state, c.who);
      } catch (err) {
        if ((r.name ?? '') !== (c.who?.user ?? '')) throw err;
      }
    },
    RoleGet: (r: { role?: string }, c: CheckContext) => {
      try {
        checkAdmin(c.state, c.who);
      } catch (err) {
        if (!hasRole(c.state, c.who?.user ?? '', r.role ?? '')) throw err;
      }
    },
  },
};
