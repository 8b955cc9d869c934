/**
 * Cache benchmark (issue 4, per-shard in-memory caches): in one run,
 *
 * 1. read throughput: the same reads (Get and a 100-key Range, serializable and linearizable)
 *    with etcd's Go benchmark tool against a plain etcd, etcd's own grpc-proxy in front of that
 *    etcd (it caches serializable ranges), and the proxy with N shards; ops/s, p50/p99 and the
 *    ratios proxy/etcd and proxy/grpc-proxy, plus the proxy's upstream calls per read;
 * 2. memory per cached key: the proxy's RSS (and V8 heap + external) after a full GC, in a fresh
 *    proxy on empty clusters and in a fresh proxy on clusters holding N keys of `--value-size`
 *    bytes, once its cache is loaded; per key, and minus the key and value bytes (overhead);
 * 3. cold start: from forking a proxy process on clusters already holding N keys until its
 *    cache is ready (GET /readyz/cache = 200 and etcd_metaproxy_cache_keys sums to N).
 *
 *   node --import tsx bench/cache.ts [--keys 100000[,1000000]] [--duration 10] [--allow-no-cache]
 *
 * Everything it starts runs on free loopback ports with temporary data dirs and is stopped at
 * the end, on an error, and on Ctrl-C. `--help` lists the options.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { intArg, listArg } from './lib/args.js';
import {
  BULK_KEY_BYTES,
  BULK_PREFIX,
  loadThroughProxy,
  partitionMapOf,
  restoreFile,
  writeSnapshotFile,
} from './lib/bulk-load.js';
import { NoCacheError, stableMemory, waitCacheReady, type CacheReady, type MemoryFigures } from './lib/cache-probe.js';
import { installSignalHandlers, onCleanup, runCleanups, shuttingDown } from './lib/cleanup.js';
import { cpuProbe } from './lib/cpu.js';
import { startPlainEtcd } from './lib/etcd.js';
import { goBenchmarkAvailable, GO_BENCHMARK_BIN, runGo } from './lib/go-bench.js';
import { startGrpcProxy } from './lib/grpc-proxy.js';
import { kvClient, prefixEnd } from './lib/kv-client.js';
import { counter, scrape } from './lib/metrics.js';
import { checkReadKeys, preloadReadKeys } from './lib/preload.js';
import { proxyConfig, startBenchCluster, startProxyProcess, type BenchCluster, type ProxyProcess } from './lib/proxy-target.js';
import { describeWorkload, GET_KEYS, RANGE_KEYS, workloadsFor, type Measurement, type WorkloadName } from './lib/workloads.js';

const READ_WORKLOADS: WorkloadName[] = ['get-s', 'get-l', 'range-s', 'range'];
const TARGET_KINDS = ['etcd', 'grpc-proxy', 'proxy'] as const;
type TargetKind = (typeof TARGET_KINDS)[number];
const PHASES = ['throughput', 'memory'] as const;
type Phase = (typeof PHASES)[number];
/** The goal for the cache's memory overhead per key (beyond key and value bytes). */
const GOAL_OVERHEAD_BYTES = 400;

