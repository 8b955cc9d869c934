/**
 * etcd's permission decisions (auth/store.go isOpPermitted, IsAdminPermitted, HasRole) over a
 * given auth state. Pure: the caller supplies the state and who is asking.
 */
import { AuthErrors } from './errors.js';
import { rangePermitted } from './perms.js';
import { hasRootRole, READ, WRITE, type AuthState } from './state.js';

/** Who a request comes from: etcd's AuthInfo. */
export interface AuthInfo {
  user: string;
  /** The auth revision the credentials were issued at (simple tokens: always the current one). */
  revision: bigint;
}

const EMPTY: AuthInfo = { user: '', revision: 0n };

function opPermitted(s: AuthState, who: AuthInfo | null, key: Buffer, rangeEnd: Buffer, want: typeof READ | typeof WRITE): void {
  if (!s.enabled) return;
  const ai = who ?? EMPTY;
  if (ai.revision === 0n) throw AuthErrors.userEmpty();
  if (ai.revision < s.revision) throw AuthErrors.authOldRevision();
  const user = s.users.get(ai.user);
  if (!user) throw AuthErrors.permissionDenied();
  if (hasRootRole(user)) return;
  if (!rangePermitted(s, ai.user, key, rangeEnd, want)) throw AuthErrors.permissionDenied();
}

export function checkRange(s: AuthState, who: AuthInfo | null, key: Buffer, rangeEnd: Buffer): void {
  opPermitted(s, who, key, rangeEnd, READ);
}

export function checkPut(s: AuthState, who: AuthInfo | null, key: Buffer): void {
  opPermitted(s, who, key, Buffer.alloc(0), WRITE);
}

export function checkDelete(s: AuthState, who: AuthInfo | null, key: Buffer, rangeEnd: Buffer): void {
  opPermitted(s, who, key, rangeEnd, WRITE);
}

export function checkAdmin(s: AuthState, who: AuthInfo | null): void {
  if (!s.enabled) return;
  if (!who || who.user === '') throw AuthErrors.userEmpty();
  const user = s.users.get(who.user);
  if (!user) throw AuthErrors.userNotFound();
  if (!hasRootRole(user)) throw AuthErrors.permissionDenied();
}

export function hasRole(s: AuthState, user: string, role: string): boolean {
  return s.users.get(user)?.roles.includes(role) ?? false;
}
