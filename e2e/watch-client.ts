/**
 * A raw Watch stream for e2e tests: send create/cancel/progress requests, collect every
 * response, wait for conditions on what arrived. Works the same against a plain etcd and the
 * proxy, so differential tests can compare the two.
 */
import type * as grpc from '@grpc/grpc-js';
import { RawClient, b } from './grpc-raw.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type WatchResponse = any;

export interface CreateOptions {
  key: string | Buffer;
  rangeEnd?: string | Buffer;
  startRevision?: bigint | number;
  prevKv?: boolean;
  progressNotify?: boolean;
  filters?: number[];
  watchId?: bigint | number | string;
  fragment?: boolean;
}

export class WatchStream {
  readonly responses: WatchResponse[] = [];
  ended: { code: number; details: string } | null = null;
  private readonly call: grpc.ClientDuplexStream<object, WatchResponse>;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly client: RawClient, metadata?: grpc.Metadata) {
    const svc = client.service('Watch') as unknown as { Watch(md?: grpc.Metadata): grpc.ClientDuplexStream<object, WatchResponse> };
    this.call = metadata ? svc.Watch(metadata) : svc.Watch();
    this.call.on('data', (r: WatchResponse) => {
      this.responses.push(r);
      this.wake();
    });
    this.call.on('error', (err: grpc.ServiceError) => {
      this.ended = { code: err.code, details: err.details };
      this.wake();
    });
    this.call.on('end', () => {
      this.ended ??= { code: 0, details: '' };
      this.wake();
    });
  }

  create(o: CreateOptions): void {
    this.call.write({
      create_request: {
        key: b(o.key),
        range_end: o.rangeEnd === undefined ? Buffer.alloc(0) : b(o.rangeEnd),
        start_revision: String(o.startRevision ?? 0),
        prev_kv: o.prevKv ?? false,
        progress_notify: o.progressNotify ?? false,
        filters: o.filters ?? [],
        watch_id: String(o.watchId ?? 0),
        fragment: o.fragment ?? false,
      },
    });
  }

  cancel(id: bigint | number | string): void {
    this.call.write({ cancel_request: { watch_id: String(id) } });
  }

  requestProgress(): void {
    this.call.write({ progress_request: {} });
  }

  /** Pauses reading (the client stops consuming: flow control backs up to the server). */
  pause(): void {
    this.call.pause();
  }

  resume(): void {
    this.call.resume();
  }

  close(): void {
    this.call.removeAllListeners('error');
    this.call.on('error', () => undefined);
    this.call.cancel();
  }

  /** Events of one watch id, flattened, in arrival order. */
  events(id: string | number | bigint): WatchResponse[] {
    return this.responses.filter((r) => r.watch_id === String(id)).flatMap((r) => r.events);
  }

  async until(cond: () => boolean, timeoutMs = 10_000, what = 'watch condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${this.responses.length} responses${this.ended ? `, ended ${JSON.stringify(this.ended)}` : ''}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Waits for the n-th response (1-based count) and returns it. */
  async nth(n: number, timeoutMs = 10_000): Promise<WatchResponse> {
    await this.until(() => this.responses.length >= n, timeoutMs, `${n} responses`);
    return this.responses[n - 1];
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
