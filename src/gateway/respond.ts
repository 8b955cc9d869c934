/** Writing gateway answers: headers as etcd's gateway sends them, JSON bodies, error bodies. */
import type http from 'node:http';
import { errorBody, httpStatusOf, type GatewayStatus } from './errors.js';

/** etcd's client handler answers every request with these (CORS for browsers). */
export const CORS_HEADERS: Record<string, string> = {
  'access-control-allow-headers': 'accept, content-type, authorization',
  'access-control-allow-methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'access-control-allow-origin': '*',
};

/** A successful call's headers (grpc-gateway forwards the gRPC response's content-type). */
export const OK_HEADERS: Record<string, string> = {
  ...CORS_HEADERS,
  'content-type': 'application/json',
  'grpc-metadata-content-type': 'application/grpc',
};

export function sendJson(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = OK_HEADERS): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendError(res: http.ServerResponse, s: GatewayStatus): void {
  sendJson(res, httpStatusOf(s.code), errorBody(s), { ...CORS_HEADERS, 'content-type': 'application/json' });
}

/** Go's http.Error: a plain-text status line (404 "Not Found", 405 "Method Not Allowed"). */
export function sendText(res: http.ServerResponse, status: number, text: string): void {
  sendJson(res, status, `${text}\n`, { ...CORS_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
}
