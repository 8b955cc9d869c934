/**
 * Loads the project's etcd API protos once. The same definitions serve clients (the proxy's
 * server) and talk to upstream etcd clusters (members and coordinator).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';

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
