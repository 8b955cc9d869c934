/**
 * Releases a response's budget reservation once it was written: a server interceptor sees the
 * handler's response object go out (sendMessage), and the status that follows it only after
 * the message was written to the HTTP/2 stream (grpc-js sends a unary call's OK status from
 * the write's callback), so the bytes are released when the response has left, whatever the
 * client's flow control made it wait. A cancelled call releases at once.
 */
import * as grpc from '@grpc/grpc-js';
import type { Reservation } from './memory-budget.js';

/** Response objects and the reservation each holds until written. */
const reservations = new WeakMap<object, Reservation>();

/**
 * The methods whose responses hold reservations (server/kv.ts): only their calls go through
 * the interceptor, which costs every call it wraps about a tenth of its transport CPU.
 */
const HOLDING_METHODS = new Set(['/etcdserverpb.KV/Range', '/etcdserverpb.KV/Txn']);

/**
 * Called as a response of method `path` is serialized: a reservation that no interceptor
 * watches (a method outside HOLDING_METHODS) ends now rather than never.
 */
export function serializing(path: string, res: object): void {
  if (HOLDING_METHODS.has(path)) return;
  const r = reservations.get(res);
  if (!r) return;
  reservations.delete(res);
  r.release();
}

/** The response `res` holds `r` until it is written (or its call ends otherwise). */
export function holdUntilSent<T extends object>(res: T, r: Reservation): T {
  reservations.set(res, r);
  return res;
}

type Listener = Parameters<grpc.ServerInterceptingCallInterface['start']>[0];

/**
 * A call as grpc-js passes it down the interceptor chain, watching its response go out. A plain
 * delegate rather than grpc-js's ServerInterceptingCall, whose listener building and message
 * queueing cost each call it wraps about a tenth of its transport CPU.
 */
class ReleasingCall implements grpc.ServerInterceptingCallInterface {
  private held: Reservation | null = null;
  private ended = false;

  constructor(private readonly next: grpc.ServerInterceptingCallInterface) {}

  start(listener: Listener): void {
    this.next.start({
      onReceiveMetadata: (m) => listener.onReceiveMetadata(m),
      onReceiveMessage: (m: unknown) => listener.onReceiveMessage(m),
      onReceiveHalfClose: () => listener.onReceiveHalfClose(),
      onCancel: () => {
        this.end();
        listener.onCancel();
      },
    });
  }

  sendMessage(message: unknown, callback: () => void): void {
    if (typeof message === 'object' && message !== null) {
      this.held = reservations.get(message) ?? null;
      reservations.delete(message);
      // Cancelled before its response was sent: nothing will be written.
      if (this.ended) this.end();
    }
    this.next.sendMessage(message, callback);
  }

  /** grpc-js sends a unary call's status once its message was written. */
  sendStatus(status: Parameters<grpc.ServerInterceptingCallInterface['sendStatus']>[0]): void {
    this.end();
    this.next.sendStatus(status);
  }

  private end(): void {
    this.ended = true;
    this.held?.release();
    this.held = null;
  }

  sendMetadata(metadata: grpc.Metadata): void {
    this.next.sendMetadata(metadata);
  }
  startRead(): void {
    this.next.startRead();
  }
  getPeer(): string {
    return this.next.getPeer();
  }
  getDeadline(): grpc.Deadline {
    return this.next.getDeadline();
  }
  getHost(): string {
    return this.next.getHost();
  }
  getAuthContext(): ReturnType<grpc.ServerInterceptingCallInterface['getAuthContext']> {
    return this.next.getAuthContext();
  }
  getConnectionInfo(): ReturnType<grpc.ServerInterceptingCallInterface['getConnectionInfo']> {
    return this.next.getConnectionInfo();
  }
  getMetricsRecorder(): ReturnType<grpc.ServerInterceptingCallInterface['getMetricsRecorder']> {
    return this.next.getMetricsRecorder();
  }
}

// grpc-js chains interceptors by the call interface, though the type asks for its class.
export const releaseOnSend: grpc.ServerInterceptor = (method, call) =>
  (HOLDING_METHODS.has(method.path) ? new ReleasingCall(call) : call) as grpc.ServerInterceptingCall;
