/**
 * The call object a gateway request hands to a gRPC service implementation, in process: the
 * same handlers the gRPC server runs get a request (unary and server streaming), request
 * messages as 'data' events (client streaming), and write/end/'error' for their answers, so
 * every check, error, metric and read-your-writes path is the gRPC one.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';

export interface CallSink {
  /** A response message; false when the HTTP response is full (a 'drain' follows). */
  write(msg: unknown): boolean;
  /** The stream ended cleanly. */
  end(): void;
  /** The stream ended with an error (a grpc-js status object or an EtcdError). */
  fail(err: unknown): void;
}

export class GatewayCall extends EventEmitter {
  cancelled = false;
  readonly metadata = new grpc.Metadata();
  private finished = false;

  constructor(
    readonly request: unknown,
    private readonly sink: CallSink,
    private readonly peer: string,
    private readonly path: string,
    authorization: string | undefined,
  ) {
    super();
    // etcd reads the token from "token" (gRPC clients) or "authorization" (its gateway).
    if (authorization) {
      this.metadata.set('authorization', authorization);
      this.metadata.set('token', authorization);
    }
    this.on('error', (err: unknown) => this.finish(() => this.sink.fail(err)));
  }

  write(msg: unknown): boolean {
    if (this.finished || this.cancelled) return false;
    return this.sink.write(msg);
  }

  end(): void {
    this.finish(() => this.sink.end());
  }

  /** The HTTP client went away. */
  cancel(): void {
    if (this.finished || this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
    this.emit('close');
  }

  getPeer(): string {
    return this.peer;
  }

  getPath(): string {
    return this.path;
  }

  getDeadline(): grpc.Deadline {
    return Infinity;
  }

  sendMetadata(): void {}

  private finish(fn: () => void): void {
    if (this.finished) return;
    this.finished = true;
    fn();
  }
}
