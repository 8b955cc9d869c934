/**
 * Starts a proxy: connects to the coordinator and shards, checks or records the partition
 * map, initialises shard clocks and the global clock, then serves etcd's gRPC API.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import pino from 'pino';
import type { Logger } from 'pino';
import { MemoryBudget } from '../budget/memory-budget.js';
import { releaseOnSend } from '../budget/release-on-send.js';
import { ClockAllocator } from '../clock/allocator.js';
import { ClockProbe } from '../clock/probe.js';
import { CoordinatorRecords } from '../coordinator/records.js';
import type { ProxyConfig } from '../config/types.js';
import { initCompactRecord } from '../kv/compact.js';
import { MetaStore } from '../kv/store.js';
import { hash64, initHash } from '../partition/hash.js';
import { defaultPartitionMap } from '../partition/map.js';
import { Router } from '../partition/router.js';
import { loadOrRecordPartitionMap } from '../partition/store.js';
import { Keyspace } from '../shard/keyspace.js';
import { Shard } from '../shard/shard.js';
import { Upstream } from '../shard/upstream.js';
import { ShardWriter } from '../shard/writer.js';
import { ReadCache } from '../cache/cache.js';
import { CacheReader } from '../cache/reads.js';
import { addCacheSource } from '../metrics/registry.js';
import { WatchHub } from '../watch/hub.js';
import { MergedStream } from '../watch/merged-stream.js';
import { version } from '../cli/usage.js';
import { CoordinatorLeases } from '../membership/coordinator-lease.js';
import { memberList } from '../membership/members.js';
import type { ProxyRecord } from '../membership/records.js';
import { ProxyRegistration } from '../membership/registration.js';
import { clusterService } from './cluster.js';
import { HeaderSource } from './header.js';
import { kvService } from './kv.js';
import { leaseService } from './lease.js';
import { LeaseReaper } from '../lease/reaper.js';
import { maintenanceService } from './maintenance.js';
import { watchService } from './watch.js';
import type { RunningProxy, StartOptions } from './proxy-api.js';
import { serviceDefinition } from './service.js';
import { useEtcdMessageLimitWording } from './message-limit.js';
import { GRPC_OVERHEAD_BYTES } from './unary.js';

export type { RunningProxy, StartOptions } from './proxy-api.js';

const HEALTH_INTERVAL_MS = 2_000;

async function waitReachable(up: Upstream, dialMs: number, log: Logger): Promise<void> {
  const deadline = Date.now() + dialMs;
  for (;;) {
    try {
      await up.status();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${up.name} not reachable within ${dialMs} ms: ${(err as Error).message}`);
      log.debug({ cluster: up.name }, 'waiting for upstream');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function bind(server: grpc.Server, listen: string): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
}

export async function startProxy(cfg: ProxyConfig, opts: StartOptions = {}): Promise<RunningProxy> {
  const log = opts.logger ?? pino({ level: cfg.log?.level ?? 'info' }, pino.destination(2));
  await initHash();
  const timeout = cfg.timeouts.requestMs;
  const coordinator = new Upstream({ name: 'coordinator', endpoints: cfg.coordinator.endpoints, requestTimeoutMs: timeout });
  const upstreams = cfg.shards.map((s) => new Upstream({ name: s.name, endpoints: s.endpoints, requestTimeoutMs: timeout }));
  const leases = new CoordinatorLeases(cfg.coordinator.endpoints, timeout);
  const closeUpstreams = () => {
    [coordinator, ...upstreams].forEach((u) => u.close());
    leases.close();
  };
  let closeWatch = () => {};
  try {
    await Promise.all([coordinator, ...upstreams].map((u) => waitReachable(u, cfg.timeouts.dialMs, log)));
    const wanted = defaultPartitionMap(cfg.partitions, cfg.routingPrefixSegments, cfg.shards.map((s) => s.name));
    const map = await loadOrRecordPartitionMap(coordinator, wanted);
    const ks = new Keyspace(Buffer.from(cfg.namespace, 'latin1'));
    const shards = upstreams.map((u, i) => new Shard(i, cfg.shards[i].name, u, ks));
    await Promise.all(shards.map((s) => s.init()));
    const clock = new ClockAllocator(coordinator);
    await clock.init(async () => (await Promise.all(shards.map((s) => s.currentClock()))).map((c) => c.clock));
    for (const s of shards) s.useWriter(new ShardWriter(s.name, s.upstream, (n) => clock.next(n), cfg.memberLimits));
    await initCompactRecord(coordinator);
    const store = new MetaStore(shards, new Router(map), clock, ks, coordinator);
    store.maxPins = Math.max(1, Math.floor(cfg.memberLimits.maxTxnOps / 2));
    await store.refreshCompacted();
    // Written back by this proxy if the coordinator comes back empty while it runs.
    const records = new CoordinatorRecords(coordinator, clock, map, store, log);
    records.start();
    // One budget for responses in flight, queued watch events and held events (src/budget/).
    const budget = new MemoryBudget(cfg.limits.memoryBudgetBytes, {
      smallBytes: Math.min(1 << 20, Math.floor(cfg.limits.memoryBudgetBytes / 16)),
      waitMs: cfg.timeouts.requestMs,
    });
    const merged = new MergedStream(store, log, cfg.watch.fenceDelayMs, budget);
    closeWatch = () => {
      records.close();
      merged.close();
    };
    await merged.start();
    // One coalesced coordinator read (clock and compaction) serves watch progress and cached reads.
    const coordinatorProbe = new ClockProbe(() => store.coordinatorView());
    const hub = new WatchHub(merged, { read: async () => (await coordinatorProbe.read()).clock }, log, cfg.watch);
    // Reads from memory (src/cache/): loads in the background; until then reads go to the members.
    const cache = cfg.cache.enabled ? new ReadCache(shards, ks, merged, hub.history, log, cfg.cache) : null;
    const reader = cache ? new CacheReader(cache, store, merged, coordinatorProbe, { waitMs: cfg.cache.waitMs }) : null;
    const dropCacheStats = cache
      ? addCacheSource({
          shards: () => cache.stores.map((st, i) => ({ shard: cfg.shards[i].name, keys: st.keys, bytes: st.bytes })),
          snapshots: () => cache.snapshotCount,
          revision: () => (cache.ready ? cache.revision : 0n),
        })
      : () => undefined;
    void cache?.load();
    closeWatch = () => {
      records.close();
      cache?.close();
      dropCacheStats();
      hub.close();
      merged.close();
    };

    // The member id comes from the first advertised URL, known once the port is bound.
    const header = new HeaderSource('0');
    let self: ProxyRecord | undefined;
    const coordStatus = await coordinator.status();
    header.clusterId = coordStatus.header?.cluster_id ?? '0';
    header.raftTerm = coordStatus.raftTerm;

    useEtcdMessageLimitWording();
    const server = new grpc.Server({
      // Responses' budget reservations end when they were written (budget/release-on-send.ts).
      interceptors: [releaseOnSend],
      // etcd's own limit: a larger message is refused before it is read whole.
      'grpc.max_receive_message_length': cfg.limits.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      'grpc.max_send_message_length': -1,
      'grpc.enable_channelz': 0,
    });
    const common = { logger: log, maxRequestBytes: cfg.limits.maxRequestBytes, header };
    server.addService(serviceDefinition('KV'), kvService({ ...common, store, reader, maxTxnOps: cfg.limits.maxTxnOps, budget }));
    server.addService(serviceDefinition('Maintenance'), maintenanceService({ ...common, store }));
    const watch = watchService({ ...common, store, hub, maxPendingEvents: cfg.watch.maxPendingEvents, budget });
    server.addService(serviceDefinition('Watch'), watch.service);
    server.addService(serviceDefinition('Lease'), leaseService({ ...common, store, reader }));
    server.addService(
      serviceDefinition('Cluster'),
      clusterService({ ...common, members: () => memberList(coordinator, self!), revision: () => clock.current() }),
    );
    const health = new HealthImplementation({ '': 'SERVING' });
    health.addToServer(server);

    const port = await bind(server, cfg.listen);
    const host = cfg.listen.slice(0, cfg.listen.lastIndexOf(':'));
    const address = `${host}:${port}`;
    const advertise = cfg.advertiseClientUrls.length ? cfg.advertiseClientUrls : [`http://${address}`];
    header.memberId = hash64(Buffer.from(advertise[0])).toString();
    self = {
      id: header.memberId,
      name: `etcd-metaproxy-${advertise[0].replace(/^[a-z]+:\/\//, '')}`,
      clientURLs: advertise,
      shards: Object.fromEntries(cfg.shards.map((s) => [s.name, s.endpoints])),
      namespace: cfg.namespace,
      version: version(),
      since: new Date().toISOString(),
    };
    // Listed by every replica's MemberList while this one lives.
    const registration = new ProxyRegistration(coordinator, leases, self, log);
    await registration.start();

    let healthy = true;
    const check = async (): Promise<boolean> => {
      const results = await Promise.allSettled([coordinator, ...upstreams].map((u) => u.status()));
      healthy = results.every((r) => r.status === 'fulfilled');
      health.setStatus('', healthy ? 'SERVING' : 'NOT_SERVING');
      return healthy;
    };
    const timer = setInterval(() => void check().catch(() => undefined), HEALTH_INTERVAL_MS);
    timer.unref();
    // Lease expiry: one replica at a time reaps (lease/reaper.ts).
    const reaper = new LeaseReaper(store, log, `${address}/${process.pid}/${Math.random().toString(36).slice(2)}`, opts.reaper);
    reaper.start();
    let ready = true;
    log.info({ address, shards: cfg.shards.map((s) => s.name), partitions: map.partitions }, 'proxy serving');

    return {
      address,
      healthy: () => check(),
      probeUpstreams: (which) =>
        Promise.all(
          (which === 'coordinator' ? [coordinator] : upstreams).map((u) =>
            u.status().then(
              () => ({ name: u === coordinator ? 'coordinator' : `shard ${u.name}`, error: null }),
              (err: unknown) => ({ name: u === coordinator ? 'coordinator' : `shard ${u.name}`, error: (err as Error).message ?? String(err) }),
            ),
          ),
        ),
      ready: () => ready,
      cacheNotReady: () => (cache && !cache.ready ? cache.loadingReason() : null),
      close: async () => {
        ready = false;
        clearInterval(timer);
        // Deregister first, so that clients syncing endpoints stop choosing this replica.
        await registration.close();
        // etcd ends watch streams when it stops; clients resume from their last revision elsewhere.
        watch.closeAll();
        closeWatch();
        await reaper.close();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 5_000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        closeUpstreams();
        void healthy;
      },
    };
  } catch (err) {
    closeWatch();
    closeUpstreams();
    throw err;
  }
}