const USAGE = `usage: node --import tsx bench/cache.ts [options]
  --phases LIST       ${PHASES.join(',')} (default both)
  --shards N          shard etcds behind the proxy (default 3)
  --partitions N      hash partitions of the proxy's keyspace (default 256)
 throughput:
  --workloads LIST    comma list of ${READ_WORKLOADS.join(',')} (default all)
  --targets LIST      comma list of ${TARGET_KINDS.join(',')} (default all; grpc-proxy fronts the etcd)
  --duration S        seconds per measured run (default 10)
  --clients N         concurrent clients of the Go benchmark tool (default 64)
  --conns N           gRPC connections (default 8)
 memory and cold start:
  --keys LIST         key counts to load, comma list (default 100000; e.g. 100000,1000000)
  --value-size B      value bytes per key (default 100); keys are ${BULK_KEY_BYTES} bytes (${BULK_PREFIX}<8 digits>)
  --load M            restore | txn (default restore): how the keys get into the shards, see README
  --txn-ops N         puts per Txn with --load txn (default 64)
  --txn-concurrency N Txns in flight with --load txn (default 16)
  --settle S          at most this many seconds to wait, once the cache is ready, for the proxy's
                      RSS to settle before the memory sample (default 60; see README)
 both:
  --cache-timeout S   how long to wait for a proxy's cache to be ready (default 600)
  --allow-no-cache    measure a proxy without /readyz/cache (a build before the read cache)
                      instead of failing: readiness is then "the proxy serves"
  --proxy-cache off   run the proxy with its read cache turned off (cache.enabled=false), to
                      compare with the default (on) in another run
  --no-fsync          start every etcd with --unsafe-no-fsync
  --json FILE         also write the results as JSON
`;

function log(msg: string): void {
  process.stderr.write(`[cache-bench] ${msg}\n`);
}

