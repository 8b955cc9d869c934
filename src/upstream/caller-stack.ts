/**
 * grpc-js's client records its caller's stack (`new Error()`) when a call starts, to append it
 * to the call's error. The proxy builds its own errors from the code and details
 * (upstream.ts translate, ownership/forward.ts), so that capture is pure cost: about 8 % of a
 * unary call's CPU here (the proxy makes one member or coordinator call per few client writes).
 */

/** Runs `start`, which only starts a grpc-js call (synchronously), with stack capture off. */
export function withoutCallerStack<T>(start: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return start();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
