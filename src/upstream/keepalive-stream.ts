/**
 * Lease keepalives multiplexed over one LeaseKeepAlive stream to an upstream cluster: every
 * client keepalive the proxy serves costs one message on it (one coordinator call), and the
 * answer is matched back by lease ID (etcd answers each ID's requests in order).
 */
import * as grpc from '@grpc/grpc-js';
import { EtcdError } from '../etcd/errors.js';
import type { ClientOf } from '../etcd/services.js';
import type { LeaseKeepAliveRequest } from '../etcd/gen/rpc.js';
import type { LeaseKeepAliveResponse } from '../etcd/types.js';
import { upstreamDuration, upstreamRequests } from '../metrics/registry.js';

interface Waiter {
  resolve: (res: LeaseKeepAliveResponse) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
  started: bigint;
}

type Duplex = grpc.ClientDuplexStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>;

export class KeepAliveStream {
  closed = false;
  /** The stream ended with an error (the caller may try another endpoint next time). */
  failed = false;
  private readonly stream: Duplex;
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(
    client: ClientOf<'Lease'>,
    private readonly cluster: string,
    private readonly timeoutMs: number,
    private readonly translate: (err: unknown) => Error,
  ) {
    this.stream = client.LeaseKeepAlive();
    this.stream.on('data', (res: LeaseKeepAliveResponse) => this.answer(res));
    this.stream.on('error', (err: unknown) => this.fail(this.translate(err)));
    this.stream.on('end', () => this.fail(new EtcdError(grpc.status.UNAVAILABLE, `etcd-metaproxy: ${cluster} unavailable: keepalive stream ended`)));
  }

  renew(id: bigint): Promise<LeaseKeepAliveResponse> {
    if (this.closed) return Promise.reject(new EtcdError(grpc.status.UNAVAILABLE, `etcd-metaproxy: ${this.cluster} unavailable: keepalive stream closed`));
    const key = id.toString();
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        started: process.hrtime.bigint(),
        timer: setTimeout(() => {
          const list = this.waiting.get(key);
          const i = list ? list.indexOf(w) : -1;
          if (list && i >= 0) list.splice(i, 1);
          this.record('DEADLINE_EXCEEDED', w);
          const err = new EtcdError(grpc.status.UNAVAILABLE, `etcd-metaproxy: ${this.cluster} unavailable: keepalive timed out`);
          reject(err);
          // etcd answers every keepalive (TTL 0 for an unknown lease): the stream is stuck (a
          // stopped or hung member). Give it up, so the next keepalive opens a new one (on the
          // next endpoint); grpc-js would otherwise keep every message written to it.
          this.fail(err);
          this.stream.cancel();
        }, this.timeoutMs),
      };
      const list = this.waiting.get(key);
      if (list) list.push(w);
      else this.waiting.set(key, [w]);
      this.stream.write({ ID: key });
    });
  }

  close(): void {
    this.fail(new EtcdError(grpc.status.UNAVAILABLE, `etcd-metaproxy: ${this.cluster} unavailable: keepalive stream closed`), false);
    this.stream.cancel();
  }

  private answer(res: LeaseKeepAliveResponse): void {
    const list = this.waiting.get(String(res.ID));
    const w = list?.shift();
    if (list && list.length === 0) this.waiting.delete(String(res.ID));
    if (!w) return;
    clearTimeout(w.timer);
    this.record('OK', w);
    w.resolve(res);
  }

  private fail(err: Error, failed = true): void {
    if (this.closed) return;
    this.closed = true;
    this.failed = failed;
    for (const list of this.waiting.values()) {
      for (const w of list) {
        clearTimeout(w.timer);
        this.record(err instanceof EtcdError ? grpc.status[err.code] ?? 'UNKNOWN' : 'UNKNOWN', w);
        w.reject(err);
      }
    }
    this.waiting.clear();
  }

  private record(code: string, w: Waiter): void {
    upstreamRequests.inc({ cluster: this.cluster, method: 'LeaseKeepAlive', code });
    upstreamDuration.observe({ cluster: this.cluster, method: 'LeaseKeepAlive' }, Number(process.hrtime.bigint() - w.started) / 1e9);
  }
}
