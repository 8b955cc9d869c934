/**
 * Loads the project's etcd API protos once. The same definitions serve clients (the proxy's
 * server) and talk to upstream etcd clusters (members and coordinator).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { PROTOBUF_DEPTH_LIMIT } from './depth-limit.js';
import { generatedClient, type EtcdServiceName } from './services.js';

export { PROTOBUF_DEPTH_LIMIT };
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

/**
 * A client class of an etcd service with the generated static codecs (etcd/services.ts); its
 * `.service` is the definition the server registers. etcdGrpcObject() above is the same API
 * through proto-loader's reflective codec, for tests that want it.
 */
export function etcdService(name: EtcdServiceName): ServiceCtor {
  return generatedClient(name);
}

/** The proxy's own services (proto/metaproxy.proto), e.g. Topology for `status`. */
export function metaproxyService(name: 'Topology'): ServiceCtor {
  return generatedClient(name);
}
