/**
 * Streaming methods (Watch, LeaseKeepAlive, Snapshot) over HTTP/1.1, as etcd 3.4's gateway
 * does them: request messages are the JSON values of the request body, read as they arrive;
 * each response message is one line `{"result": {...}}`, sent as soon as it is written.
 *
 * As there: the first request is read before the call starts and a bad one fails the request
 * (UNKNOWN, 500); a later bad value or the end of the body half-closes the stream. The Watch
 * stream stays open after a half-close (etcd's watch keeps sending until the client leaves);
 * LeaseKeepAlive answers what it got and ends.
 */
import type http from 'node:http';
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { status } from '@grpc/grpc-js';
import { BodyTooLarge, JsonValueStream } from './body.js';
import { GatewayCall } from './call.js';
import { decodeResponse, encodeRequest } from './codec.js';
import { httpStatusOf, statusOf, streamErrorChunk, type GatewayStatus } from './errors.js';
import type { GoJsonError, JsonValue } from './json-parse.js';
import { OK_HEADERS, sendError } from './respond.js';

export interface StreamTarget {
  def: grpc.MethodDefinition<object, object>;
  handler: (call: GatewayCall) => void;
  requestType: protobuf.Type;
  responseType: protobuf.Type;
  /** Whether the end of the request body ends the client's side (false: the Watch stays open). */
  halfCloseForwarded: boolean;
  /** A request message larger than this is refused (etcd's gRPC receive limit). */
  maxMessageBytes: number;
  /** Bytes of pending request text that may be buffered. */
  maxBodyBytes: number;
  peer: string;
  path: string;
  authorization: string | undefined;
}

type Decoded = { req: object } | { error: GatewayStatus };

function decode(t: StreamTarget, value: JsonValue): Decoded {
  try {
    const bytes = encodeRequest(t.requestType, value);
    if (bytes.length > t.maxMessageBytes) return { error: tooLarge(bytes.length, t.maxMessageBytes) };
    return { req: t.def.requestDeserialize(bytes) };
  } catch (err) {
    return { error: { code: status.UNKNOWN, message: (err as Error).message } };
  }
}

const tooLarge = (got: number, max: number): GatewayStatus => ({
  code: status.RESOURCE_EXHAUSTED,
  message: `grpc: received message larger than max (${got} vs. ${max})`,
});

function bodyError(err: GoJsonError | BodyTooLarge, t: StreamTarget): GatewayStatus {
  if (err instanceof BodyTooLarge) return tooLarge(err.received, t.maxMessageBytes);
  return { code: status.UNKNOWN, message: err.message };
}

/** Serves a client-streaming (bidirectional) method. */
export async function serveBidi(t: StreamTarget, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const values = new JsonValueStream(req, t.maxBodyBytes);
  const first = await values.next();
  let firstReq: object | null = null;
  if ('error' in first) return sendError(res, bodyError(first.error, t));
  if ('value' in first) {
    const d = decode(t, first.value);
    if ('error' in d) return sendError(res, d.error);
    firstReq = d.req;
  }
  const call = startCall(t, null, res);
  if (firstReq) call.emit('data', firstReq);
  if ('eof' in first) return halfClose(t, call);
  for (;;) {
    const next = await values.next();
    if (call.cancelled) return;
    if (!('value' in next)) return halfClose(t, call);
    const d = decode(t, next.value);
    if ('error' in d) return halfClose(t, call);
    call.emit('data', d.req);
  }
}

/** Serves a server-streaming method (one request, a stream of answers). */
export function serveServerStream(t: StreamTarget, request: object, res: http.ServerResponse): void {
  startCall(t, request, res);
}

function halfClose(t: StreamTarget, call: GatewayCall): void {
  if (t.halfCloseForwarded && !call.cancelled) call.emit('end');
}

function startCall(t: StreamTarget, request: object | null, res: http.ServerResponse): GatewayCall {
  let wroteMessage = false;
  const head = (code: number) => {
    if (!res.headersSent) res.writeHead(code, { ...OK_HEADERS, 'transfer-encoding': 'chunked' });
  };
  const call = new GatewayCall(
    request,
    {
      write: (msg) => {
        const json = decodeResponse(t.responseType, t.def.responseSerialize(msg as object));
        head(200);
        wroteMessage = true;
        return res.write(`${JSON.stringify({ result: json })}\n`);
      },
      end: () => {
        head(200);
        res.end();
      },
      fail: (err) => {
        const s = statusOf(err);
        // Before any message, the status line carries the error too (grpc-gateway v1).
        head(wroteMessage ? 200 : httpStatusOf(s.code));
        res.end(streamErrorChunk(s));
      },
    },
    t.peer,
    t.path,
    t.authorization,
  );
  res.on('drain', () => call.emit('drain'));
  res.on('close', () => call.cancel());
  // Headers go out with the first message, as in etcd (whose gRPC server sends them then).
  t.handler(call);
  return call;
}
