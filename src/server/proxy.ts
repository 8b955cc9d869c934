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
import { keyspaceScan, kvVerbs } from '../kv/backend.js';
import { hash64, initHash } from '../partition/hash.js';
import { defaultPartitionMap } from '../partition/map.js';
import { Router } from '../partition/router.js';
import { loadOrRecordPartitionMap } from '../partition/map-record.js';
import { Keyspace } from '../shard/keyspace.js';
import { Shard } from '../shard/shard.js';
import { Upstream } from '../upstream/upstream.js';
import { metaproxyService } from '../etcd/proto.js';
import { ShardWriter } from '../shard/writer.js';
import { epochKey } from '../shard/epoch.js';
import { ReadCache } from '../cache/cache.js';
import { CacheReader } from '../cache/reads.js';
import { addCacheSource, startKnownSeries } from '../metrics/registry.js';
import { WatchHub } from '../watch/hub.js';
import { MergedStream } from '../watch/merged-stream.js';
import { version } from '../version.js';
import { CoordinatorLeases } from '../membership/coordinator-lease.js';
import { memberList } from '../membership/members.js';
import { listProxies, type ProxyRecord } from '../membership/records.js';
import { ProxyRegistration } from '../membership/registration.js';
import { clusterService } from './cluster.js';
import { HeaderSource } from './header.js';
import { kvService } from './kv.js';
import { leaseService } from './lease.js';
import { LeaseReaper } from '../lease/reaper.js';
import { maintenanceService, REPORTED_ETCD_VERSION } from './maintenance.js';
import { Gateway } from '../gateway/gateway.js';
import { watchService } from './watch.js';
import type { RunningProxy, StartOptions } from './proxy-api.js';
import { serviceDefinition, type ServiceName } from './service.js';
import { topologyService } from './topology.js';
import { useEtcdMessageLimitWording } from './message-limit.js';
import { GRPC_OVERHEAD_BYTES } from './unary.js';
import { EtcdError } from '../etcd/errors.js';
import { runShardTxn } from '../kv/shard-txn.js';
import { addPeerService, Peers } from '../ownership/forward.js';
import { PeerSecret } from '../ownership/peer-secret.js';
import { Owners } from '../ownership/owners.js';
import { reapOnOwner } from '../lease/reap.js';
import { refusingMalformed, wireGuardInterceptor } from './wire-guard.js';
import { serverTls } from '../tls/server.js';
import { startAuth } from './auth-setup.js';

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

function bind(server: grpc.Server, listen: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(listen, credentials, (err, port) => (err ? reject(err) : resolve(port))));
}

