/** What `etcd-metaproxy status` reports. int64 values are decimal strings (never lossy numbers). */

export type Health = 'healthy' | 'degraded' | 'unhealthy' | 'unknown';

export interface EndpointStatus {
  endpoint: string;
  /** null when the endpoint answered Status, else why not. */
  error: string | null;
  version?: string;
  dbSize?: string;
  /** Alarms and other errors the member reports in its Status. */
  errors?: string[];
}

export interface ClusterStatus {
  endpoints: EndpointStatus[];
  /** healthy: every endpoint answers; degraded: some do; unhealthy: none. */
  health: Health;
}

export interface CoordinatorStatus extends ClusterStatus {
  /** Highest meta revision allocated or reserved (the global clock; a revision block's end while a replica holds one). */
  clockRevision: string | null;
  /** Last compaction's meta revision; null when never compacted. */
  compactRevision: string | null;
  partitions: number | null;
  routingPrefixSegments: number | null;
}

export interface ShardStatus extends ClusterStatus {
  name: string;
  /** Where the endpoints came from: the --config file, a registered proxy, or nowhere. */
  endpointsFrom: 'config' | 'proxy' | 'none';
  /** User keys in the shard (system keys excluded). */
  keys: string | null;
  /** Database size of the largest member of the shard, in bytes. */
  dbSize: string | null;
  /** The meta revision the shard stands at (its clock key). */
  revision: string | null;
  /** Partitions of the recorded partition map owned by this shard. */
  partitions: number;
  /** A problem reading the shard (keys or clock), if any. */
  error: string | null;
}

export interface ProxyStatus {
  id: string;
  name: string;
  clientURLs: string[];
  version: string;
  since: string;
}

/** The proxy `status` was pointed at, which named the coordinator and shards. */
export interface ViaProxy {
  endpoint: string;
  name: string;
  version: string;
}

export interface StatusReport {
  /** Set when --endpoints named a proxy (rather than the coordinator). */
  via?: ViaProxy;
  coordinator: CoordinatorStatus;
  shards: ShardStatus[];
  proxies: ProxyStatus[];
  /** Problems that are not one cluster's (e.g. no partition map recorded yet). */
  notes: string[];
}

/** True when the coordinator and every shard (at least one known) answer on every endpoint. */
export function allHealthy(r: StatusReport): boolean {
  return r.coordinator.health === 'healthy' && r.shards.length > 0 && r.shards.every((s) => s.health === 'healthy' && s.error === null);
}
