/**
 * Tells a poller when keys it reads from an upstream cluster change, so it can read them when
 * they did instead of on every poll (each linearizable coordinator read costs the coordinator
 * about 2 ms of CPU: at a few polls a second per replica it was a large share of a small
 * coordinator). One watch stream with a watcher per range. While the stream is down (`live` is
 * false) the poller reads as before; each (re)creation reports `onReconnect`, since changes made
 * while no watch was open are not replayed (the watch starts at the current revision).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Upstream } from './upstream.js';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 3_000;

export interface ChangeEvent {
  deleted: boolean;
  key: Buffer;
  /** The value before the change, when the range asked for it. */
  prev: { create_revision: string } | null;
}

export interface WatchedRange {
  key: Buffer;
  range_end?: Buffer;
  /** Ask for the previous key-value of each change (etcd's prev_kv). */
  prevKv?: boolean;
}

export interface ChangeListener {
  onChanges(events: ChangeEvent[]): void;
  /** A (new) stream has every watcher in place: whatever changed before it is unknown. */
  onReconnect(): void;
}

interface RawEvent {
  type?: number | string;
  kv?: { key?: Buffer };
  prev_kv?: { create_revision?: string | number } | null;
}

interface RawResponse {
  created?: boolean;
  canceled?: boolean;
  cancel_reason?: string;
  events?: RawEvent[];
}

export class ChangeWatch {
  private stream: grpc.ClientDuplexStream<object, unknown> | null = null;
  private created = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private backoff = BACKOFF_MIN_MS;

  constructor(
    private readonly upstream: Upstream,
    private readonly ranges: WatchedRange[],
    private readonly listener: ChangeListener,
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  /** True while every watcher of the current stream is in place. */
  get live(): boolean {
    return this.stream !== null && this.created === this.ranges.length;
  }

  start(): void {
    this.open();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.drop();
  }

  private drop(): void {
    const s = this.stream;
    this.stream = null;
    this.created = 0;
    if (!s) return;
    s.removeAllListeners();
    s.on('error', () => undefined);
    s.cancel();
  }

  private open(): void {
    if (this.closed) return;
    const { stream } = this.upstream.openWatch();
    this.stream = stream;
    this.created = 0;
    const restart = (why: string) => {
      if (this.stream !== stream) return;
      this.drop();
      if (this.closed) return;
      this.log.debug({ why, watch: this.what }, 'change watch restarting');
      this.timer = setTimeout(() => this.open(), this.backoff);
      this.timer.unref();
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    };
    stream.on('data', (raw: unknown) => {
      if (this.stream !== stream) return;
      const res = raw as RawResponse;
      if (res.canceled) return restart(res.cancel_reason || 'canceled');
      if (res.created && ++this.created === this.ranges.length) {
        this.backoff = BACKOFF_MIN_MS;
        this.listener.onReconnect();
      }
      const events = res.events ?? [];
      if (events.length === 0) return;
      this.listener.onChanges(
        events.map((e) => ({
          deleted: e.type === 1 || e.type === 'DELETE',
          key: e.kv?.key ?? Buffer.alloc(0),
          prev: e.prev_kv ? { create_revision: String(e.prev_kv.create_revision ?? '0') } : null,
        })),
      );
    });
    stream.on('error', (err: Error) => restart(err.message));
    stream.on('end', () => restart('stream ended'));
    for (const r of this.ranges) {
      stream.write({ create_request: { key: r.key, range_end: r.range_end ?? Buffer.alloc(0), prev_kv: r.prevKv === true } });
    }
  }
}
