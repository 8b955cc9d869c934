/**
 * The auth state of the meta-cluster, kept in the coordinator (keys.ts) so every replica
 * enforces the same rules. A replica reads it at start, follows it with one coordinator watch
 * (each change replaces the cached state; the coordinator's mod revision orders them), and
 * changes it with compare-and-swap transactions, retried when another replica won the race.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { EtcdError } from '../etcd/errors.js';
import type { KeyValue } from '../etcd/types.js';
import type { Upstream } from '../upstream/upstream.js';
import { AUTH_DOC_KEY, AUTH_PREFIX, AUTH_PREFIX_END, TOKENS_PREFIX } from './keys.js';
import { decodeState, EMPTY_STATE, encodeState, type AuthState } from './state.js';

const MOD = 2;
const EQUAL = 0;
const CAS_ATTEMPTS = 50;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 3_000;

interface WatchEvent {
  type: number | string;
  kv: KeyValue;
}

interface WatchResponse {
  created: boolean;
  canceled: boolean;
  cancel_reason: string;
  events: WatchEvent[];
}

export type TokenEventListener = (key: Buffer, value: Buffer | null) => void;

export class AuthStore {
  private current: AuthState = EMPTY_STATE;
  /** Coordinator mod revision of the document the current state came from (0: none yet). */
  private mod = 0n;
  private stream: grpc.ClientDuplexStream<object, unknown> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private backoff = BACKOFF_MIN_MS;
  /** The coordinator revision after the last full read: the watch starts there. */
  private watchFrom = 1n;
  /** Told of every token key put or deleted (tokens.ts keeps its cache in step). */
  onTokenEvent: TokenEventListener = () => undefined;

  constructor(
    private readonly coordinator: Upstream,
    private readonly log: Logger,
  ) {}

  get state(): AuthState {
    return this.current;
  }

  /** Reads the state once, then follows it. */
  async start(): Promise<void> {
    await this.refresh();
    this.follow();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.dropStream();
  }

  /** Re-reads the document (after a watch restart, so no change is missed). */
  async refresh(): Promise<AuthState> {
    const res = await this.coordinator.range({ key: AUTH_DOC_KEY });
    const kv = res.kvs[0];
    if (kv) this.adopt(kv);
    this.watchFrom = BigInt(res.header?.revision ?? '0') + 1n;
    return this.current;
  }

  /**
   * Applies `change` to the latest state with compare-and-swap: `change` returns the next
   * state, null for "nothing to change", or throws etcd's error. Returns the resulting state.
   */
  async mutate(change: (s: AuthState) => AuthState | null): Promise<AuthState> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const res = await this.coordinator.range({ key: AUTH_DOC_KEY });
      const kv = res.kvs[0];
      const base = kv ? decodeState(kv.value) : EMPTY_STATE;
      const mod = kv ? BigInt(kv.mod_revision) : 0n;
      const nextState = change(base);
      if (nextState === null) {
        if (kv) this.adopt(kv);
        return base;
      }
      const out = await this.coordinator.txn(
        {
          compare: [{ key: AUTH_DOC_KEY, target: MOD, result: EQUAL, mod_revision: mod.toString() }],
          success: [{ request_put: { key: AUTH_DOC_KEY, value: encodeState(nextState) } }],
        },
        false,
      );
      if (out.succeeded) {
        const written = BigInt(out.header?.revision ?? '0');
        if (written > this.mod) {
          this.current = nextState;
          this.mod = written;
        }
        return nextState;
      }
    }
    throw new EtcdError(14, 'etcd-metaproxy: auth store unavailable: too many concurrent auth changes');
  }

  private adopt(kv: KeyValue): void {
    const mod = BigInt(kv.mod_revision);
    if (mod <= this.mod) return;
    try {
      this.current = decodeState(kv.value);
      this.mod = mod;
    } catch (err) {
      this.log.error({ err }, 'auth document in the coordinator is malformed; keeping the last good one');
    }
  }

  private dropStream(): void {
    const s = this.stream;
    this.stream = null;
    if (!s) return;
    s.removeAllListeners();
    s.on('error', () => undefined);
    s.cancel();
  }

  private follow(): void {
    if (this.closed) return;
    const { stream } = this.coordinator.openWatch();
    this.stream = stream;
    const restart = (why: string) => {
      if (this.stream !== stream) return;
      this.dropStream();
      if (this.closed) return;
      this.log.warn({ why }, 'auth watch on the coordinator restarting');
      this.timer = setTimeout(() => {
        // Whatever changed while no watch was open is read again.
        this.refresh().then(
          () => this.follow(),
          () => this.follow(),
        );
      }, this.backoff);
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    };
    stream.on('data', (raw: unknown) => {
      const res = raw as WatchResponse;
      if (res.canceled) return restart(res.cancel_reason || 'canceled by the coordinator');
      if (res.created) this.backoff = BACKOFF_MIN_MS;
      for (const ev of res.events ?? []) {
        const key = ev.kv.key;
        const deleted = ev.type === 1 || ev.type === 'DELETE';
        if (key.equals(AUTH_DOC_KEY)) {
          if (!deleted) this.adopt(ev.kv);
        } else if (key.subarray(0, TOKENS_PREFIX.length).equals(TOKENS_PREFIX)) {
          this.onTokenEvent(key, deleted ? null : ev.kv.value);
        }
      }
    });
    stream.on('error', (err: Error) => restart(err.message));
    stream.on('end', () => restart('stream ended'));
    // From the revision after the last full read: nothing between them is missed.
    stream.write({ create_request: { key: AUTH_PREFIX, range_end: AUTH_PREFIX_END, start_revision: this.watchFrom.toString() } });
  }
}
