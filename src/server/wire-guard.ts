/**
 * Refuses malformed or too deeply nested requests before any handler sees them (etcd/wire-check.ts).
 *
 * grpc-js answers a throwing deserializer with its own fixed text ("Error deserializing
 * request"), so the deserializer (service.ts) hands a WireRefusal on instead, which is answered
 * with etcd's code and message and never reaches the handler: by refusingMalformed() for unary
 * methods, by a server interceptor for streaming ones (their messages reach handlers as
 * events). Unary calls skip grpc-js's interceptor layer, about a tenth of a call's transport
 * CPU here.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { PROTO_DIR, PROTOBUF_DEPTH_LIMIT } from '../etcd/proto.js';
import { checkWire } from '../etcd/wire-check.js';

/**
 * A txn may nest txns this deep. etcd's limit is its --max-txn-ops (default 128), which every
 * nesting level counts against (the proxy checks the same with limits.maxTxnOps); this bound
 * only matters for a limits.maxTxnOps above it (README "Differences from etcd"). Each level
 * is two messages (RequestOp, TxnRequest); the proxy's member txns and responses add a few more,
 * well within PROTOBUF_DEPTH_LIMIT, so a request the proxy accepts is one it can also encode,
 * send and answer: nothing is applied that the client is then told failed.
 */
export const MAX_TXN_NESTING = 256;
const MAX_MESSAGE_DEPTH = 2 * MAX_TXN_NESTING + 1;
if (4 * MAX_TXN_NESTING > PROTOBUF_DEPTH_LIMIT) throw new Error('wire-guard: MAX_TXN_NESTING exceeds what protobufjs is allowed to nest');

/** A request refused before decoding: answered with this status by the interceptor. */
export class WireRefusal {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {}
}

let root: protobuf.Root | undefined;

function protoRoot(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
    r.loadSync('rpc.proto', { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

/** The request type of `/pkg.Service/Method`, or null when the schema does not know it. */
export function requestType(methodPath: string): protobuf.Type | null {
  const m = /^\/(.+)\.([^./]+)\/([^/]+)$/.exec(methodPath);
  if (!m) return null;
  try {
    const svc = protoRoot().lookupService(`${m[1]}.${m[2]}`);
    const method = svc.methods[m[3]];
    return method?.resolvedRequestType ?? null;
  } catch {
    return null;
  }
}

/** Every method of every service in a proto file (for tests that go through all of them). */
export function methodsOf(file: string): Array<{ path: string; requestStream: boolean; responseStream: boolean }> {
  const out: Array<{ path: string; requestStream: boolean; responseStream: boolean }> = [];
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      if (obj instanceof protobuf.Service) {
        if (!obj.filename || obj.filename.endsWith(file)) {
          const full = obj.fullName.replace(/^\./, '');
          for (const m of obj.methodsArray) out.push({ path: `/${full}/${m.name}`, requestStream: !!m.requestStream, responseStream: !!m.responseStream });
        }
      } else if (obj instanceof protobuf.Namespace) visit(obj);
    }
  };
  visit(protoRoot());
  return out;
}

/** A WireRefusal for a request etcd's decoder refuses (or one nested too deep), else null. */
export function refuseMalformed(type: protobuf.Type | null, buf: Buffer, streaming: boolean): WireRefusal | null {
  if (!type) return null;
  const check = checkWire(type, buf, MAX_MESSAGE_DEPTH);
  if (check.error !== null) {
    // grpc-go's wording differs between unary handlers and stream reads (etcd's streams return it as is).
    const prefix = streaming ? 'grpc: failed to unmarshal the received message ' : 'grpc: error unmarshalling request: ';
    return new WireRefusal(grpc.status.INTERNAL, prefix + check.error);
  }
  if (check.depth > MAX_MESSAGE_DEPTH) {
    // etcd counts each nesting level against --max-txn-ops: with its default (128) this is
    // its own answer for any txn this deep.
    return new WireRefusal(grpc.status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request');
  }
  return null;
}

/** A service's unary handlers, each answering a WireRefusal in its place. */
export function refusingMalformed(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = { ...impl };
  for (const [method, md] of Object.entries(def)) {
    // A method left out stays out: grpc-js answers it UNIMPLEMENTED.
    if (md.requestStream || md.responseStream || !impl[method]) continue;
    const handler = impl[method] as grpc.handleUnaryCall<unknown, unknown>;
    const refusing: grpc.handleUnaryCall<unknown, unknown> = (call, callback) => {
      const req: unknown = call.request;
      if (req instanceof WireRefusal) return callback({ code: req.code, details: req.details, metadata: new grpc.Metadata() } as grpc.ServiceError);
      handler(call, callback);
    };
    out[method] = refusing;
  }
  return out;
}

/** Answers a WireRefusal in place of a streaming method's handler (unary ones: refusingMalformed). */
export const wireGuardInterceptor: grpc.ServerInterceptor = (method, call) => {
  // Left alone, the call goes on as it came (grpc-js chains by the call interface; the type asks for the class).
  if (!method.requestStream && !method.responseStream) return call as grpc.ServerInterceptingCall;
  let refused = false;
  return new grpc.ServerInterceptingCall(call, {
    start: (next) => {
      next(
        new grpc.ServerListenerBuilder()
          .withOnReceiveMessage((message: unknown, pass) => {
            if (refused) return;
            if (message instanceof WireRefusal) {
              refused = true;
              call.sendStatus({ code: message.code, details: message.details, metadata: new grpc.Metadata() });
              return;
            }
            pass(message);
          })
          .withOnReceiveHalfClose((pass) => {
            if (!refused) pass();
          })
          .build(),
      );
    },
  });
};
