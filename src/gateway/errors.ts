/**
 * Errors as etcd 3.4's gateway (grpc-gateway v1) writes them: a unary error is
 * `{"error": msg, "message": msg, "code": grpcCode}` with the HTTP status mapped from the gRPC
 * code (FAILED_PRECONDITION is 412 there, OUT_OF_RANGE 400); an error in a streaming response
 * after it started is one more chunk, `{"error": {"grpc_code", "http_code", "message", "http_status"}}`.
 */
import http from 'node:http';
import { status } from '@grpc/grpc-js';

const HTTP_STATUS: Record<number, number> = {
  [status.OK]: 200,
  [status.CANCELLED]: 408,
  [status.UNKNOWN]: 500,
  [status.INVALID_ARGUMENT]: 400,
  [status.DEADLINE_EXCEEDED]: 504,
  [status.NOT_FOUND]: 404,
  [status.ALREADY_EXISTS]: 409,
  [status.PERMISSION_DENIED]: 403,
  [status.UNAUTHENTICATED]: 401,
  [status.RESOURCE_EXHAUSTED]: 429,
  [status.FAILED_PRECONDITION]: 412,
  [status.ABORTED]: 409,
  [status.OUT_OF_RANGE]: 400,
  [status.UNIMPLEMENTED]: 501,
  [status.INTERNAL]: 500,
  [status.UNAVAILABLE]: 503,
  [status.DATA_LOSS]: 500,
};

export function httpStatusOf(code: number): number {
  return HTTP_STATUS[code] ?? 500;
}

/** A gRPC status as the gateway reports it. */
export interface GatewayStatus {
  code: number;
  message: string;
}

/** A service error (EtcdError or a grpc-js style status object) → its code and message. */
export function statusOf(err: unknown): GatewayStatus {
  if (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number') {
    const e = err as { code: number; details?: string; message?: string };
    return { code: e.code, message: e.details ?? e.message ?? '' };
  }
  return { code: status.UNKNOWN, message: err instanceof Error ? err.message : String(err) };
}

export function errorBody(s: GatewayStatus): string {
  return JSON.stringify({ error: s.message, message: s.message, code: s.code });
}

export function streamErrorChunk(s: GatewayStatus): string {
  const httpCode = httpStatusOf(s.code);
  return JSON.stringify({ error: { grpc_code: s.code, http_code: httpCode, message: s.message, http_status: http.STATUS_CODES[httpCode] ?? '' } });
}
