/**
 * Gathers the meta-cluster's state for `etcd-metaproxy status`: the coordinator (clock,
 * compaction, partition map, registered proxies) and every shard (health, keys, size,
 * revision, partitions owned). The coordinator's endpoints are given, or come from the proxy
 * given instead (status/proxy-probe.ts). Shard endpoints come from the configuration when
 * given, else from that proxy, else from a registered proxy's record; a shard whose endpoints
 * are unknown is reported as such.
 */
import type { UpstreamTls } from '../config/types.js';
import { CLOCK_KEY, Keyspace } from '../shard/keyspace.js';
import { COMPACT_KEY, decodeCompacted } from '../kv/store.js';
import { listProxies, type ProxyRecord } from '../membership/records.js';
import { parsePartitionMap, type PartitionMap } from '../partition/map.js';
import { PARTITION_MAP_KEY } from '../partition/map-record.js';
import { decodeClock } from '../shard/envelope.js';
import { SHARD_ID_KEY } from '../shard/shard.js';
import { rangeOp } from '../upstream/ops.js';
import { Upstream } from '../upstream/upstream.js';
import type { ClusterStatus, CoordinatorStatus, EndpointStatus, Health, ShardStatus, StatusReport, ViaProxy } from './report.js';

export interface StatusOptions {
  coordinatorEndpoints: string[];
  /** Shard endpoints by name from a configuration file (take precedence over proxy records). */
  shards?: Record<string, string[]>;
  /** Shard endpoints by name as the proxy named by --endpoints uses them (after the configuration's). */
  proxyShards?: Record<string, string[]>;
  /** User-key namespace from the configuration (else from a proxy record, else ""). */
  namespace?: string;
  timeoutMs: number;
  /** The proxy --endpoints named, which gave the coordinator's endpoints. */
  via?: ViaProxy;
  /** TLS for a cluster's https:// endpoints, by cluster name ("coordinator" or a shard's), from the configuration. */
  tls?: (cluster: string) => UpstreamTls | undefined;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function clusterHealth(endpoints: EndpointStatus[]): Health {
  const up = endpoints.filter((e) => e.error === null).length;
  if (endpoints.length === 0) return 'unknown';
  return up === endpoints.length ? 'healthy' : up > 0 ? 'degraded' : 'unhealthy';
}

/** Status of each endpoint on its own (one client per endpoint: no failover hides a dead one). */
async function endpointStatuses(name: string, endpoints: string[], timeoutMs: number, tls: UpstreamTls | undefined): Promise<EndpointStatus[]> {
  return Promise.all(
    endpoints.map(async (endpoint): Promise<EndpointStatus> => {
      let up: Upstream | undefined;
      try {
        up = new Upstream({ name, endpoints: [endpoint], requestTimeoutMs: timeoutMs, tls });
        const st = await up.status();
        return { endpoint, error: null, version: st.version, dbSize: st.dbSize, errors: st.errors };
      } catch (err) {
        return { endpoint, error: message(err) };
      } finally {
        up?.close();
      }
    }),
  );
}

async function cluster(name: string, endpoints: string[], timeoutMs: number, tls: UpstreamTls | undefined): Promise<ClusterStatus> {
  const eps = await endpointStatuses(name, endpoints, timeoutMs, tls);
  return { endpoints: eps, health: clusterHealth(eps) };
}

interface CoordinatorRead {
  status: CoordinatorStatus;
  map: PartitionMap | null;
  proxies: ProxyRecord[];
  notes: string[];
}

async function readCoordinator(opts: StatusOptions): Promise<CoordinatorRead> {
  const base = await cluster('coordinator', opts.coordinatorEndpoints, opts.timeoutMs, opts.tls?.('coordinator'));
  const status: CoordinatorStatus = { ...base, clockRevision: null, compactRevision: null, partitions: null, routingPrefixSegments: null };
  const notes: string[] = [];
  if (base.health === 'unhealthy') {
    const unreachable = 'coordinator unreachable: shards and proxies unknown';
    // The endpoints came from a proxy: they may only resolve where it runs (e.g. a compose network).
    const hint = opts.via ? ` (${opts.coordinatorEndpoints.join(',')}, as ${opts.via.endpoint} is configured: reachable from where it runs, maybe not from here)` : '';
    return { status, map: null, proxies: [], notes: [unreachable + hint] };
  }
  const coordinator = new Upstream({ name: 'coordinator', endpoints: opts.coordinatorEndpoints, requestTimeoutMs: opts.timeoutMs, tls: opts.tls?.('coordinator') });
  try {
    const res = await coordinator.txn(
      { compare: [], success: [rangeOp(CLOCK_KEY), rangeOp(COMPACT_KEY), rangeOp(PARTITION_MAP_KEY), rangeOp(SHARD_ID_KEY)], failure: [] },
      true,
    );
    const [clock, compact, map, shardName] = res.responses.map((r) => r.response_range?.kvs[0]?.value);
    if (shardName) {
      notes.push(`${opts.coordinatorEndpoints.join(',')} is the member of shard "${shardName.toString()}", not the coordinator: pass the coordinator's endpoints, a proxy's, or --config`);
      return { status, map: null, proxies: [], notes };
    }
    if (!clock && !map) {
      notes.push(
        `no meta-cluster at ${opts.coordinatorEndpoints.join(',')} (no clock, no partition map): no proxy has started on this coordinator yet, or it is not the coordinator (pass the coordinator's endpoints, a proxy's, or --config)`,
      );
      return { status, map: null, proxies: [], notes };
    }
    status.clockRevision = clock ? decodeClock(clock).toString() : null;
    const compacted = compact ? decodeCompacted(compact) : -1n;
    status.compactRevision = compacted >= 0n ? compacted.toString() : null;
    let parsed: PartitionMap | null = null;
    if (map) {
      try {
        parsed = parsePartitionMap(map);
        status.partitions = parsed.partitions;
        status.routingPrefixSegments = parsed.routingPrefixSegments;
      } catch (err) {
        notes.push(message(err));
      }
    } else {
      notes.push('no partition map recorded in the coordinator yet (no proxy has started on it)');
    }
    const proxies = await listProxies(coordinator);
    return { status, map: parsed, proxies, notes };
  } catch (err) {
    notes.push(`reading the coordinator failed: ${message(err)}`);
    return { status, map: null, proxies: [], notes };
  } finally {
    coordinator.close();
  }
}

/** Keys, size and clock of one shard, read through any of its endpoints. */
async function readShard(
  name: string,
  endpoints: string[],
  from: ShardStatus['endpointsFrom'],
  partitions: number,
  ks: Keyspace,
  timeoutMs: number,
  tls: UpstreamTls | undefined,
): Promise<ShardStatus> {
  const base = await cluster(name, endpoints, timeoutMs, tls);
  const sizes = base.endpoints.filter((e) => e.dbSize !== undefined).map((e) => BigInt(e.dbSize!));
  const status: ShardStatus = {
    name,
    ...base,
    endpointsFrom: from,
    keys: null,
    dbSize: sizes.length ? sizes.reduce((a, b) => (a > b ? a : b)).toString() : null,
    revision: null,
    partitions,
    error: null,
  };
  if (endpoints.length === 0 || base.health === 'unhealthy') return status;
  const up = new Upstream({ name, endpoints, requestTimeoutMs: timeoutMs, tls });
  try {
    // Every user key: the whole client range, as the proxy maps it into the member.
    const users = ks.toMemberRange(Buffer.from([0]), Buffer.from([0]));
    const res = await up.txn(
      { compare: [], success: [rangeOp(CLOCK_KEY), ...(users ? [rangeOp(users.start, users.end, { count_only: true })] : [])], failure: [] },
      true,
    );
    const clock = res.responses[0]?.response_range?.kvs[0]?.value;
    status.revision = clock ? decodeClock(clock).toString() : null;
    status.keys = res.responses[1]?.response_range?.count ?? '0';
  } catch (err) {
    status.error = message(err);
  } finally {
    up.close();
  }
  return status;
}

export async function collectStatus(opts: StatusOptions): Promise<StatusReport> {
  const coord = await readCoordinator(opts);
  const notes = [...coord.notes];
  const fromProxies = new Map<string, string[]>();
  for (const p of coord.proxies) for (const [name, eps] of Object.entries(p.shards)) if (!fromProxies.has(name)) fromProxies.set(name, eps);
  const namespace = opts.namespace ?? coord.proxies[0]?.namespace ?? '';
  const ks = new Keyspace(Buffer.from(namespace, 'latin1'));

  // Shards in the recorded map's order; configured shards the map does not know come after.
  const names = [...(coord.map?.shards ?? [])];
  for (const n of Object.keys({ ...opts.shards, ...opts.proxyShards })) if (!names.includes(n)) names.push(n);
  if (!coord.map) for (const n of fromProxies.keys()) if (!names.includes(n)) names.push(n);

  const shards = await Promise.all(
    names.map((name) => {
      const owned = coord.map ? coord.map.owner.filter((o) => coord.map!.shards[o] === name).length : 0;
      const configured = opts.shards?.[name];
      const registered = opts.proxyShards?.[name] ?? fromProxies.get(name);
      const [eps, from]: [string[], ShardStatus['endpointsFrom']] = configured ? [configured, 'config'] : registered ? [registered, 'proxy'] : [[], 'none'];
      return readShard(name, eps, from, owned, ks, opts.timeoutMs, opts.tls?.(name));
    }),
  );
  for (const s of shards) {
    if (s.endpointsFrom === 'none') notes.push(`shard ${s.name}: endpoints unknown (no proxy registered; pass --config)`);
    if (coord.map && !coord.map.shards.includes(s.name)) notes.push(`shard ${s.name}: configured but not in the recorded partition map`);
  }
  const proxies = coord.proxies.map((p) => ({ id: p.id, name: p.name, clientURLs: p.clientURLs, version: p.version, since: p.since }));
  return { ...(opts.via ? { via: opts.via } : {}), coordinator: coord.status, shards, proxies, notes };
}
