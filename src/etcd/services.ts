/**
 * The etcd services with the generated static codecs (etcd/gen/, `npm run gen:proto`), keyed by
 * the methods' .proto names (Range, Txn, LeaseKeepAlive) as grpc-js clients and the server's
 * handlers name them. protobufjs's reflective codec behind @grpc/proto-loader measured 2.5-3x
 * slower on the proxy's hot paths (member txns and watch events, client puts).
 */
import * as grpc from '@grpc/grpc-js';
import { TopologyService, type TopologyClient, type TopologyServer } from './gen/metaproxy.js';
import {
  AuthService,
  ClusterService,
  KVService,
  LeaseService,
  MaintenanceService,
  WatchService,
  type AuthClient,
  type AuthServer,
  type ClusterClient,
  type ClusterServer,
  type KVClient,
  type KVServer,
  type LeaseClient,
  type LeaseServer,
  type MaintenanceClient,
  type MaintenanceServer,
  type WatchClient,
  type WatchServer,
} from './gen/rpc.js';

/** "/etcdserverpb.KV/Range" -> "Range". */
type MethodName<P> = P extends `/${string}/${infer M}` ? M : never;
/** A generated service, its methods renamed from camelCase (ts-proto's hashKv) to the .proto's (HashKV). */
export type ProtoNamed<S> = { [K in keyof S as S[K] extends { path: infer P } ? MethodName<P> : never]: S[K] };

const GENERATED = {
  KV: KVService,
  Watch: WatchService,
  Lease: LeaseService,
  Cluster: ClusterService,
  Maintenance: MaintenanceService,
  Auth: AuthService,
  Topology: TopologyService,
};

export type EtcdServiceName = 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth';
export type GeneratedServiceName = keyof typeof GENERATED;
export type ServiceDefinitionOf<N extends GeneratedServiceName> = ProtoNamed<(typeof GENERATED)[N]>;

const definitions = new Map<GeneratedServiceName, grpc.ServiceDefinition>();
const clients = new Map<GeneratedServiceName, grpc.ServiceClientConstructor>();

function protoNamed(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(Object.values(service).map((def) => [def.path.slice(def.path.lastIndexOf('/') + 1), def]));
}

/** The service definition (methods with their codecs) for a server or a client. */
export function generatedService<N extends GeneratedServiceName>(name: N): ServiceDefinitionOf<N> & grpc.ServiceDefinition {
  let def = definitions.get(name);
  if (!def) definitions.set(name, (def = protoNamed(GENERATED[name])));
  return def as ServiceDefinitionOf<N> & grpc.ServiceDefinition;
}

/** A client class of the service, as grpc.loadPackageDefinition makes them (client.Txn(...)). */
export function generatedClient(name: GeneratedServiceName): grpc.ServiceClientConstructor {
  let ctor = clients.get(name);
  if (!ctor) {
    const full = name === 'Topology' ? 'etcdmetaproxy.v1.Topology' : `etcdserverpb.${name}`;
    clients.set(name, (ctor = grpc.makeGenericClientConstructor(generatedService(name), full)));
  }
  return ctor;
}

interface Servers {
  KV: KVServer;
  Watch: WatchServer;
  Lease: LeaseServer;
  Cluster: ClusterServer;
  Maintenance: MaintenanceServer;
  Auth: AuthServer;
  Topology: TopologyServer;
}

type Generated = typeof GENERATED;

/** The handlers of a generated service (KVServer, ...) under the .proto method names. */
export type ServerOf<N extends GeneratedServiceName> = {
  [K in keyof Generated[N] as Generated[N][K] extends { path: infer P } ? MethodName<P> : never]: K extends keyof Servers[N] ? Servers[N][K] : never;
};

interface Clients {
  KV: KVClient;
  Watch: WatchClient;
  Lease: LeaseClient;
  Cluster: ClusterClient;
  Maintenance: MaintenanceClient;
  Auth: AuthClient;
  Topology: TopologyClient;
}

/** A client of a generated service, its methods typed and under the .proto names (client.LeaseKeepAlive). */
export type ClientOf<N extends GeneratedServiceName> = grpc.Client & {
  [K in keyof Generated[N] as Generated[N][K] extends { path: infer P } ? MethodName<P> : never]: K extends keyof Clients[N] ? Clients[N][K] : never;
};

/** generatedClient(name), typed. */
export function typedClient<N extends GeneratedServiceName>(
  name: N,
): new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>) => ClientOf<N> {
  // The one cast: grpc-js types the methods of a generic client as an index of Functions.
  return generatedClient(name) as unknown as new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>) => ClientOf<N>;
}