export async function startProxy(cfg: ProxyConfig, opts: StartOptions = {}): Promise<RunningProxy> {
  const log = opts.logger ?? pino({ level: cfg.log?.level ?? 'info' }, pino.destination(2));
  await initHash();
  const timeout = cfg.timeouts.requestMs;
  const coordinator = new Upstream({ name: 'coordinator', endpoints: cfg.coordinator.endpoints, requestTimeoutMs: timeout, tls: cfg.coordinator.tls });
  const upstreams = cfg.shards.map((s) => new Upstream({ name: s.name, endpoints: s.endpoints, requestTimeoutMs: timeout, tls: s.tls }));
  const leases = new CoordinatorLeases(cfg.coordinator.endpoints, timeout, cfg.coordinator.tls);
  let peers: Peers | null = null;
  let closeOwners = () => {};
  const closeUpstreams = () => {
    [coordinator, ...upstreams].forEach((u) => u.close());
    leases.close();
    peers?.close();
  };
  let closeWatch = () => {};
  let closeAuth = () => {};
  try {
    await Promise.all([coordinator, ...upstreams].map((u) => waitReachable(u, cfg.timeouts.dialMs, log)));
    const wanted = defaultPartitionMap(cfg.partitions, cfg.routingPrefixSegments, cfg.shards.map((s) => s.name));
    const map = await loadOrRecordPartitionMap(coordinator, wanted);
    const ks = new Keyspace(Buffer.from(cfg.namespace, 'latin1'));
    // The writers ask the clock only when writes come, after init below: no client is served yet.
    const clock = new ClockAllocator(coordinator);
    const writerFor = (name: string, u: Upstream) =>
      new ShardWriter(name, u, (n) => clock.next(n), cfg.memberLimits, epochKey(ks), (r) => clock.skipPast(r), (n) => clock.takeFenced(n));
    const shards = upstreams.map((u, i) => new Shard(i, cfg.shards[i].name, u, ks, writerFor(cfg.shards[i].name, u)));
    // Before the clock moves past a block another process holds (clock/block-end.ts).
    clock.useShardFence(async (target) => {
      await Promise.all(shards.map((s) => s.fenceAndRead(target, [])));
      log.info({ target: target.toString() }, 'clock moved past a revision block held elsewhere: every shard fenced to its end first');
    });
    startKnownSeries(cfg.shards.map((s) => s.name));
    await Promise.all(shards.map((s) => s.init()));
    await clock.init(async () => (await Promise.all(shards.map((s) => s.currentClock()))).map((c) => c.clock));
    await initCompactRecord(coordinator);
    const store = new MetaStore(shards, new Router(map), clock, ks, coordinator, {
      maxPins: Math.max(1, Math.floor(cfg.memberLimits.maxTxnOps / 2)),
    });
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
    // The history is memory the budget bounds too: at most a quarter of it (watch.historyBytes when smaller).
    const historyBytes = Math.min(cfg.watch.historyBytes, Math.floor(cfg.limits.memoryBudgetBytes / 4));
    const hub = new WatchHub(merged, { read: async () => (await coordinatorProbe.read()).clock }, log, { ...cfg.watch, historyBytes });
    // Reads from memory (src/cache/): loads in the background; until then reads go to the members.
    const cache = cfg.cache.enabled ? new ReadCache(shards, ks, merged, hub.history, log, cfg.cache, budget) : null;
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
      // Malformed requests get etcd's decoder errors (wire-guard.ts); responses' budget
      // reservations end when they were written (budget/release-on-send.ts).
      interceptors: [wireGuardInterceptor, releaseOnSend],
      // etcd's own limit: a larger message is refused before it is read whole.
      'grpc.max_receive_message_length': cfg.limits.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      'grpc.max_send_message_length': -1,
      'grpc.enable_channelz': 0,
    });
    const common = { logger: log, maxRequestBytes: cfg.limits.maxRequestBytes, header };
    // etcd's Auth (src/auth/): every service's handlers pass the guard before they run.
    const auth = await startAuth({ ...common, cfg, cluster: store, coordinator });
    closeAuth = () => auth.close();
    const watch = watchService({ ...common, cluster: store, hub, maxPendingEvents: cfg.watch.maxPendingEvents, guard: auth.guard, budget });
    // One set of implementations, behind the auth guard, serves gRPC and the JSON gateway (src/gateway/).
    const implementations: Record<ServiceName, grpc.UntypedServiceImplementation> = {
      KV: kvService({ ...common, kv: kvVerbs(store), reader, maxTxnOps: cfg.limits.maxTxnOps, budget }),
      Maintenance: maintenanceService({ ...common, cluster: store, scan: keyspaceScan(store) }),
      Watch: watch.service,
      Lease: leaseService({ ...common, cluster: store }),
      Cluster: clusterService({ ...common, members: () => memberList(coordinator, self!), revision: () => clock.current() }),
      Auth: auth.service,
    };
    const definitions: Record<string, grpc.ServiceDefinition> = {};
    for (const [name, impl] of Object.entries(implementations) as Array<[ServiceName, grpc.UntypedServiceImplementation]>) {
      definitions[name] = serviceDefinition(name);
      // Watch checks each create request itself (the guard is in the watch session).
      if (name !== 'Watch') implementations[name] = auth.guard.wrap(name, definitions[name], impl);
      server.addService(definitions[name], refusingMalformed(definitions[name], implementations[name]));
    }
    const gateway = new Gateway({
      definitions,
      implementations,
      logger: log,
      maxRequestBytes: cfg.limits.maxRequestBytes,
      grpcOverheadBytes: GRPC_OVERHEAD_BYTES,
      etcdVersion: REPORTED_ETCD_VERSION,
    });
    server.addService(
      metaproxyService('Topology').service,
      topologyService({ ...common, cfg, self: () => ({ name: self?.name ?? '', version: version() }) }),
    );
    const health = new HealthImplementation({ '': 'SERVING' });
    health.addToServer(server);
    // Writes other replicas forward to the shards this one owns (ownership/).
    const peerSecret = new PeerSecret(coordinator);
    await peerSecret.get();
    const byName = new Map(shards.map((s) => [s.name, s]));
    const shardNamed = (name: string) => {
      const shard = byName.get(name);
      if (!shard) throw new EtcdError(grpc.status.FAILED_PRECONDITION, `etcd-metaproxy: forwarded request for unknown shard ${name}`);
      return shard;
    };
    const forwarded = addPeerService(
      server,
      {
        txn: async (name, txn, hops) => runShardTxn(store, shardNamed(name), txn, hops),
        reap: async (name, l) => reapOnOwner(store, shardNamed(name), l.id, { rev: l.rev, live: new Map(l.live === null ? [] : [[l.id, l.live]]), own: new Set() }, true),
        settle: async (name, target) => shardNamed(name).writer.settle(target),
        current: (end) => clock.issuedFrom(end),
        relay: (name) => merged.relayOf(shardNamed(name).index),
      },
      peerSecret,
      log,
    );

    // Client TLS (etcd's --cert-file, --key-file, --trusted-ca-file, --client-cert-auth).
    const port = await bind(server, cfg.listen, serverTls(cfg.clientTls, log).credentials);
    const host = cfg.listen.slice(0, cfg.listen.lastIndexOf(':'));
    const address = `${host}:${port}`;
    const advertise = cfg.advertiseClientUrls.length ? cfg.advertiseClientUrls : [`${cfg.clientTls ? 'https' : 'http'}://${address}`];
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
    // One writer per shard: elect owners; writes for shards owned elsewhere are forwarded.
    // Peers reach each other's client port: with client TLS, as clients presenting this proxy's certificate.
    const tls = cfg.clientTls;
    peers = new Peers(timeout, peerSecret, tls ? { caFile: tls.trustedCaFile, certFile: tls.certFile, keyFile: tls.keyFile } : undefined);
    const owners = new Owners(coordinator, shards, ks, { id: header.memberId, url: cfg.ownership.peerUrl || advertise[0] }, log, {
      ttlSec: cfg.ownership.ttlSec,
      pollMs: cfg.ownership.pollMs,
      waitMs: timeout,
    });
    closeOwners = () => owners.close();
    const fwd = peers;
    // While this replica owns every shard it hands out revisions from a reserved block.
    clock.useBlocks({ exclusive: () => owners.ownsAll(), self: owners.selfUrl, askHolder: (url, end) => fwd.current(url, end) });
    store.routeWritesThrough({
      route: (i) => owners.route(i),
      forward: (url, shard, txn, hops) => fwd.forward(url, shard, txn, hops),
      refresh: () => owners.refresh(),
      reap: (url, shard, lease) => fwd.reap(url, shard, lease),
      settle: async (i, target) => {
        const now = owners.current(i);
        if (!now) return null;
        return now.local ? shards[i].writer.settle(target) : fwd.settle(now.owner.url, shards[i].name, target);
      },
    });
    await owners.start();
    // A shard another replica owns is read from that replica's member watch (watch/relay.ts).
    merged.followOwners((i) => {
      const now = owners.current(i);
      return now && !now.local ? { open: () => fwd.openRelay(now.owner.url, shards[i].name) } : null;
    });
    // Headers say the current revision from the start (a block another replica holds ends at the clock).
    await clock.current().catch(() => undefined);

    let healthy = true;
    const check = async (): Promise<boolean> => {
      const results = await Promise.allSettled([coordinator, ...upstreams].map((u) => u.answers(HEALTH_INTERVAL_MS)));
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
      gateway,
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
        // Hand the shards this replica owns over first: writes in flight land, later ones are
        // forwarded to the replicas that take over (they see no owner at their next poll).
        await owners.resign(async () => (await listProxies(coordinator)).some((r) => r.id !== header.memberId));
        // Deregister, so that clients syncing endpoints stop choosing this replica.
        await registration.close();
        // etcd ends watch streams when it stops; clients resume from their last revision elsewhere.
        watch.closeAll();
        closeWatch();
        closeAuth();
        await reaper.close();
        // Forwarding streams end once the writes they carry are answered; writes arriving
        // later are routed again by their replicas (ownership/forward-serve.ts).
        await Promise.race([forwarded.drain(), new Promise((r) => setTimeout(r, 5_000).unref())]);
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
        closeOwners();
        closeUpstreams();
        void healthy;
      },
    };
  } catch (err) {
    closeOwners();
    closeWatch();
    closeAuth();
    closeUpstreams();
    throw err;
  }
}
