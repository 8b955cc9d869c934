/**
 * Is a `status --endpoints` endpoint a proxy? A proxy answers Topology.Get (proto/metaproxy.proto)
 * with its coordinator and shard endpoints; a plain etcd (the coordinator, or a member) answers
 * UNIMPLEMENTED.
 */
import * as grpc from '@grpc/grpc-js';
import { typedClient } from '../etcd/services.js';

export interface ProxyTopology {
  /** The endpoint that answered. */
  endpoint: string;
  name: string;
  version: string;
  coordinatorEndpoints: string[];
  shards: Record<string, string[]>;
  namespace: string;
}

interface TopologyMessage {
  name: string;
  version: string;
  coordinator_endpoints: string[];
  shards: Array<{ name: string; endpoints: string[] }>;
  namespace: string;
}


function askOne(endpoint: string, timeoutMs: number): Promise<TopologyMessage | null> {
  const Ctor = typedClient('Topology');
  const client = new Ctor(endpoint.replace(/^[a-z]+:\/\//, '').replace(/\/+$/, ''), grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.Get({}, new grpc.Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
      client.close();
      // UNIMPLEMENTED: a plain etcd; anything else (down, timed out): not known to be a proxy.
      resolve(err ? null : res);
    });
  });
}

/** The topology of the first endpoint that is a proxy, or null when none is (or none answers). */
export async function proxyTopology(endpoints: string[], timeoutMs: number): Promise<ProxyTopology | null> {
  const answers = await Promise.all(endpoints.map((e) => askOne(e, timeoutMs)));
  const i = answers.findIndex((a) => a !== null);
  if (i < 0) return null;
  const t = answers[i]!;
  return {
    endpoint: endpoints[i]!,
    name: t.name,
    version: t.version,
    coordinatorEndpoints: t.coordinator_endpoints,
    shards: Object.fromEntries(t.shards.map((s) => [s.name, s.endpoints])),
    namespace: t.namespace,
  };
}
