/**
 * Loads the project's etcd API protos once. The same definitions serve clients (the proxy's
 * server) and talk to upstream etcd clusters (members and coordinator).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

/**
 * How deep protobufjs (proto-loader's encoder and decoder) may nest messages. Its default, 100,
 * is ~48 nested txns: a member would apply a deeper txn and the proxy then fail to decode the
 * answer. etcd itself has no limit; the proxy refuses client requests nested deeper than
 * server/wire-guard.ts's MAX_TXN_NESTING, well inside this.
 */
export const PROTOBUF_DEPTH_LIMIT = 1100;
protobuf.util.recursionLimit = PROTOBUF_DEPTH_LIMIT;
protobuf.Reader.recursionLimit = PROTOBUF_DEPTH_LIMIT;

const here = path.dirname(fileURLToPath(import.meta.url));
/** proto/ sits at the package root: two levels up from src/etcd or dist/etcd. */
export const PROTO_DIR = path.resolve(here, '..', '..', 'proto');

/** Field names as in the .proto, int64 as decimal strings (lossless), enums as numbers. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let cached: grpc.GrpcObject | undefined;

export function etcdGrpcObject(): grpc.GrpcObject {
  if (!cached) {
    const def = protoLoader.loadSync(['rpc.proto'], LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(def);
  }
  return cached;
}

type ServiceCtor = grpc.ServiceClientConstructor;

export function etcdService(name: 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth'): ServiceCtor {
  const pkg = etcdGrpcObject()['etcdserverpb'] as grpc.GrpcObject;
  return pkg[name] as ServiceCtor;
}

let cachedOwn: grpc.GrpcObject | undefined;

/** The proxy's own services (proto/metaproxy.proto), e.g. Topology for `status`. */
export function metaproxyService(name: 'Topology'): ServiceCtor {
  if (!cachedOwn) cachedOwn = grpc.loadPackageDefinition(protoLoader.loadSync(['metaproxy.proto'], LOADER_OPTIONS));
  const pkg = ((cachedOwn['etcdmetaproxy'] as grpc.GrpcObject)['v1'] as grpc.GrpcObject);
  return pkg[name] as ServiceCtor;
}
