/**
 * etcd's HTTP/JSON gateway (the grpc-gateway API etcd serves on its client URL): each request
 * is decoded into the gRPC request message and handed, in process, to the same service
 * implementation the proxy's gRPC server runs; the answer is written as etcd's gateway writes
 * it (codec.ts, errors.ts). Also /version.
 */
import type http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import type { Logger } from 'pino';
import { BodyTooLarge, readBody } from './body.js';
import { GatewayCall } from './call.js';
import { decodeResponse, encodeRequest, protoRoot } from './codec.js';
import { statusOf, type GatewayStatus } from './errors.js';
import { GoJsonError, readJsonValue } from './json-parse.js';
import { CORS_HEADERS, sendError, sendJson, sendText } from './respond.js';
import { isGatewayPath, routeOf, type Route } from './routes.js';
import { gatewayRequests } from '../metrics/registry.js';
import { serveBidi, serveServerStream, type StreamTarget } from './stream.js';

export interface GatewayOptions {
  /** The definitions and implementations the gRPC server serves, by service name. */
  definitions: Record<string, grpc.ServiceDefinition>;
  implementations: Record<string, grpc.UntypedServiceImplementation>;
  logger: Logger;
  /** etcd's --max-request-bytes; a request message may be this plus gRPC's 512 KiB overhead. */
  maxRequestBytes: number;
  grpcOverheadBytes: number;
  /** The etcd server version reported by /version (and Maintenance.Status). */
  etcdVersion: string;
}

/** The paths the gateway answers: /v3/..., /v3beta/... and /version. */
export function ownsPath(pathname: string): boolean {
  return pathname === '/version' || isGatewayPath(pathname);
}

interface Target {
  def: grpc.MethodDefinition<object, object>;
  impl: grpc.UntypedHandleCall;
  requestType: protobuf.Type;
  responseType: protobuf.Type;
}

type UnaryHandler = (call: GatewayCall, callback: (err: unknown, res?: unknown) => void) => void;
type StreamHandler = (call: GatewayCall) => void;

export class Gateway {
  private readonly maxMessageBytes: number;
  private readonly maxBodyBytes: number;

  constructor(private readonly opts: GatewayOptions) {
    this.maxMessageBytes = opts.maxRequestBytes + opts.grpcOverheadBytes;
    // JSON carries bytes as base64 (4/3) and adds field names: twice the message limit is room enough.
    this.maxBodyBytes = 2 * this.maxMessageBytes;
    protoRoot();
  }

  /** Answers one HTTP request for a path that ownsPath() accepts. */
  serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    const route = routeOf(pathname);
    const method = route ? `${route.service}.${route.method}` : pathname === '/version' ? 'version' : 'unknown';
    res.once('close', () => gatewayRequests.inc({ method, status: String(res.statusCode) }));
    this.dispatch(req, res).catch((err: unknown) => {
      this.opts.logger.error({ err, url: req.url }, 'gateway request failed');
      sendError(res, { code: grpc.status.UNKNOWN, message: err instanceof Error ? err.message : String(err) });
    });
  }

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method === 'OPTIONS') return sendJson(res, 200, '', CORS_HEADERS);
    if (pathname === '/version') return this.version(req, res);
    const route = routeOf(pathname);
    if (!route) return sendText(res, 404, 'Not Found');
    if (req.method !== 'POST') return sendText(res, 405, 'Method Not Allowed');
    const target = this.target(route);
    const peer = `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? 0}`;
    const path = `/etcdserverpb.${route.service}/${route.method}`;
    const authorization = req.headers.authorization;
    if (!target) {
      req.resume();
      return sendError(res, { code: grpc.status.UNIMPLEMENTED, message: `The server does not implement the method ${path}` });
    }
    if (target.def.requestStream) {
      return serveBidi(this.streamTarget(target, route, peer, path, authorization), req, res);
    }
    const decoded = await this.unaryRequest(req, target, res);
    if ('error' in decoded) return sendError(res, decoded.error);
    if (target.def.responseStream) {
      return serveServerStream(this.streamTarget(target, route, peer, path, authorization), decoded.req, res);
    }
    const answer = await new Promise<{ err: unknown; res?: unknown }>((resolve) => {
      const call = new GatewayCall(decoded.req, { write: () => false, end: () => undefined, fail: () => undefined }, peer, path, authorization);
      // A grpc-js handler of a unary method, handed a GatewayCall that stands in for grpc-js's call object.
      (target.impl as unknown as UnaryHandler)(call, (err, out) => resolve({ err, res: out }));
    });
    if (answer.err) return sendError(res, statusOf(answer.err));
    const json = decodeResponse(target.responseType, target.def.responseSerialize(answer.res as object));
    sendJson(res, 200, JSON.stringify(json));
  }

  /** The request message of a unary or server-streaming call: the body's first JSON value. */
  private async unaryRequest(req: http.IncomingMessage, t: Target, res: http.ServerResponse): Promise<{ req: object } | { error: GatewayStatus }> {
    let text: string;
    try {
      text = await readBody(req, this.maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        // The rest of the body is not read: the connection closes after the answer.
        res.shouldKeepAlive = false;
        return { error: this.tooLarge(err.received) };
      }
      throw err;
    }
    try {
      const first = readJsonValue(text, 0);
      const bytes = encodeRequest(t.requestType, first?.value ?? null);
      if (bytes.length > this.maxMessageBytes) return { error: this.tooLarge(bytes.length) };
      return { req: t.def.requestDeserialize(bytes) };
    } catch (err) {
      if (err instanceof GoJsonError) return { error: { code: grpc.status.INVALID_ARGUMENT, message: err.message } };
      throw err;
    }
  }

  private tooLarge(got: number): GatewayStatus {
    return { code: grpc.status.RESOURCE_EXHAUSTED, message: `grpc: received message larger than max (${got} vs. ${this.maxMessageBytes})` };
  }

  private streamTarget(t: Target, route: Route, peer: string, path: string, authorization: string | undefined): StreamTarget {
    return {
      def: t.def,
      // A grpc-js streaming handler, handed a GatewayCall that stands in for grpc-js's stream.
      handler: t.impl as unknown as StreamHandler,
      requestType: t.requestType,
      responseType: t.responseType,
      halfCloseForwarded: route.method !== 'Watch',
      maxMessageBytes: this.maxMessageBytes,
      maxBodyBytes: this.maxBodyBytes,
      peer,
      path,
      authorization,
    };
  }

  /** The method's definition, implementation and protobuf types; null when the proxy does not serve it. */
  private target(route: Route): Target | null {
    const def = this.opts.definitions[route.service]?.[route.method] as grpc.MethodDefinition<object, object> | undefined;
    const impl = this.opts.implementations[route.service]?.[route.method];
    if (!def || !impl) return null;
    try {
      const service = protoRoot().lookupService(`etcdserverpb.${route.service}`);
      const method = service.methods[route.method];
      if (!method?.resolvedRequestType || !method.resolvedResponseType) return null;
      return { def, impl, requestType: method.resolvedRequestType, responseType: method.resolvedResponseType };
    } catch {
      return null;
    }
  }

  /** etcd's /version: the server version and the cluster version (major.minor.0). */
  private version(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume();
    if (req.method !== 'GET') return sendText(res, 405, 'Method Not Allowed');
    const [major, minor] = this.opts.etcdVersion.split('.');
    const body = JSON.stringify({ etcdserver: this.opts.etcdVersion, etcdcluster: `${major}.${minor}.0` });
    sendJson(res, 200, body, { ...CORS_HEADERS, 'content-type': 'application/json' });
  }
}
