/**
 * etcd's "simple" tokens, shared by every replica: `<16 letters>.<number>` (etcd's shape), each
 * recorded in the coordinator under `auth/tokens/<token>` with the user it stands for, attached
 * to a coordinator lease of the token TTL (etcd: 5 min, --auth-token-ttl). Using a token
 * refreshes that lease, so a token lives until it has gone unused for its TTL, on any replica.
 *
 * A token also records the user's password epoch and the store's token epoch: a password
 * change, the user's deletion or AuthDisable void it at once on every replica (the check is
 * against the auth state, which every replica follows), as etcd drops a user's tokens then.
 * Replicas cache tokens they have seen (or watched being issued) and re-check one with the
 * coordinator (a keepalive) once a fraction of the TTL has passed since they last refreshed it.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { Upstream } from '../upstream/upstream.js';
import type { AuthInfo } from './authorize.js';
import { TOKENS_PREFIX, tokenKey } from './keys.js';
import type { AuthState, User } from './state.js';
import type { TokenProvider } from './tokens.js';
import { prefixEnd } from '../shard/keyspace.js';

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** At most one keepalive per token per replica in this fraction of the TTL. */
const REFRESH_FRACTION = 10;

interface TokenRecord {
  user: string;
  /** The user's password epoch when it was issued. */
  epoch: string;
  /** The store's token epoch (changes on AuthDisable). */
  tokenEpoch: string;
  lease: string;
}

interface Cached {
  rec: TokenRecord;
  /** When this replica last knew the lease alive with a full TTL ahead (ms since epoch). */
  refreshedAt: number;
  refreshing: Promise<boolean> | null;
}

function parseRecord(raw: Buffer): TokenRecord | null {
  try {
    const r = JSON.parse(raw.toString('utf8')) as Partial<TokenRecord>;
    if (typeof r.user !== 'string' || typeof r.epoch !== 'string' || typeof r.tokenEpoch !== 'string' || typeof r.lease !== 'string') return null;
    return { user: r.user, epoch: r.epoch, tokenEpoch: r.tokenEpoch, lease: r.lease };
  } catch {
    return null;
  }
}

export class SimpleTokens implements TokenProvider {
  private readonly cache = new Map<string, Cached>();
  private readonly ttlMs: number;

  constructor(
    private readonly coordinator: Upstream,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {
    this.ttlMs = ttlSeconds * 1000;
  }

  /** Keeps the cache in step with tokens issued and expired on any replica (store.ts watch). */
  onTokenEvent(key: Buffer, value: Buffer | null): void {
    const token = key.subarray(TOKENS_PREFIX.length).toString('latin1');
    if (value === null) {
      this.cache.delete(token);
      return;
    }
    const rec = parseRecord(value);
    if (rec && !this.cache.has(token)) this.cache.set(token, { rec, refreshedAt: Date.now(), refreshing: null });
  }

  async issue(user: User, s: AuthState): Promise<string> {
    const granted = await this.coordinator.leaseGrant({ TTL: String(this.ttlSeconds), ID: '0' });
    let prefix = '';
    for (let i = 0; i < 16; i++) prefix += LETTERS[randomInt(LETTERS.length)];
    const token = `${prefix}.${BigInt(granted.ID).toString()}`;
    const rec: TokenRecord = { user: user.name, epoch: user.epoch, tokenEpoch: s.tokenEpoch, lease: String(granted.ID) };
    await this.coordinator.txn({ success: [{ request_put: { key: tokenKey(token), value: Buffer.from(JSON.stringify(rec)), lease: String(granted.ID) } }] }, false);
    this.cache.set(token, { rec, refreshedAt: Date.now(), refreshing: null });
    return token;
  }

  async info(token: string, s: AuthState): Promise<AuthInfo | null> {
    if (!/^[A-Za-z]+\.\d+$/.test(token)) return null;
    let c = this.cache.get(token);
    if (!c) {
      const res = await this.coordinator.range({ key: tokenKey(token) });
      const rec = res.kvs[0] ? parseRecord(res.kvs[0].value) : null;
      if (!rec) return null;
      // Its remaining TTL is unknown here: refreshed (and so checked) below.
      c = { rec, refreshedAt: 0, refreshing: null };
      this.cache.set(token, c);
    }
    const user = s.users.get(c.rec.user);
    if (!user || user.epoch !== c.rec.epoch || s.tokenEpoch !== c.rec.tokenEpoch) return null;
    if (!(await this.refresh(token, c))) return null;
    // As etcd's simple tokens: the holder acts at the current auth revision.
    return { user: c.rec.user, revision: s.revision };
  }

  /** Refreshes the token's lease when due; false when the lease is gone (the token expired). */
  private async refresh(token: string, c: Cached): Promise<boolean> {
    const age = Date.now() - c.refreshedAt;
    if (age < this.ttlMs / REFRESH_FRACTION) return true;
    c.refreshing ??= this.coordinator.leaseKeepAlive(BigInt(c.rec.lease)).then(
      (res) => {
        c.refreshing = null;
        if (BigInt(res.TTL) <= 0n) {
          this.cache.delete(token);
          return false;
        }
        c.refreshedAt = Date.now();
        return true;
      },
      (err: unknown) => {
        c.refreshing = null;
        throw err;
      },
    );
    const alive = c.refreshing;
    // Well within its TTL: the refresh runs in the background, the request goes on.
    if (age < this.ttlMs / 2) {
      alive.catch((err: unknown) => this.log.warn({ err }, 'simple token refresh failed'));
      return true;
    }
    return alive;
  }

  async forget(user: string | null): Promise<void> {
    try {
      const res = await this.coordinator.range({ key: TOKENS_PREFIX, range_end: prefixEnd(TOKENS_PREFIX) });
      const leases = res.kvs
        .map((kv) => parseRecord(kv.value))
        .filter((r): r is TokenRecord => r !== null && (user === null || r.user === user))
        .map((r) => BigInt(r.lease));
      await Promise.all(leases.map((id) => this.coordinator.leaseRevoke(id).catch(() => undefined)));
    } catch (err) {
      this.log.warn({ err, user }, 'cleaning up void simple tokens failed (they expire with their TTL)');
    }
  }

  close(): void {
    this.cache.clear();
  }
}
