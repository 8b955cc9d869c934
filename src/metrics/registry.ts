import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { FastHistogram } from './fast-histogram.js';
import { flushTallies } from './tally.js';

/**
 * The proxy's one metrics registry. Metric objects are module singletons so that any module
 * can record without plumbing; /metrics (http.ts) serves this registry.
 */
export const registry = new Registry();

collectDefaultMetrics({ register: registry, prefix: 'etcd_metaproxy_' });

/** Latency buckets from 100 µs to 10 s (roughly 1-2.5-5 per decade). */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export const grpcRequests = new Counter({
  name: 'etcd_metaproxy_grpc_requests_total',
  help: 'Client gRPC requests handled, by method and gRPC status code.',
  labelNames: ['method', 'code'] as const,
  registers: [registry],
  // Per-call children are tallies (tally.ts), taken in when read.
  collect(this: Counter<string>) {
    flushTallies(this);
  },
});

export const grpcDuration = new FastHistogram({
  name: 'etcd_metaproxy_grpc_request_duration_seconds',
  help: 'Client gRPC request latency (unary calls), by method.',
  labelNames: ['method'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const gatewayRequests = new Counter({
  name: 'etcd_metaproxy_gateway_requests_total',
  help: 'JSON gateway (HTTP) requests answered, by gRPC method (or "version", "unknown") and HTTP status code.',
  labelNames: ['method', 'status'] as const,
  registers: [registry],
});

export const upstreamRequests = new Counter({
  name: 'etcd_metaproxy_upstream_requests_total',
  help: 'Calls to member clusters and the coordinator, by cluster, method and gRPC status code.',
  labelNames: ['cluster', 'method', 'code'] as const,
  registers: [registry],
  // Per-call children are tallies (tally.ts), taken in when read.
  collect(this: Counter<string>) {
    flushTallies(this);
  },
});

export const upstreamDuration = new FastHistogram({
  name: 'etcd_metaproxy_upstream_request_duration_seconds',
  help: 'Latency of calls to member clusters and the coordinator.',
  labelNames: ['cluster', 'method'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const clockAllocations = new Counter({
  name: 'etcd_metaproxy_clock_allocations_total',
  help: 'Coordinator compare-and-swaps of the clock (each a raft proposal): allocations and revision-block reservations.',
  registers: [registry],
});

export const clockConfirmations = new Counter({
  name: 'etcd_metaproxy_clock_confirmations_total',
  help: 'Linearizable clock reads that let a batch take revisions from this replica\'s reserved block (no proposal).',
  registers: [registry],
});

export const ownerAnswerProofWait = new FastHistogram({
  name: 'etcd_metaproxy_owner_answer_proof_wait_seconds',
  help: "Time a txn answered from its shard owner's state waited for its arrival proof (a coordinator clock read begun after it arrived), when no batch sent since its arrival vouched for the state.",
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const writeLinger = new FastHistogram({
  name: 'etcd_metaproxy_write_linger_seconds',
  help: "Time a shard's next batch waited for the writers of the batch just answered to come back, while its member was slow (its last three round trips took 5 ms or more each).",
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const clockRevisions = new Counter({
  name: 'etcd_metaproxy_clock_revisions_allocated_total',
  help: 'Meta revisions handed to writes, from the coordinator clock or a reserved block.',
  registers: [registry],
});

export const clockBatchSize = new FastHistogram({
  name: 'etcd_metaproxy_clock_batch_size',
  help: 'Revisions handed out per coordinator round trip (group commit size).',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
  registers: [registry],
});

export const writeRetries = new Counter({
  name: 'etcd_metaproxy_write_retries_total',
  help: 'Member txns retried, by reason (e.g. fence, pin).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const fenceWrites = new Counter({
  name: 'etcd_metaproxy_fence_writes_total',
  help: 'Fence writes issued to advance an idle shard clock, by shard.',
  labelNames: ['shard'] as const,
  registers: [registry],
});

export const vouchedWatermarks = new Counter({
  name: 'etcd_metaproxy_vouched_watermarks_total',
  help: "Idle-shard watermarks advanced by the shard's owner without a fence write, by shard.",
  labelNames: ['shard'] as const,
  registers: [registry],
});

export const ownerChanges = new Counter({
  name: 'etcd_metaproxy_shard_ownership_acquired_total',
  help: 'Times this replica became the owner (the one writer) of a shard, by shard.',
  labelNames: ['shard'] as const,
  registers: [registry],
});

export const forwardedWrites = new Counter({
  name: 'etcd_metaproxy_forwarded_writes_total',
  help: "Client writes this replica forwarded to the shard's owner, by shard and result code.",
  labelNames: ['shard', 'code'] as const,
  registers: [registry],
  collect(this: Counter<string>) {
    flushTallies(this);
  },
});

export const memberWrites = new Counter({
  name: 'etcd_metaproxy_member_writes_total',
  help: 'Write txns sent to member clusters, by shard.',
  labelNames: ['shard'] as const,
  registers: [registry],
  collect(this: Counter<string>) {
    flushTallies(this);
  },
});

export const ownerStateAnswers = new Counter({
  name: 'etcd_metaproxy_owner_state_answers_total',
  help: "Txns whose chosen path writes nothing (a lost compare-and-swap), answered from the shard owner's exact state without a member read.",
  registers: [registry],
});

export const ownerStateReads = new Counter({
  name: 'etcd_metaproxy_owner_state_reads_total',
  help: "Serializable read-only txns answered from the shard owner's exact state while the read cache caught up with this replica's writes.",
  registers: [registry],
});

export const clientWrites = new Counter({
  name: 'etcd_metaproxy_client_writes_total',
  help: 'Client writes committed (each with one meta revision).',
  registers: [registry],
});

export const clockRevision = new Gauge({
  name: 'etcd_metaproxy_clock_revision',
  help: 'The last meta revision this proxy saw allocated on the coordinator clock.',
  registers: [registry],
});

export const watchers = new Gauge({
  name: 'etcd_metaproxy_watchers',
  help: 'Client watchers receiving events live from the merged stream.',
  registers: [registry],
});

export const watchStreams = new Gauge({
  name: 'etcd_metaproxy_watch_streams',
  help: 'Open client Watch streams.',
  registers: [registry],
});

export const watchEventsSent = new Counter({
  name: 'etcd_metaproxy_watch_events_sent_total',
  help: 'Events written to client watch streams.',
  registers: [registry],
});

export const watchResyncs = new Counter({
  name: 'etcd_metaproxy_watch_slow_resyncs_total',
  help: 'Watchers whose client fell behind: their queued events were dropped and they were fed again from history, by reason (events: watch.maxPendingEvents; bytes: the memory budget was spent).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const budgetBytes = new Gauge({
  name: 'etcd_metaproxy_memory_budget_bytes',
  help: 'Bytes held against limits.memoryBudgetBytes, by use (responses in flight, queued watch events, events held for a lagging shard, pages of the read cache loading; limit: the budget).',
  labelNames: ['use'] as const,
  registers: [registry],
  // Every charge and release moves a tally (tally.ts), taken in when read.
  collect(this: Gauge<string>) {
    flushTallies(this);
  },
});

export const budgetRejections = new Counter({
  name: 'etcd_metaproxy_memory_budget_rejections_total',
  help: 'Reads refused with "etcdserver: too many requests" because the memory budget was spent.',
  registers: [registry],
});

export const budgetWaits = new Counter({
  name: 'etcd_metaproxy_memory_budget_waits_total',
  help: 'Reads that waited for room in the memory budget before their response was built.',
  registers: [registry],
});

export const heldEventsDropped = new Counter({
  name: 'etcd_metaproxy_watch_held_drops_total',
  help: 'Times the events held for a lagging shard exceeded the memory budget and were dropped, to be re-read from the members.',
  registers: [registry],
});

export const mergedRevision = new Gauge({
  name: 'etcd_metaproxy_watch_merged_revision',
  help: 'The meta revision up to which the merged event stream has released every event.',
  registers: [registry],
});

export const watermarkRevision = new Gauge({
  name: 'etcd_metaproxy_shard_watermark_revision',
  help: 'The shard clock last seen in its member watch stream, by shard.',
  labelNames: ['shard'] as const,
  registers: [registry],
});

export const memberWatchPrevKv = new Gauge({
  name: 'etcd_metaproxy_member_watch_prev_kv',
  help: "1 while the shard's member watch asks the member for prev_kv, 0 while previous values come from the read cache.",
  labelNames: ['shard'] as const,
  registers: [registry],
});

export const memberProgressRequests = new Counter({
  name: 'etcd_metaproxy_member_progress_requests_total',
  help: 'Progress requests written to member watch streams (each costs the member a copy of its write buffer in etcd 3.4), by shard.',
  labelNames: ['shard'] as const,
  registers: [registry],
});

export const watchRelayed = new Gauge({
  name: 'etcd_metaproxy_watch_relayed',
  help: "1 while this replica reads the shard's events from the shard's owner (its relay) instead of a member watch of its own.",
  labelNames: ['shard'] as const,
  registers: [registry],
});

export const watchRelayFollowers = new Gauge({
  name: 'etcd_metaproxy_watch_relay_followers',
  help: "Other replicas reading the shard's events from this replica's member watch.",
  labelNames: ['shard'] as const,
  registers: [registry],
});

export const upstreamWatchRestarts = new Counter({
  name: 'etcd_metaproxy_upstream_watch_restarts_total',
  help: 'Member watch streams reopened after an error, by shard.',
  labelNames: ['shard'] as const,
  registers: [registry],
});

export const watchStreamResets = new Counter({
  name: 'etcd_metaproxy_watch_stream_resets_total',
  help: 'Restarts of the merged stream because a member compacted history it still needed (watchers are canceled as compacted, the read caches reload).',
  registers: [registry],
});

export const leaseKeysDeleted = new Counter({
  name: 'etcd_metaproxy_lease_keys_deleted_total',
  help: 'Keys deleted because their lease expired or was revoked.',
  registers: [registry],
});

export const leaseReaps = new Counter({
  name: 'etcd_metaproxy_lease_reaps_total',
  help: 'Dead leases reaped on a shard, by result (ok, error).',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const cacheHits = new Counter({
  name: 'etcd_metaproxy_cache_hits_total',
  help: 'Range and read-only Txn requests answered from the read cache.',
  registers: [registry],
});

export const cacheMisses = new Counter({
  name: 'etcd_metaproxy_cache_misses_total',
  help: 'Reads the read cache could not answer, read from the members instead, by reason (loading, lagging: the merged stream did not catch up in time, coordinator: it did not answer, history: a revision the cache does not hold).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const cacheSharedAnswers = new Counter({
  name: 'etcd_metaproxy_cache_shared_answers_total',
  help: 'Cache answers computed once for an identical read at the same revision and shared (included in cache_hits_total).',
  registers: [registry],
});

export const cacheReadWait = new FastHistogram({
  name: 'etcd_metaproxy_cache_read_wait_seconds',
  help: 'Time linearizable and past-revision reads waited (coordinator clock read and merged stream catch-up) before the cache answered.',
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

/** What a read cache reports to the gauges below (read when /metrics is scraped). */
export interface CacheStatsSource {
  shards(): Array<{ shard: string; keys: number; bytes: number }>;
  snapshots(): number;
  revision(): bigint;
}

/** Read caches of this process; several only when proxies run in-process (tests): values add up. */
const cacheSources = new Set<CacheStatsSource>();

export function addCacheSource(s: CacheStatsSource): () => void {
  cacheSources.add(s);
  return () => cacheSources.delete(s);
}

function perShard(field: 'keys' | 'bytes') {
  return function collect(this: Gauge<'shard'>): void {
    this.reset();
    for (const s of cacheSources) for (const sh of s.shards()) this.inc({ shard: sh.shard }, sh[field]);
  };
}

export const cacheKeys = new Gauge({
  name: 'etcd_metaproxy_cache_keys',
  help: 'Keys held in the read cache, by shard.',
  labelNames: ['shard'] as const,
  registers: [registry],
  collect: perShard('keys'),
});

export const cacheBytes = new Gauge({
  name: 'etcd_metaproxy_cache_bytes',
  help: 'Bytes of keys and encoded key-values held in the read cache, by shard (tree overhead not counted).',
  labelNames: ['shard'] as const,
  registers: [registry],
  collect: perShard('bytes'),
});

export const cacheSnapshots = new Gauge({
  name: 'etcd_metaproxy_cache_snapshots',
  help: 'Past states the read cache keeps for paginated lists and reads at a recent revision.',
  registers: [registry],
  collect(this: Gauge): void {
    let n = 0;
    for (const s of cacheSources) n += s.snapshots();
    this.set(n);
  },
});

export const cacheRevision = new Gauge({
  name: 'etcd_metaproxy_cache_revision',
  help: 'The meta revision the read cache stands at (0 until loaded).',
  registers: [registry],
  collect(this: Gauge): void {
    let rev = 0n;
    for (const s of cacheSources) if (s.revision() > rev) rev = s.revision();
    this.set(Number(rev));
  },
});

/** Reasons of write_retries_total (shard/writer.ts: fence; kv/shard-txn.ts: pin, read_pin). */
const WRITE_RETRY_REASONS = ['fence', 'pin', 'read_pin'];
/** Reasons of cache_misses_total (cache/reads.ts). */
const CACHE_MISS_REASONS = ['loading', 'lagging', 'coordinator', 'history'];

/**
 * Starts the series whose label values are known up front at 0 (Prometheus's advice for
 * labelled counters): a dashboard panel of, say, retries by reason then shows 0 while nothing
 * is retried, instead of "No data" (a rate() over a series that does not exist is empty).
 */
export function startKnownSeries(shards: readonly string[]): void {
  for (const shard of shards) {
    fenceWrites.inc({ shard }, 0);
    memberWrites.inc({ shard }, 0);
    upstreamWatchRestarts.inc({ shard }, 0);
  }
  for (const reason of WRITE_RETRY_REASONS) writeRetries.inc({ reason }, 0);
  for (const reason of CACHE_MISS_REASONS) cacheMisses.inc({ reason }, 0);
  for (const result of ['ok', 'error']) leaseReaps.inc({ result }, 0);
}
