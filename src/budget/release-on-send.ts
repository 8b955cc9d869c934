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

/** The response `res` holds `r` until it is written (or its call ends otherwise). */
export function holdUntilSent<T extends object>(res: T, r: Reservation): T {
  reservations.set(res, r);
  return res;
}

export const releaseOnSend: grpc.ServerInterceptor = (_method, call) => {
  let held: Reservation | null = null;
  let ended = false;
  const end = () => {
    ended = true;
    held?.release();
    held = null;
  };
  return new grpc.ServerInterceptingCall(call, {
    start: (next) => next({ onCancel: end }),
    sendMessage: (message: unknown, next: (m: unknown) => void) => {
      if (typeof message === 'object' && message !== null) {
        held = reservations.get(message) ?? null;
        reservations.delete(message);
        // Cancelled before its response was sent: nothing will be written.
        if (ended) end();
      }
      next(message);
    },
    sendStatus: (status, next) => {
      end();
      next(status);
    },
  });
};
