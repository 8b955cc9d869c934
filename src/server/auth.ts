/**
 * The Auth service, with etcd's semantics (auth/store.go): users and roles live in the
 * coordinator (auth/store.ts), every change is one compare-and-swap there, and every replica
 * follows them. Who may call what is decided before a handler runs (auth/guard.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AuthErrors } from '../auth/errors.js';
import type { RequestGuard } from '../auth/guard.js';
import * as manage from '../auth/manage.js';
import { hashPassword, passwordMatches } from '../auth/password.js';
import { byteOrder, READ, READWRITE, WRITE, type AuthState, type PermType } from '../auth/state.js';
import type { AuthStore } from '../auth/store.js';
import type { TokenProvider } from '../auth/tokens.js';
import type { ResponseHeader } from '../etcd/types.js';
import { revHeader } from '../etcd/header.js';
import type { HeaderSource } from './header.js';
import { unary } from './unary.js';
import type { Handlers } from './service.js';

export interface AuthDeps {
  auth: AuthStore;
  tokens: TokenProvider;
  guard: RequestGuard;
  /** The highest meta revision known (response headers). */
  clock: { known(): bigint };
  header: HeaderSource;
  logger: Logger;
  maxRequestBytes: number;
  bcryptCost: number;
}

interface PermissionMsg {
  permType: number;
  key: Buffer;
  range_end: Buffer;
}

interface Named {
  name?: string;
  user?: string;
  role?: string;
  password?: string;
  hashedPassword?: string;
  options?: { no_password?: boolean } | null;
  perm?: PermissionMsg | null;
  key?: Buffer;
  range_end?: Buffer;
}

function permType(t: number): PermType {
  return t === WRITE ? WRITE : t === READWRITE ? READWRITE : READ;
}

export function authService(d: AuthDeps): Handlers<'Auth'> {
  const o = { logger: d.logger, maxRequestBytes: d.maxRequestBytes };
  const header = (): ResponseHeader => d.header.fill(revHeader(d.clock.known()));
  const done = () => ({ header: header() });
  const change = (method: string, fn: (r: Named, s: AuthState) => AuthState | null, before?: (r: Named) => Promise<Named>, after?: (r: Named) => Promise<void>) =>
    unary<Named, { header: ResponseHeader }>(
      method,
      async (req) => {
        const r = before ? await before(req) : req;
        await d.auth.mutate((s) => fn(r, s));
        if (after) await after(r);
        return done();
      },
      o,
      () => true,
    );
  const hashed = async (r: Named): Promise<Named> => {
    if (r.hashedPassword) return r;
    return { ...r, hashedPassword: await hashPassword(r.password ?? '', d.bcryptCost) };
  };
  return {
    AuthEnable: change('AuthEnable', (_r, s) => manage.authEnable(s)),
    AuthDisable: change('AuthDisable', (_r, s) => manage.authDisable(s), undefined, () => d.tokens.forget(null)),
    AuthStatus: unary(
      'AuthStatus',
      async () => {
        const s = await d.auth.refresh();
        return { header: header(), enabled: s.enabled, authRevision: s.revision.toString() };
      },
      o,
    ),
    Authenticate: unary(
      'Authenticate',
      async (r, _cancelled, call) => {
        const s = await d.auth.refresh();
        if (!s.enabled) throw AuthErrors.authNotEnabled();
        const user = s.users.get(r.name ?? '');
        if (!user || user.noPassword || !(await passwordMatches(r.password ?? '', user.hash))) throw AuthErrors.authFailed();
        // etcd puts Authenticate through raft, which refuses an invalid token it carries.
        if (call) await d.guard.who(call);
        const token = await d.tokens.issue(user, s);
        return { header: header(), token };
      },
      o,
    ),
    UserAdd: change(
      'UserAdd',
      (r, s) => manage.userAdd(s, r.name ?? '', r.hashedPassword ?? '', !!r.options?.no_password),
      // etcd refuses an empty name before it hashes anything.
      async (r) => {
        if (!r.name) throw AuthErrors.userEmpty();
        return r.options?.no_password ? r : hashed(r);
      },
    ),
    UserDelete: change('UserDelete', (r, s) => manage.userDelete(s, r.name ?? ''), undefined, (r) => d.tokens.forget(r.name ?? '')),
    UserChangePassword: change(
      'UserChangePassword',
      (r, s) => manage.userChangePassword(s, r.name ?? '', r.hashedPassword ?? ''),
      hashed,
      (r) => d.tokens.forget(r.name ?? ''),
    ),
    UserGrantRole: change('UserGrantRole', (r, s) => manage.userGrantRole(s, r.user ?? '', r.role ?? '')),
    UserRevokeRole: change('UserRevokeRole', (r, s) => manage.userRevokeRole(s, r.name ?? '', r.role ?? '')),
    UserGet: unary(
      'UserGet',
      async (r) => {
        const s = await d.auth.refresh();
        const u = s.users.get(r.name ?? '');
        if (!u) throw AuthErrors.userNotFound();
        return { header: header(), roles: u.roles };
      },
      o,
    ),
    UserList: unary(
      'UserList',
      async () => {
        const s = await d.auth.refresh();
        return { header: header(), users: [...s.users.keys()].sort(byteOrder) };
      },
      o,
    ),
    RoleAdd: change('RoleAdd', (r, s) => manage.roleAdd(s, r.name ?? '')),
    RoleDelete: change('RoleDelete', (r, s) => manage.roleDelete(s, r.role ?? '')),
    RoleGrantPermission: change('RoleGrantPermission', (r, s) =>
      manage.roleGrantPermission(
        s,
        r.name ?? '',
        r.perm ? { permType: permType(r.perm.permType), key: r.perm.key ?? Buffer.alloc(0), rangeEnd: r.perm.range_end ?? Buffer.alloc(0) } : null,
      ),
    ),
    RoleRevokePermission: change('RoleRevokePermission', (r, s) =>
      manage.roleRevokePermission(s, r.role ?? '', r.key ?? Buffer.alloc(0), r.range_end ?? Buffer.alloc(0)),
    ),
    RoleGet: unary(
      'RoleGet',
      async (r) => {
        const s = await d.auth.refresh();
        const role = s.roles.get(r.role ?? '');
        if (!role) throw AuthErrors.roleNotFound();
        return { header: header(), perm: role.perms.map((p) => ({ permType: p.permType, key: p.key, range_end: p.rangeEnd })) };
      },
      o,
    ),
    RoleList: unary(
      'RoleList',
      async () => {
        const s = await d.auth.refresh();
        return { header: header(), roles: [...s.roles.keys()].sort(byteOrder) };
      },
      o,
    ),
  };
}
