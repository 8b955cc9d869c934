/**
 * Service definitions for the server, with deserializers that refuse malformed requests as etcd
 * does (wire-guard.ts), record each request's size, and serializers that pass already-encoded
 * responses through (the read cache's, see Encoded).
 */
import type * as grpc from '@grpc/grpc-js';
import { etcdService } from '../etcd/proto.js';
import type { GeneratedServiceName, ServerOf } from '../etcd/services.js';
import { serializing } from '../budget/release-on-send.js';
import { requestSizes } from './unary.js';
import { refuseMalformed, requestType } from './wire-guard.js';

/** A response already in protobuf form: sent as is. */
export class Encoded {
  constructor(readonly bytes: Buffer) {}
}

export type ServiceName = 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth';

/** A unary handler that may also answer with pre-encoded bytes. */
type OrEncoded<H> = H extends grpc.handleUnaryCall<infer Req, infer Res> ? grpc.handleUnaryCall<Req, Res | Encoded> : H;

/**
 * The handlers of a generated service (KVServer, ...), typed against the generated messages and
 * keyed by the .proto method names, as server.addService takes them.
 */
export type Handlers<N extends GeneratedServiceName> = { [K in keyof ServerOf<N>]: OrEncoded<ServerOf<N>[K]> };

export function serviceDefinition(name: ServiceName): grpc.ServiceDefinition {
  const base = etcdService(name).service;
  const out: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const [method, def] of Object.entries(base)) {
    const d = def as grpc.MethodDefinition<object, object>;
    const type = requestType(d.path);
    out[method] = {
      ...d,
      requestDeserialize: (buf: Buffer) => {
        // Checked as etcd's decoder checks it; a refusal is answered in the handler's place (wire-guard.ts).
        const refused = refuseMalformed(type, buf, d.requestStream || d.responseStream);
        if (refused) return refused;
        const msg = d.requestDeserialize(buf);
        requestSizes.set(msg, buf.length);
        return msg;
      },
      responseSerialize: (res: object) => {
        serializing(d.path, res);
        return res instanceof Encoded ? res.bytes : d.responseSerialize(res);
      },
    };
  }
  return out as grpc.ServiceDefinition;
}
