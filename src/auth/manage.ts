/**
 * User and role management with etcd's semantics (auth/store.go), as pure functions from one
 * auth state to the next: null when nothing changes, an EtcdError when etcd refuses. Every
 * change but AuthEnable bumps the auth revision, as etcd's commitRevision does. Passwords arrive
 * already hashed (bcrypt is slow; it runs before the compare-and-swap, not inside it).
 */
import { randomBytes } from 'node:crypto';
import { EtcdError } from '../etcd/errors.js';
import { status } from '@grpc/grpc-js';
import { AuthErrors } from './errors.js';
import { hasRootRole, type AuthState, type PermType, type Role, type User } from './state.js';

const ROOT = 'root';

function epoch(): string {
  return randomBytes(8).toString('hex');
}

function next(s: AuthState, change: Partial<AuthState>, bump = true): AuthState {
  return { ...s, ...change, revision: bump ? s.revision + 1n : s.revision };
}

function withUser(s: AuthState, u: User): Map<string, User> {
  const users = new Map(s.users);
  users.set(u.name, u);
  return users;
}

function withRole(s: AuthState, r: Role): Map<string, Role> {
  const roles = new Map(s.roles);
  roles.set(r.name, r);
  return roles;
}

/** etcd sorts role names with Go's sort.Strings: byte order. */
function sortNames(names: string[]): string[] {
  return names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

export function authEnable(s: AuthState): AuthState | null {
  if (s.enabled) return null;
  const root = s.users.get(ROOT);
  if (!root) throw AuthErrors.rootUserNotExist();
  if (!hasRootRole(root)) throw AuthErrors.rootRoleNotExist();
  return next(s, { enabled: true }, false);
}

export function authDisable(s: AuthState): AuthState | null {
  if (!s.enabled) return null;
  return next(s, { enabled: false, tokenEpoch: epoch() });
}

export function userAdd(s: AuthState, name: string, hash: string, noPassword: boolean): AuthState {
  if (name === '') throw AuthErrors.userEmpty();
  if (s.users.has(name)) throw AuthErrors.userAlreadyExist();
  return next(s, { users: withUser(s, { name, hash: noPassword ? '' : hash, noPassword, roles: [], epoch: epoch() }) });
}

export function userDelete(s: AuthState, name: string): AuthState {
  if (s.enabled && name === ROOT) throw AuthErrors.invalidAuthMgmt();
  if (!s.users.has(name)) throw AuthErrors.userNotFound();
  const users = new Map(s.users);
  users.delete(name);
  return next(s, { users });
}

export function userChangePassword(s: AuthState, name: string, hash: string): AuthState {
  const u = s.users.get(name);
  if (!u) throw AuthErrors.userNotFound();
  return next(s, { users: withUser(s, { ...u, hash, epoch: epoch() }) });
}

export function userGrantRole(s: AuthState, user: string, role: string): AuthState | null {
  const u = s.users.get(user);
  if (!u) throw AuthErrors.userNotFound();
  if (role !== ROOT && !s.roles.has(role)) throw AuthErrors.roleNotFound();
  if (u.roles.includes(role)) return null;
  return next(s, { users: withUser(s, { ...u, roles: sortNames([...u.roles, role]) }) });
}

export function userRevokeRole(s: AuthState, user: string, role: string): AuthState {
  if (s.enabled && user === ROOT && role === ROOT) throw AuthErrors.invalidAuthMgmt();
  const u = s.users.get(user);
  if (!u) throw AuthErrors.userNotFound();
  const roles = u.roles.filter((r) => r !== role);
  if (roles.length === u.roles.length) throw AuthErrors.roleNotGranted();
  return next(s, { users: withUser(s, { ...u, roles }) });
}

export function roleAdd(s: AuthState, name: string): AuthState {
  if (name === '') throw AuthErrors.roleEmpty();
  if (s.roles.has(name)) throw AuthErrors.roleAlreadyExist();
  return next(s, { roles: withRole(s, { name, perms: [] }) });
}

export function roleDelete(s: AuthState, name: string): AuthState {
  if (s.enabled && name === ROOT) throw AuthErrors.invalidAuthMgmt();
  if (!s.roles.has(name)) throw AuthErrors.roleNotFound();
  const roles = new Map(s.roles);
  roles.delete(name);
  const users = new Map(s.users);
  for (const u of s.users.values()) {
    if (u.roles.includes(name)) users.set(u.name, { ...u, roles: u.roles.filter((r) => r !== name) });
  }
  return next(s, { roles, users });
}

export interface PermissionRequest {
  permType: PermType;
  key: Buffer;
  rangeEnd: Buffer;
}

export function roleGrantPermission(s: AuthState, name: string, perm: PermissionRequest | null): AuthState {
  const role = s.roles.get(name);
  if (!role) throw AuthErrors.roleNotFound();
  // etcd 3.4 dereferences a missing permission (and crashes); 3.5 answers this.
  if (!perm) throw new EtcdError(status.INVALID_ARGUMENT, 'etcdserver: permission not given');
  const perms = role.perms.map((p) => ({ ...p }));
  // As etcd: only the first permission at or after the key is looked at for an update.
  const idx = perms.findIndex((p) => Buffer.compare(p.key, perm.key) >= 0);
  const at = idx < 0 ? perms.length : idx;
  if (at < perms.length && perms[at].key.equals(perm.key) && perms[at].rangeEnd.equals(perm.rangeEnd)) {
    perms[at].permType = perm.permType;
  } else {
    perms.push({ permType: perm.permType, key: perm.key, rangeEnd: perm.rangeEnd });
    perms.sort((a, b) => Buffer.compare(a.key, b.key));
  }
  return next(s, { roles: withRole(s, { name, perms }) });
}

export function roleRevokePermission(s: AuthState, name: string, key: Buffer, rangeEnd: Buffer): AuthState {
  const role = s.roles.get(name);
  if (!role) throw AuthErrors.roleNotFound();
  const perms = role.perms.filter((p) => !p.key.equals(key) || !p.rangeEnd.equals(rangeEnd));
  if (perms.length === role.perms.length) throw AuthErrors.permissionNotGranted();
  return next(s, { roles: withRole(s, { name, perms }) });
}
