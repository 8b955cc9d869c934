/** Where the auth data lives in the coordinator (under the proxy's reserved system prefix). */
import { prefixEnd, sysKey } from '../shard/keyspace.js';

/** Users, roles, the enabled flag and the auth revision: one JSON document (state.ts). */
export const AUTH_DOC_KEY = sysKey('auth/store');
/** `auth/tokens/<token>`: one simple token, attached to a coordinator lease of the token TTL. */
export const TOKENS_PREFIX = sysKey('auth/tokens/');
export const AUTH_PREFIX = sysKey('auth/');
export const AUTH_PREFIX_END = prefixEnd(AUTH_PREFIX);

export function tokenKey(token: string): Buffer {
  return Buffer.concat([TOKENS_PREFIX, Buffer.from(token, 'latin1')]);
}
