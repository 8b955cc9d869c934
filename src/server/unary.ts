/**
 * Wraps a unary handler: request size limits as etcd applies them, metrics, and errors sent
 * with etcd's gRPC code and message. Unexpected errors are logged and reported as UNKNOWN with
 * their message; they never crash the process.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { EtcdError, Errors } from '../etcd/errors.js';
import { grpcDuration, grpcRequests } from '../metrics/registry.js';
import { tally } from '../metrics/tally.js';

/** Sizes of decoded requests, recorded by the wrapped deserializers (see service.ts). */
export const requestSizes = new WeakMap<object, number>();

/** Go grpc's receive limit in etcd: max request bytes plus 512 KiB of overhead. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;
/** InternalRaftRequest framing etcd adds before comparing with --max-request-bytes. */
const RAFT_OVERHEAD = 16;

export interface UnaryOptions {
  logger: Logger;
  maxRequestBytes: number;
  /** The request goes through raft in etcd, so etcd applies its request-too-large check. */
  isWrite?: (req: never) => boolean;
}

/** What CallCancel needs of a call (grpc-js's ServerUnaryCall): whether it was cancelled, and its event. */
export interface CancellableCall {
  readonly cancelled: boolean;
  once(event: 'cancelled', listener: () => void): unknown;
}

/**
 * Aborts when the client cancels the call before it is answered (a handler waiting for room
 * stops waiting). The AbortController, and the call's 'cancelled' listener, are made only for
 * the handlers that ask: one per call was ~1 % of the proxy's CPU under the put load.
 */
export class CallCancel {
  private controller: AbortController | null = null;
  answered = false;

  constructor(private readonly call: CancellableCall) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      const controller = new AbortController();
      this.controller = controller;
      if (this.call.cancelled) controller.abort();
      // grpc-js also reports 'cancelled' after most answered calls (the client resets the
      // stream): aborting then would only build an AbortError (a stack trace) for nothing.
      else {
        this.call.once('cancelled', () => {
          if (!this.answered) controller.abort();
        });
      }
    }
    return this.controller.signal;
  }
}

/** `cancel.signal` aborts when the client cancels; the call is passed for the few handlers that read its metadata (auth). */
export type Handler<Req, Res> = (req: Req, cancel: CallCancel, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>;

export function unary<Req extends object, Res>(
  method: string,
  handler: Handler<Req, Res>,
  opts: UnaryOptions,
  isWrite: (req: Req) => boolean = () => false,
): grpc.handleUnaryCall<Req, Res> {
  // Made once: a tally and a series cost no label lookup per call (metrics/tally.ts, fast-histogram.ts).
  const okCount = tally(grpcRequests, { method, code: 'OK' });
  const duration = grpcDuration.labels({ method });
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const cancel = new CallCancel(call);
    const finish = (err: EtcdError | null, res?: Res) => {
      cancel.answered = true;
      if (err) grpcRequests.inc({ method, code: grpc.status[err.code] ?? String(err.code) });
      else okCount.inc();
      duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      if (err) callback({ code: err.code, details: err.message, metadata: new grpc.Metadata() } as grpc.ServiceError);
      else callback(null, res);
    };
    const req = call.request;
    const size = requestSizes.get(req) ?? 0;
    let write = false;
    try {
      write = isWrite(req);
    } catch {
      write = false;
    }
    if (write && size + RAFT_OVERHEAD > opts.maxRequestBytes) return finish(Errors.requestTooLarge());
    handler(req, cancel, call).then(
      (res) => finish(null, res),
      (err: unknown) => {
        if (err instanceof EtcdError) return finish(err);
        opts.logger.error({ err, method }, 'unexpected error serving request');
        finish(new EtcdError(grpc.status.UNKNOWN, err instanceof Error ? err.message : String(err)));
      },
    );
  };
}