function parse() {
  const { values } = parseArgs({
    options: {
      phases: { type: 'string', default: PHASES.join(',') },
      shards: { type: 'string', default: '3' },
      partitions: { type: 'string', default: '256' },
      workloads: { type: 'string', default: READ_WORKLOADS.join(',') },
      targets: { type: 'string', default: TARGET_KINDS.join(',') },
      duration: { type: 'string', default: '10' },
      clients: { type: 'string', default: '64' },
      conns: { type: 'string', default: '8' },
      keys: { type: 'string', default: '100000' },
      'value-size': { type: 'string', default: '100' },
      load: { type: 'string', default: 'restore' },
      'txn-ops': { type: 'string', default: '64' },
      'txn-concurrency': { type: 'string', default: '16' },
      settle: { type: 'string', default: '60' },
      'cache-timeout': { type: 'string', default: '600' },
      'allow-no-cache': { type: 'boolean', default: false },
      'proxy-cache': { type: 'string', default: 'on' },
      'no-fsync': { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = intArg;
  const list = listArg;
  const phases = list('phases', values.phases, PHASES);
  const keys = values.keys.split(',').map((s) => int('keys', s.trim()));
  if (keys.some((n) => n > 99_999_999)) throw new Error('--keys: at most 99999999 (8-digit key indexes)');
  if (values.load !== 'restore' && values.load !== 'txn') throw new Error('--load is restore or txn');
  if (phases.includes('throughput') && !goBenchmarkAvailable()) {
    throw new Error(`${GO_BENCHMARK_BIN} missing: run bench/setup-benchmark-tool.sh (or --phases memory)`);
  }
  if (values['proxy-cache'] !== 'on' && values['proxy-cache'] !== 'off') throw new Error('--proxy-cache is on or off');
  const txnOps = int('txn-ops', values['txn-ops']);
  if (txnOps > 128) throw new Error('--txn-ops: the proxy accepts at most 128 ops per Txn');
  return {
    phases,
    shards: int('shards', values.shards),
    partitions: int('partitions', values.partitions),
    workloads: list('workloads', values.workloads, READ_WORKLOADS),
    targets: list('targets', values.targets, TARGET_KINDS),
    duration: int('duration', values.duration),
    clients: int('clients', values.clients),
    conns: int('conns', values.conns),
    keys,
    valueSize: int('value-size', values['value-size'], 0),
    load: values.load as 'restore' | 'txn',
    txnOps,
    txnConcurrency: int('txn-concurrency', values['txn-concurrency']),
    settleMs: int('settle', values.settle, 0) * 1000,
    cacheTimeoutMs: int('cache-timeout', values['cache-timeout']) * 1000,
    allowNoCache: values['allow-no-cache'],
    proxyCache: values['proxy-cache'] === 'on',
    noFsync: values['no-fsync'],
    json: values.json,
  };
}

type Opts = ReturnType<typeof parse>;
type ProxyConfig = Awaited<ReturnType<typeof proxyConfig>>;

function configFor(cluster: BenchCluster, o: Opts): Promise<ProxyConfig> {
  return proxyConfig(cluster, { partitions: o.partitions, cache: { enabled: o.proxyCache } });
}

/** Waits for the proxy's cache (not at all with --proxy-cache off). */
async function cacheReady(p: ProxyProcess, expectKeys: number, o: Opts): Promise<CacheReady> {
  if (!o.proxyCache) {
    const now = performance.now();
    return { hasCache: false, at: now, readyzAt: now, keys: undefined, perShard: {} };
  }
  return waitCacheReady(p, { timeoutMs: o.cacheTimeoutMs, expectKeys, allowNoCache: o.allowNoCache, log });
}

function withoutCache(o: Opts): string {
  return o.proxyCache ? 'the proxy has no read cache (/readyz/cache answered 404)' : 'the proxy runs with its read cache turned off (--proxy-cache off)';
}

const fmt = (n: number | undefined, digits: number) => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '-');
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '-');
const secs = (ms: number) => fmt(ms / 1000, 2);
const mb = (bytes: number) => fmt(bytes / (1024 * 1024), 1);

function table(rows: string[][], leftColumns: number): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) => r.map((cell, c) => (c < leftColumns ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd())
    .join('\n');
}

function etcdVersion(): string {
  try {
    return /etcd Version: (\S+)/.exec(execFileSync(process.env.ETCD_BIN ?? 'etcd', ['--version']).toString())?.[1] ?? '?';
  } catch {
    return '?';
  }
}

// ---------------------------------------------------------------------------------------------
// Throughput

interface Target {
  label: TargetKind;
  endpoint: string;
  /** The process that serves clients: its CPU use is reported. */
  pid: number | undefined;
  proxy?: ProxyProcess;
}

/** Upstream calls the proxy made per client Range during a run (0 when served from its cache). */
interface UpstreamPerRead {
  reads: number;
  coordinatorPerRead: number;
  memberPerRead: number;
  /** Δetcd_metaproxy_cache_hits_total per client Range, when the proxy has that counter. */
  cacheHitsPerRead?: number;
}

interface ThroughputResult extends Measurement {
  upstream?: UpstreamPerRead;
}

/** Calls the proxy's gRPC handlers served and the unary calls it made upstream (health checks and keepalives left out). */
async function proxyCounters(metricsUrl: string): Promise<{ reads: number; coordinator: number; members: number; hits: number | undefined } | undefined> {
  try {
    const text = await scrape(metricsUrl);
    const data = (l: Record<string, string>) => l['method'] !== 'Status' && l['method'] !== 'LeaseKeepAlive';
    return {
      reads: counter(text, 'etcd_metaproxy_grpc_requests_total', (l) => l['method'] === 'Range') ?? 0,
      coordinator: counter(text, 'etcd_metaproxy_upstream_requests_total', (l) => l['cluster'] === 'coordinator' && data(l)) ?? 0,
      members: counter(text, 'etcd_metaproxy_upstream_requests_total', (l) => l['cluster'] !== 'coordinator' && data(l)) ?? 0,
      hits: counter(text, 'etcd_metaproxy_cache_hits_total'),
    };
  } catch (err) {
    log(`scraping ${metricsUrl} failed: ${String(err)}`);
    return undefined;
  }
}

async function startThroughputTargets(o: Opts): Promise<{ targets: Target[]; stops: Array<() => Promise<void>>; cache?: CacheReady }> {
  const targets: Target[] = [];
  // What was started, newest last (everything is also registered with runCleanups).
  const stops: Array<() => Promise<void>> = [];
  const wants = (k: TargetKind) => o.targets.includes(k);
  if (wants('etcd') || wants('grpc-proxy')) {
    const etcd = await startPlainEtcd({ name: 'etcd', noFsync: o.noFsync });
    stops.push(() => etcd.stop());
    log(`etcd: plain etcd at ${etcd.endpoint}`);
    if (wants('etcd')) targets.push({ label: 'etcd', endpoint: etcd.endpoint, pid: etcd.pid });
    await preloadReadKeys(etcd.endpoint, 'etcd');
    if (wants('grpc-proxy')) {
      const gp = await startGrpcProxy({ backend: etcd.endpoint });
      stops.push(() => gp.stop());
      log(`grpc-proxy: etcd grpc-proxy at ${gp.endpoint} in front of ${etcd.endpoint}`);
      await checkReadKeys(gp.endpoint, 'grpc-proxy');
      targets.push({ label: 'grpc-proxy', endpoint: gp.endpoint, pid: gp.pid });
    }
  }
  let cache: CacheReady | undefined;
  if (wants('proxy')) {
    const cluster = await startBenchCluster({ shards: o.shards, noFsync: o.noFsync });
    stops.push(() => cluster.stop());
    const cfg = await configFor(cluster, o);
    const p = await startProxyProcess(cfg, { exposeGc: true, startTimeoutMs: o.cacheTimeoutMs });
    stops.push(() => p.stop());
    log(`proxy: at ${p.endpoint} (${o.shards} shards), metrics ${p.httpUrl}`);
    await preloadReadKeys(p.endpoint, 'proxy');
    cache = await cacheReady(p, GET_KEYS + RANGE_KEYS, o);
    if (cache.hasCache) log(`proxy: cache ready, ${cache.keys ?? '?'} keys cached`);
    targets.push({ label: 'proxy', endpoint: p.endpoint, pid: p.pid, proxy: p });
  }
  // Order in tables: etcd, grpc-proxy, proxy.
  targets.sort((a, b) => TARGET_KINDS.indexOf(a.label) - TARGET_KINDS.indexOf(b.label));
  return { targets, stops, ...(cache ? { cache } : {}) };
}

async function runThroughput(o: Opts): Promise<{ results: ThroughputResult[]; cache?: CacheReady }> {
  const { targets, stops, cache } = await startThroughputTargets(o);
  const workloads = workloadsFor(o.workloads, 1);
  const results: ThroughputResult[] = [];
  let turn = 0;
  for (const w of workloads) {
    log(describeWorkload(w, 'go'));
    // Rotate which target goes first, so slow drift of a noisy machine hits all alike.
    const order = targets.map((_, i) => targets[(i + turn) % targets.length]!);
    turn++;
    for (const t of order) {
      const cpu = cpuProbe(t.pid);
      const before = t.proxy ? await proxyCounters(t.proxy.metricsUrl) : undefined;
      const m: ThroughputResult = await runGo(w, t.label, {
        endpoint: t.endpoint,
        clients: o.clients,
        conns: o.conns,
        durationSec: o.duration,
        onMeasureStart: () => cpu.start(),
        onMeasureEnd: () => cpu.end(),
      });
      if (cpu.pct !== undefined) m.cpuPct = cpu.pct;
      if (t.proxy && before) {
        const after = await proxyCounters(t.proxy.metricsUrl);
        if (after && after.reads > before.reads) {
          const reads = after.reads - before.reads;
          m.upstream = {
            reads,
            coordinatorPerRead: (after.coordinator - before.coordinator) / reads,
            memberPerRead: (after.members - before.members) / reads,
            ...(after.hits !== undefined && before.hits !== undefined ? { cacheHitsPerRead: (after.hits - before.hits) / reads } : {}),
          };
        }
      }
      results.push(m);
      log(
        `  ${t.label.padEnd(10)} ${fmt(m.opsPerSec, 0).padStart(7)} ops/s  p50 ${fmt(m.p50Ms, 2)} ms  p99 ${fmt(m.p99Ms, 2)} ms` +
          (m.cpuPct !== undefined ? `  cpu ${fmt(m.cpuPct, 0)}%` : '') +
          (m.upstream ? `  upstream/read: coordinator ${fmt(m.upstream.coordinatorPerRead, 3)}, members ${fmt(m.upstream.memberPerRead, 3)}` : '') +
          (m.upstream?.cacheHitsPerRead !== undefined ? `, cache hits/read ${fmt(m.upstream.cacheHitsPerRead, 3)}` : '') +
          (m.errors ? `  errors ${m.errors} (${m.note})` : ''),
      );
    }
  }
  // Free the machine for the memory phase.
  for (const stop of stops.reverse()) await stop();
  return { results, ...(cache ? { cache } : {}) };
}

function throughputTable(results: ThroughputResult[], o: Opts): string {
  const rows: string[][] = [['workload', 'target', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'cpu %', 'coord/read', 'member/read', 'hits/read']];
  for (const name of o.workloads) {
    const by = (k: TargetKind) => results.find((r) => r.workload === name && r.target === k);
    let first = true;
    for (const k of TARGET_KINDS) {
      const m = by(k);
      if (!m) continue;
      rows.push([
        first ? name : '',
        k,
        fmt(m.opsPerSec, 0),
        fmt(m.p50Ms, 2),
        fmt(m.p99Ms, 2),
        String(m.errors),
        fmt(m.cpuPct, 0),
        m.upstream ? fmt(m.upstream.coordinatorPerRead, 3) : '',
        m.upstream ? fmt(m.upstream.memberPerRead, 3) : '',
        m.upstream?.cacheHitsPerRead !== undefined ? fmt(m.upstream.cacheHitsPerRead, 3) : '',
      ]);
      first = false;
    }
    const p = by('proxy');
    for (const base of ['etcd', 'grpc-proxy'] as const) {
      const b = by(base);
      if (p && b) rows.push(['', `proxy/${base}`, ratio(p.opsPerSec, b.opsPerSec), ratio(p.p50Ms, b.p50Ms), ratio(p.p99Ms, b.p99Ms), '', '', '', '', '']);
    }
  }
  return table(rows, 2);
}

// ---------------------------------------------------------------------------------------------
// Memory and cold start

interface LoadResult {
  keys: number;
  method: 'restore' | 'txn';
  /** Writing the snapshot file (restore only). */
  snapshotMs?: number;
  snapshotBytes?: number;
  /** Restore, or the Txns through a proxy. */
  loadMs: number;
  detail: string;
}

interface ColdStart {
  keys: number;
  hasCache: boolean;
  /** From fork to the proxy child running (Node and tsx loaded). */
  processUpMs: number;
  /** From fork to the proxy serving gRPC. */
  servingMs: number;
  /** From fork to the cache ready (equal to servingMs without a cache). */
  cacheReadyMs: number;
  cachedKeys: number | undefined;
  perShard: Record<string, number>;
}

interface MemoryRow {
  keys: number;
  mem: MemoryFigures;
}

function msBetween(a: number, b: number): number {
  return Math.max(0, b - a);
}

async function coldStart(cfg: ProxyConfig, keys: number, o: Opts): Promise<{ proxy: ProxyProcess; cold: ColdStart }> {
  const p = await startProxyProcess(cfg, { exposeGc: true, startTimeoutMs: o.cacheTimeoutMs });
  const ready = await cacheReady(p, keys, o);
  const { forkedAt, startingAt, readyAt } = p.timings;
  const cacheAt = ready.hasCache ? Math.max(ready.at, readyAt) : readyAt;
  return {
    proxy: p,
    cold: {
      keys,
      hasCache: ready.hasCache,
      processUpMs: msBetween(forkedAt, startingAt),
      servingMs: msBetween(forkedAt, readyAt),
      cacheReadyMs: msBetween(forkedAt, cacheAt),
      cachedKeys: ready.keys,
      perShard: ready.perShard,
    },
  };
}

/** Counts the loaded keys through the proxy (serializable, count_only). */
async function countKeys(endpoint: string): Promise<number> {
  const c = kvClient(endpoint, 1500);
  try {
    const prefix = Buffer.from(BULK_PREFIX);
    return (await c.range({ key: prefix, range_end: prefixEnd(prefix), count_only: true, serializable: true })).count;
  } finally {
    c.close();
  }
}

async function loadKeys(n: number, cfg: ProxyConfig, o: Opts): Promise<LoadResult> {
  if (o.load === 'restore') {
    const dir = await mkdtemp(path.join(tmpdir(), 'etcd-metaproxy-bench-snapshot-'));
    const unregister = onCleanup('snapshot file', () => rm(dir, { recursive: true, force: true }));
    try {
      const file = path.join(dir, `bench-${n}.snapshot`);
      let t0 = performance.now();
      const bytes = await writeSnapshotFile(file, n, o.valueSize, partitionMapOf(cfg));
      const snapshotMs = performance.now() - t0;
      t0 = performance.now();
      const r = await restoreFile(file, cfg);
      const loadMs = performance.now() - t0;
      if (r.keys !== BigInt(n)) throw new Error(`restore loaded ${r.keys} keys, expected ${n}`);
      return { keys: n, method: 'restore', snapshotMs, snapshotBytes: bytes, loadMs, detail: r.perShard };
    } finally {
      unregister();
      await rm(dir, { recursive: true, force: true });
    }
  }
  // Through a proxy of its own, stopped afterwards (the measured proxy starts cold).
  const loader = await startProxyProcess(cfg, { startTimeoutMs: o.cacheTimeoutMs });
  try {
    const t0 = performance.now();
    let nextLog = t0 + 10_000;
    await loadThroughProxy(loader.endpoint, partitionMapOf(cfg), {
      to: n,
      valueSize: o.valueSize,
      txnOps: o.txnOps,
      concurrency: o.txnConcurrency,
      onProgress: (done) => {
        if (performance.now() > nextLog) {
          nextLog += 10_000;
          log(`  ${done} of ${n} keys written`);
        }
      },
    });
    return { keys: n, method: 'txn', loadMs: performance.now() - t0, detail: `Txns of up to ${o.txnOps} puts of one shard, ${o.txnConcurrency} in flight` };
  } finally {
    await loader.stop();
  }
}

async function runMemory(o: Opts): Promise<{ baseline: MemoryRow; rows: MemoryRow[]; loads: LoadResult[]; colds: ColdStart[] }> {
  // Baseline: a fresh proxy on empty clusters, same configuration, after a full GC.
  log('memory baseline: a fresh proxy on empty clusters');
  const c0 = await startBenchCluster({ shards: o.shards, noFsync: o.noFsync });
  const cfg0 = await configFor(c0, o);
  const { proxy: p0, cold: cold0 } = await coldStart(cfg0, 0, o);
  const baseline: MemoryRow = { keys: 0, mem: await stableMemory(p0, { maxMs: o.settleMs }) };
  if (!baseline.mem.collected) log('WARNING: the proxy could not run a GC (no --expose-gc): memory figures include garbage');
  log(`  RSS ${mb(baseline.mem.rss)} MB, heap+external ${mb(baseline.mem.heapAndExternal)} MB, V8 heap total ${mb(baseline.mem.heapTotal)} MB (settled after ${fmt(baseline.mem.settledSec, 0)} s; started in ${secs(cold0.cacheReadyMs)} s)`);
  await p0.stop();
  await c0.stop();

  const rows: MemoryRow[] = [];
  const loads: LoadResult[] = [];
  const colds: ColdStart[] = [cold0];
  for (const n of o.keys) {
    log(`${n} keys of ${BULK_KEY_BYTES} + ${o.valueSize} bytes: loading (${o.load})`);
    const cluster = await startBenchCluster({ shards: o.shards, noFsync: o.noFsync });
    const cfg = await configFor(cluster, o);
    const load = await loadKeys(n, cfg, o);
    loads.push(load);
    log(
      `  loaded in ${secs(load.loadMs)} s (${fmt(n / (load.loadMs / 1000), 0)} keys/s)` +
        (load.snapshotMs !== undefined ? `, snapshot file of ${mb(load.snapshotBytes ?? 0)} MB written in ${secs(load.snapshotMs)} s` : '') +
        `; ${load.detail}`,
    );
    log('  cold start of a proxy on them');
    const { proxy, cold } = await coldStart(cfg, n, o);
    colds.push(cold);
    log(
      `  process up ${secs(cold.processUpMs)} s, serving ${secs(cold.servingMs)} s, ` +
        (cold.hasCache ? `cache ready ${secs(cold.cacheReadyMs)} s (${cold.cachedKeys ?? '?'} keys cached)` : 'no cache'),
    );
    const counted = await countKeys(proxy.endpoint);
    if (counted !== n) throw new Error(`the proxy counts ${counted} keys under ${BULK_PREFIX}, ${n} were loaded`);
    const mem = await stableMemory(proxy, { maxMs: o.settleMs });
    rows.push({ keys: n, mem });
    log(`  RSS ${mb(mem.rss)} MB, heap+external ${mb(mem.heapAndExternal)} MB, V8 heap total ${mb(mem.heapTotal)} MB (settled after ${fmt(mem.settledSec, 0)} s)`);
    await proxy.stop();
    await cluster.stop();
  }
  return { baseline, rows, loads, colds };
}

function hasCache(m: Awaited<ReturnType<typeof runMemory>>, keys: number): boolean {
  return m.colds.find((c) => c.keys === keys)?.hasCache ?? false;
}

function perKey(after: number, before: number, n: number): number {
  return (after - before) / n;
}

function memoryTables(m: Awaited<ReturnType<typeof runMemory>>, o: Opts): string {
  const raw = BULK_KEY_BYTES + o.valueSize;
  const head = ['keys', 'RSS MB', 'ΔRSS B/key', 'overhead B/key', 'heap+ext MB', 'Δheap+ext B/key', 'overhead B/key', 'cache_bytes B/key', `goal ≤ ${GOAL_OVERHEAD_BYTES}`];
  const rows: string[][] = [head, ['0 (baseline)', mb(m.baseline.mem.rss), '', '', mb(m.baseline.mem.heapAndExternal), '', '', '', '']];
  for (const r of m.rows) {
    const dRss = perKey(r.mem.rss, m.baseline.mem.rss, r.keys);
    const dHeap = perKey(r.mem.heapAndExternal, m.baseline.mem.heapAndExternal, r.keys);
    rows.push([
      String(r.keys),
      mb(r.mem.rss),
      fmt(dRss, 0),
      fmt(dRss - raw, 0),
      mb(r.mem.heapAndExternal),
      fmt(dHeap, 0),
      fmt(dHeap - raw, 0),
      r.mem.cacheBytes !== undefined ? fmt(r.mem.cacheBytes / r.keys, 0) : '-',
      !hasCache(m, r.keys) ? 'no cache' : dRss - raw <= GOAL_OVERHEAD_BYTES ? 'met' : 'missed',
    ]);
  }
  const loadRows: string[][] = [['keys', 'load', 'snapshot s', 'load s', 'keys/s', 'process up s', 'serving s', 'cache ready s', 'cached keys']];
  for (const c of m.colds) {
    const l = m.loads.find((x) => x.keys === c.keys && c.keys > 0);
    loadRows.push([
      c.keys === 0 ? '0 (empty)' : String(c.keys),
      l ? l.method : '-',
      l?.snapshotMs !== undefined ? secs(l.snapshotMs) : '',
      l ? secs(l.loadMs) : '',
      l ? fmt(c.keys / (l.loadMs / 1000), 0) : '',
      secs(c.processUpMs),
      secs(c.servingMs),
      c.hasCache ? secs(c.cacheReadyMs) : 'no cache',
      c.cachedKeys !== undefined ? String(c.cachedKeys) : c.hasCache ? '?' : '-',
    ]);
  }
  return [
    `memory of the proxy process after a full GC (fresh process, cache loaded), keys of ${BULK_KEY_BYTES} + values of ${o.valueSize} bytes = ${raw} bytes/key of data:`,
    table(rows, 1),
    '  ΔX B/key = (X with N keys - X of the baseline) / N; overhead = that - key and value bytes; goal on RSS overhead',
    '  cache_bytes B/key: the proxy\'s own estimate (etcd_metaproxy_cache_bytes) per key, when it exports one',
    '',
    'load and cold start (seconds from forking the proxy process):',
    table(loadRows, 2),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  installSignalHandlers();
  const o = parse();
  const started = Date.now();
  const version = etcdVersion();
  log(
    `phases ${o.phases.join(', ')}; etcd ${version} ${o.noFsync ? 'with --unsafe-no-fsync' : 'with fsync'}; proxy with ${o.shards} shards` +
      (o.phases.includes('throughput') ? `; Go benchmark tool, ${o.clients} clients over ${o.conns} connections, ${o.duration}s per run` : '') +
      (o.phases.includes('memory') ? `; memory and cold start with ${o.keys.join(', ')} keys loaded by ${o.load}` : ''),
  );

  let throughput: Awaited<ReturnType<typeof runThroughput>> | undefined;
  let memory: Awaited<ReturnType<typeof runMemory>> | undefined;
  if (o.phases.includes('throughput')) throughput = await runThroughput(o);
  if (o.phases.includes('memory')) memory = await runMemory(o);

  const out: string[] = ['', `etcd-metaproxy cache benchmark: etcd ${version} ${o.noFsync ? '--unsafe-no-fsync' : 'fsync on'}, proxy with ${o.shards} shards`];
  if (throughput) {
    out.push('');
    out.push(`read throughput: Go benchmark tool, ${o.clients} clients, ${o.conns} conns, ~${o.duration}s per run` + (throughput.cache && !throughput.cache.hasCache ? ` (NOTE: ${withoutCache(o)})` : ''));
    out.push(throughputTable(throughput.results, o));
    out.push('');
    for (const w of workloadsFor(o.workloads, 1)) out.push(`  ${describeWorkload(w, 'go')}`);
    out.push('  cpu %: CPU time of the process serving clients (etcd, grpc-proxy, or the proxy process) during the run, % of one core');
    out.push('  coord/read, member/read: the proxy\'s unary calls to the coordinator / to shard members per client Range (0 when served from memory)');
    out.push('  hits/read: growth of etcd_metaproxy_cache_hits_total per client Range (blank when the proxy has no such counter)');
    out.push('  grpc-proxy answers serializable reads from its cache and passes linearizable ones to etcd');
  }
  if (memory) {
    out.push('');
    if (memory.colds.some((c) => !c.hasCache)) out.push(`NOTE: ${withoutCache(o)}: these are the figures of a proxy that reads from its members`);
    out.push(memoryTables(memory, o));
  }
  out.push('');
  out.push(`total time ${((Date.now() - started) / 1000).toFixed(0)}s`);
  process.stdout.write(out.join('\n') + '\n');

  if (o.json) {
    writeFileSync(
      o.json,
      JSON.stringify(
        {
          options: o,
          etcdVersion: version,
          throughput: throughput?.results,
          memory: memory && {
            keyBytes: BULK_KEY_BYTES,
            valueBytes: o.valueSize,
            baseline: memory.baseline,
            rows: memory.rows.map((r) => ({
              ...r,
              rssPerKey: perKey(r.mem.rss, memory!.baseline.mem.rss, r.keys),
              heapAndExternalPerKey: perKey(r.mem.heapAndExternal, memory!.baseline.mem.heapAndExternal, r.keys),
            })),
            loads: memory.loads,
            coldStarts: memory.colds,
          },
        },
        null,
        2,
      ) + '\n',
    );
  }
}

main()
  .catch((err) => {
    if (shuttingDown()) return;
    if (err instanceof NoCacheError) process.stderr.write(`[cache-bench] ${err.message}\n`);
    else process.stderr.write(`[cache-bench] error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => runCleanups());
