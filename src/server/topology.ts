/**
 * Topology (proto/metaproxy.proto): where this replica's coordinator and shards are, so that
 * `etcd-metaproxy status --endpoints <a proxy>` works without the coordinator's endpoints.
 * These are the endpoints the proxy itself dials (etcd's MemberList likewise shows its peers).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { ProxyConfig } from '../config/types.js';
import { unary } from './unary.js';
import type { Handlers } from './service.js';

export interface TopologyResponse {
  name: string;
  version: string;
  coordinator_endpoints: string[];
  shards: Array<{ name: string; endpoints: string[] }>;
  namespace: string;
}

export interface TopologyDeps {
  logger: Logger;
  maxRequestBytes: number;
  cfg: ProxyConfig;
  /** This replica's name and version (known once it is bound). */
  self: () => { name: string; version: string };
}

export function topologyService(d: TopologyDeps): Handlers<'Topology'> {
  return {
    Get: unary<object, TopologyResponse>(
      'Topology.Get',
      async () => ({
        ...d.self(),
        coordinator_endpoints: d.cfg.coordinator.endpoints,
        shards: d.cfg.shards.map((s) => ({ name: s.name, endpoints: s.endpoints })),
        namespace: d.cfg.namespace,
      }),
      { logger: d.logger, maxRequestBytes: d.maxRequestBytes },
    ),
  };
}
