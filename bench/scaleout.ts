/**
 * Scale-out benchmark (issue 10): does a meta-cluster of N etcds take more writes and more data
 * than one etcd? Every etcd (the baseline and every member, coordinator included) gets the same
 * CPU quota through the cpu cgroup controller, so that the members, not the 2-core machine or
 * the proxy, are the bottleneck; then, in one run:
 *
 *   a  3 shards + coordinator, 1 proxy: puts/s vs one capped etcd (64 clients, random keys)
 *   b  the same with 2 proxies, the clients spread over both
 *   c  one hot key, 16 clients, put, uncapped: proxy vs plain etcd
 *   d  one hot key, 16 clients, compare-and-swap update loop (read, Txn{If MOD(k)==r Then Put}),
 *      uncapped: proxy vs plain etcd
 *   e  storage: the same small --quota-backend-bytes on every etcd, 4 KiB values: keys held
 *      before every shard refuses, vs one etcd
 *
 * plus the members' work per user write (from their own /metrics), the proxy's fence writes per
 * write and its CPU per put, and a summary with the issue's targets and PASS/FAIL.
 *
 *   node --import tsx bench/scaleout.ts [--quota-us 1000] [--duration 15] [--scenarios a,b,c,d,e]
 *
 * The proxy runs as the CLI runs it (bench/proxy-child.ts); everything else is measured from
 * outside (etcd's Go benchmark tool, /metrics, /proc, cgroup cpu.stat), so the benchmark does
 * not depend on how the proxy writes.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { intArg, listArg } from './lib/args.js';
import { startEtcds, startMetaEtcds, type BenchEtcd, type MetaEtcds } from './lib/bench-etcds.js';
import { openCpuCgroups, type CpuCgroups } from './lib/cgroup-cpu.js';
import { installSignalHandlers, runCleanups, shuttingDown } from './lib/cleanup.js';
import { watchWholeKeyspace } from './lib/etcdctl-watch.js';
import { goBenchmarkAvailable, GO_BENCHMARK_BIN, runGoArgs, type GoReport } from './lib/go-bench.js';
import { deltas, etcdPer, takeSample, type EtcdFigure, type Observed, type ProcessDelta } from './lib/member-work.js';
import { proxyConfig, startProxyProcess, type ProxyProcess } from './lib/proxy-target.js';
import { countPrefix, fillUntilFull, STORAGE_PREFIX, type FillResult } from './lib/storage-fill.js';

const SCENARIOS = ['a', 'b', 'c', 'd', 'e'] as const;
type ScenarioId = (typeof SCENARIOS)[number];

const USAGE = `usage: node --import tsx bench/scaleout.ts [options]
  --quota-us N        CPU quota of every etcd per 20000 us period (default 1000 = 5% of a core;
                      >= 1000); scenarios a and b
  --duration S        seconds per measured run (default 15)
  --rounds N          measured runs of each of a-d per side (default 1), alternating which side
                      goes first, and fills of e on fresh etcds; the report takes the round with
                      the median ratio and lists all
  --clients N         clients of the uniform put load, a and b (default 64)
  --hot-clients N     clients of the hot-key loads, c and d (default 16)
  --conns N           gRPC connections of the load generator (default 8)
  --shards N          shard etcds behind the proxy (default 3)
  --partitions N      hash partitions of the proxy's keyspace (default 256)
  --keyspace N        distinct keys of the uniform put load (default 100000)
  --scenarios LIST    comma list of ${SCENARIOS.join(',')} (default all)
  --storage-mb N      --quota-backend-bytes of every etcd in e, MiB (default 16)
  --storage-value N   value size in e, bytes (default 4096)
  --no-fsync          start every etcd with --unsafe-no-fsync
  --json FILE         also write the results as JSON
`;

const PERIOD_US = 20_000;
const loadAtStart = loadavg()[0]!;
const VALUE_SIZE = 256;
const KEY_SIZE = 16;
/** Storage fill: the target is full once this many writes in a row were refused. */
const FULL_AFTER = 256;

function log(msg: string): void {
  process.stderr.write(`[scaleout] ${msg}\n`);
}

function parse() {
  const { values } = parseArgs({
    options: {
      'quota-us': { type: 'string', default: '1000' },
      duration: { type: 'string', default: '15' },
      rounds: { type: 'string', default: '1' },
      clients: { type: 'string', default: '64' },
      'hot-clients': { type: 'string', default: '16' },
      conns: { type: 'string', default: '8' },
      shards: { type: 'string', default: '3' },
      partitions: { type: 'string', default: '256' },
      keyspace: { type: 'string', default: '100000' },
      scenarios: { type: 'string', default: SCENARIOS.join(',') },
      'storage-mb': { type: 'string', default: '16' },
      'storage-value': { type: 'string', default: '4096' },
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
  return {
    quotaUs: intArg('quota-us', values['quota-us'], 1000),
    duration: intArg('duration', values.duration),
    rounds: intArg('rounds', values.rounds),
    clients: intArg('clients', values.clients),
    hotClients: intArg('hot-clients', values['hot-clients']),
    conns: intArg('conns', values.conns),
    shards: intArg('shards', values.shards),
    partitions: intArg('partitions', values.partitions),
    keyspace: intArg('keyspace', values.keyspace),
    scenarios: listArg('scenarios', values.scenarios, SCENARIOS),
    storageMb: intArg('storage-mb', values['storage-mb']),
    storageValue: intArg('storage-value', values['storage-value']),
    noFsync: values['no-fsync'],
    json: values.json,
  };
}
type Opts = ReturnType<typeof parse>;

// ---------------------------------------------------------------------------------------------
// Load runs

interface Load {
  kind: 'put' | 'cas';
  clients: number;
  keySpace: number;
  describe: string;
}

function goArgs(l: Load, endpoints: string[], conns: number, total: number): string[] {
  const common = [`--endpoints=${endpoints.join(',')}`, `--conns=${Math.min(conns, l.clients)}`, `--clients=${l.clients}`, '--precise'];
  if (l.kind === 'put') {
    return [...common, 'put', `--total=${total}`, `--key-space-size=${l.keySpace}`, `--key-size=${KEY_SIZE}`, `--val-size=${VALUE_SIZE}`];
  }
  // etcd's STM with repeatable reads on one key: read the key (a Txn with one serializable
  // Range), then Txn{If mod_revision(k) == r Then Put(k)}; on a failed compare read again and
  // retry. The tool counts completed (successful) updates.
  return [
    ...common,
    'stm',
    `--total=${total}`,
    `--keys=${l.keySpace}`,
    '--keys-per-txn=1',
    '--txn-wr-percent=100',
    '--isolation=r',
    '--stm-locker=stm',
    `--val-size=${VALUE_SIZE}`,
  ];
}

/** One tool process per endpoint, the clients (and connections) split evenly between them. */
function split(l: Load, endpoints: string[], o: Opts): { load: Load; endpoint: string; conns: number }[] {
  const n = endpoints.length;
  return endpoints.map((endpoint, i) => ({
    load: { ...l, clients: Math.floor(l.clients / n) + (i < l.clients % n ? 1 : 0) },
    endpoint,
    conns: Math.max(1, Math.floor(o.conns / n)),
  }));
}

interface MultiReport {
  /** Per tool process. */
  parts: GoReport[];
  totals: number[];
  /** Requests (successful or not) of all processes over the longest one's time. */
  opsPerSec: number;
  seconds: number;
  errors: number;
  /** The larger of the processes' percentiles. */
  p50Ms: number;
  p99Ms: number;
  firstError?: string;
}

/**
 * Runs the tool against `endpoints`, one process per endpoint at the same time (so that the
 * clients are spread exactly over several proxies; clientv3's own round robin over
 * --endpoints=a,b was measured to send 2-3x more to one of them), `totals[i]` requests each.
 */
async function goRun(l: Load, endpoints: string[], o: Opts, totals: number[], durationSec: number): Promise<MultiReport> {
  const parts = split(l, endpoints, o);
  const limit = Math.max(120_000, durationSec * 20_000);
  const reports = await Promise.all(parts.map((p, i) => runGoArgs(goArgs(p.load, [p.endpoint], p.conns, totals[i]!), limit)));
  const seconds = Math.max(...reports.map((r) => r.seconds));
  const sum = totals.reduce((a, b) => a + b, 0);
  const firstError = reports.find((r) => r.firstError)?.firstError;
  return {
    parts: reports,
    totals,
    opsPerSec: seconds > 0 ? sum / seconds : NaN,
    seconds,
    errors: reports.reduce((a, r) => a + r.errors, 0),
    p50Ms: Math.max(...reports.map((r) => r.p50Ms)),
    p99Ms: Math.max(...reports.map((r) => r.p99Ms)),
    ...(firstError ? { firstError } : {}),
  };
}

/**
 * Warm-up and calibration: the tool counts requests, not time. Runs at least 2 s (so that the
 * rate is measured after start-up) and returns requests/s of each tool process.
 */
async function calibrate(l: Load, endpoints: string[], o: Opts): Promise<number[]> {
  let totals = split(l, endpoints, o).map((p) => Math.max(p.load.clients * 4, 100));
  for (let i = 0; ; i++) {
    const r = await goRun(l, endpoints, o, totals, 10);
    const sum = totals.reduce((a, b) => a + b, 0);
    if (r.errors > sum / 2) throw new Error(`calibration run failed: ${r.errors} errors of ${sum} (${r.firstError})`);
    const rates = r.parts.map((p) => p.opsPerSec);
    if (r.seconds >= 2 || i >= 2) return rates;
    totals = rates.map((rate) => Math.min(2_000_000, Math.ceil(rate * 2.5)));
  }
}

interface PerOp {
  proposals: number;
  mvccPuts: number;
  mvccRanges: number;
  mvccTxns: number;
  events: number;
  putRpcs: number;
  txnRpcs: number;
  rangeRpcs: number;
}

interface RunResult {
  scenario: ScenarioId;
  side: 'etcd' | 'meta';
  /** 0-based measured round (--rounds). */
  round: number;
  load: string;
  endpoints: string[];
  capped: boolean;
  opsPerSec: number;
  /** Successful requests (puts, or completed updates). */
  ok: number;
  errors: number;
  firstError?: string;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  processes: ProcessDelta[];
  /** Work of every etcd of the side (the baseline; or shards + coordinator) per successful request. */
  perOp: PerOp;
  /** The same, shards only and coordinator only (meta side). */
  perOpShards?: PerOp;
  perOpCoordinator?: PerOp;
  /** Average watchers open per shard (or on the baseline) at the end of the run. */
  watchersPerEtcd: number;
  /** etcd CPU (all etcds of the side) per successful request, ms. */
  etcdCpuMsPerOp: number;
  proxy?: {
    /** All proxy processes' CPU per successful request, ms. */
    cpuMsPerOp: number;
    /** The same, per proxy process. */
    cpuMsPerOpByProxy: Record<string, number>;
    /** The CPU per request of the proxy that applied the member writes (the shards' owner). */
    ownerCpuMsPerOp: number;
    cpuPct: number;
    clientWrites: number;
    fencePerWrite: number;
    memberWritesPerWrite: number;
    clockAllocationsPerWrite: number;
    /** Coordinator Range calls (clock probes of linearizable reads, block confirmations, arrival proofs). */
    coordinatorReadsPerWrite: number;
    progressRequestsPerWrite: number;
    retriesPerWrite: Record<string, number>;
    /** Client writes per proxy process. */
    writesByProxy: Record<string, number>;
    /** Client requests (every method) per proxy process. */
    requestsByProxy: Record<string, number>;
    /**
     * Mean latencies over the run, ms, from the proxies' histograms: a client request, a member
     * txn, a coordinator read (clock probes and arrival proofs), and an answer from the owner's
     * state waiting for its arrival proof (etcd_metaproxy_owner_answer_proof_wait_seconds).
     */
    latencyMs: { request: number; memberTxn: number; coordinatorRead: number; proofWait: number };
  };
}

function perOpOf(ds: ProcessDelta[], roles: Observed['role'][], ops: number): PerOp {
  const f = (k: EtcdFigure) => etcdPer(ds, roles, k, ops);
  return {
    proposals: f('proposals'),
    mvccPuts: f('mvccPuts'),
    mvccRanges: f('mvccRanges'),
    mvccTxns: f('mvccTxns'),
    events: f('events'),
    putRpcs: f('putRpcs'),
    txnRpcs: f('txnRpcs'),
    rangeRpcs: f('rangeRpcs'),
  };
}

async function measure(
  scenario: ScenarioId,
  side: 'etcd' | 'meta',
  l: Load,
  endpoints: string[],
  observed: Observed[],
  capped: boolean,
  o: Opts,
  round: number,
): Promise<RunResult> {
  const rates = await calibrate(l, endpoints, o);
  // At least 100 requests per process: the tool prints no p99 below that.
  const totals = rates.map((rate) => Math.max(l.clients * 4, 100, Math.round(rate * o.duration)));
  const total = totals.reduce((a, b) => a + b, 0);
  const before = await takeSample(observed);
  const r = await goRun(l, endpoints, o, totals, o.duration);
  const after = await takeSample(observed);
  const ds = deltas(observed, before, after);
  const ok = total - r.errors;
  const etcdRoles: Observed['role'][] = side === 'etcd' ? ['etcd'] : ['shard', 'coordinator'];
  const etcdDs = ds.filter((d) => etcdRoles.includes(d.role));
  const watched = ds.filter((d) => d.role === (side === 'etcd' ? 'etcd' : 'shard'));
  const res: RunResult = {
    scenario,
    side,
    round,
    load: l.describe,
    endpoints,
    capped,
    opsPerSec: r.opsPerSec,
    ok,
    errors: r.errors,
    seconds: r.seconds,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    processes: ds,
    perOp: perOpOf(ds, etcdRoles, ok),
    watchersPerEtcd: watched.reduce((a, d) => a + (d.watchers ?? NaN), 0) / Math.max(1, watched.length),
    etcdCpuMsPerOp: ok > 0 ? (etcdDs.reduce((a, d) => a + (d.cpuSec ?? NaN), 0) / ok) * 1000 : NaN,
    ...(r.firstError ? { firstError: r.firstError } : {}),
  };
  if (side === 'meta') {
    res.perOpShards = perOpOf(ds, ['shard'], ok);
    res.perOpCoordinator = perOpOf(ds, ['coordinator'], ok);
    const proxies = ds.filter((d) => d.role === 'proxy');
    const sum = (f: (d: ProcessDelta) => number | undefined) => proxies.reduce((a, d) => a + (f(d) ?? NaN), 0);
    const writes = sum((d) => d.proxy?.clientWrites);
    const retries: Record<string, number> = {};
    for (const d of proxies) for (const [k, v] of Object.entries(d.proxy?.retries ?? {})) retries[k] = (retries[k] ?? 0) + v;
    const wall = (after.at - before.at) / 1000;
    const owner = proxies.reduce((a, d) => ((d.proxy?.memberWrites ?? 0) > (a.proxy?.memberWrites ?? 0) ? d : a), proxies[0]!);
    const perOpMs = (d: ProcessDelta) => (ok > 0 ? ((d.cpuSec ?? NaN) / ok) * 1000 : NaN);
    res.proxy = {
      cpuMsPerOp: ok > 0 ? (sum((d) => d.cpuSec) / ok) * 1000 : NaN,
      cpuMsPerOpByProxy: Object.fromEntries(proxies.map((d) => [d.label, perOpMs(d)])),
      ownerCpuMsPerOp: perOpMs(owner),
      cpuPct: (sum((d) => d.cpuSec) / wall) * 100,
      clientWrites: writes,
      fencePerWrite: sum((d) => d.proxy?.fenceWrites) / writes,
      memberWritesPerWrite: sum((d) => d.proxy?.memberWrites) / writes,
      clockAllocationsPerWrite: sum((d) => d.proxy?.clockAllocations) / writes,
      coordinatorReadsPerWrite: sum((d) => d.proxy?.coordinatorReadCount ?? 0) / writes,
      progressRequestsPerWrite: sum((d) => d.proxy?.progressRequests ?? 0) / writes,
      retriesPerWrite: Object.fromEntries(Object.entries(retries).map(([k, v]) => [k, v / writes])),
      writesByProxy: Object.fromEntries(proxies.map((d) => [d.label, d.proxy?.clientWrites ?? NaN])),
      requestsByProxy: Object.fromEntries(proxies.map((d) => [d.label, d.proxy?.requests ?? NaN])),
      latencyMs: {
        request: meanMs(proxies, 'request'),
        memberTxn: meanMs(proxies, 'memberTxn'),
        coordinatorRead: meanMs(proxies, 'coordinatorRead'),
        proofWait: meanMs(proxies, 'proofWait'),
      },
    };
  }
  const cpu = side === 'meta' ? `  proxy cpu ${fmt(res.proxy!.cpuPct, 0)}% (${fmt(res.proxy!.cpuMsPerOp, 3)} ms/op)` : '';
  log(
    `  ${side.padEnd(4)} ${fmt(r.opsPerSec, 0).padStart(7)} ops/s  p50 ${fmt(r.p50Ms, 2)} ms  p99 ${fmt(r.p99Ms, 2)} ms` +
      `  mvcc puts/op ${fmt(res.perOp.mvccPuts, 2)}  proposals/op ${fmt(res.perOp.proposals, 2)}${cpu}` +
      (r.errors ? `  errors ${r.errors} (${r.firstError})` : ''),
  );
  return res;
}

/** The mean of a latency histogram over the proxies' differences, ms (NaN without observations). */
function meanMs(proxies: ProcessDelta[], what: 'request' | 'memberTxn' | 'coordinatorRead' | 'proofWait'): number {
  const total = (k: `${typeof what}Sec` | `${typeof what}Count`) => proxies.reduce((a, d) => a + (d.proxy?.[k] ?? 0), 0);
  const n = total(`${what}Count`);
  return n > 0 ? (total(`${what}Sec`) / n) * 1000 : NaN;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const fmt = (n: number | undefined, digits: number) => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '-');
const ratioOf = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
const x = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}x` : '-');

function table(rows: string[][], leftCols = 1): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) => r.map((cell, c) => (c < leftCols ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd())
    .join('\n');
}

interface Check {
  what: string;
  value: number;
  shown: string;
  op: '>=' | '<=';
  target: number;
  targetShown: string;
}

const verdict = (c: Check) => (!Number.isFinite(c.value) ? 'n/a' : (c.op === '>=' ? c.value >= c.target : c.value <= c.target) ? 'PASS' : 'FAIL');

function etcdVersion(): string {
  try {
    return /etcd Version: (\S+)/.exec(execFileSync(process.env.ETCD_BIN ?? 'etcd', ['--version']).toString())?.[1] ?? '?';
  } catch {
    return '?';
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios a-d: one baseline etcd and one meta-cluster, capped for a and b, uncapped for c, d

async function startProxy(meta: MetaEtcds, o: Opts, logLevel?: string): Promise<ProxyProcess> {
  const config = await proxyConfig(meta.cluster, { partitions: o.partitions, ...(logLevel ? { logLevel } : {}) });
  return startProxyProcess(config);
}

function observedMeta(meta: MetaEtcds, proxies: { label: string; p: ProxyProcess }[], etcds: Map<string, Observed>): Observed[] {
  return [
    ...[meta.coordinator, ...meta.shards].map((e) => etcds.get(e.name)!),
    ...proxies.map(({ label, p }): Observed => ({ label, role: 'proxy', metricsUrl: p.metricsUrl, pid: p.pid })),
  ];
}

async function throughputScenarios(o: Opts, cg: CpuCgroups | undefined): Promise<RunResult[]> {
  const want = (s: ScenarioId) => o.scenarios.includes(s);
  const results: RunResult[] = [];
  const baseline = (await startEtcds(['etcd'], { noFsync: o.noFsync, dirTag: 'baseline' })).etcds[0]!;
  const meta = await startMetaEtcds(o.shards, { noFsync: o.noFsync });
  const observedOf = new Map<string, Observed>();
  const observe = (e: BenchEtcd, role: Observed['role']) => {
    const ob: Observed = { label: e.name, role, metricsUrl: e.metricsUrl, pid: e.pid };
    if (cg) ob.cap = cg.cap(e.name, e.pid, o.quotaUs);
    observedOf.set(e.name, ob);
  };
  observe(baseline, 'etcd');
  observe(meta.coordinator, 'coordinator');
  for (const s of meta.shards) observe(s, 'shard');
  if (cg) {
    log(
      `capped every etcd to ${o.quotaUs} us per ${PERIOD_US} us (${fmt((o.quotaUs / PERIOD_US) * 100, 1)}% of a core) with ${cg.kind} (${cg.dir}); ` +
        'their group, and the proxies (not capped), get the highest CPU weight while capped',
    );
  }
  const watcher = await watchWholeKeyspace(baseline.endpoint);
  log(`baseline etcd at ${baseline.endpoint} with one whole-keyspace watcher (etcdctl watch --prefix '')`);
  const p1 = await startProxy(meta, o);
  // The proxies get the etcds' high CPU weight (no quota), so that on a busy machine the
  // process under test is not starved by unrelated work while the capped members wait for it.
  const prioritise = (label: string, p: ProxyProcess) => {
    if (cg && p.pid !== undefined) cg.cap(label, p.pid, undefined);
  };
  prioritise('proxy1', p1);
  log(`meta-cluster: coordinator + ${o.shards} shards, proxy 1 at ${p1.endpoint}`);
  const etcdObs = [observedOf.get('etcd')!];

  if (want('a') || want('b')) {
    const uniform: Load = { kind: 'put', clients: o.clients, keySpace: o.keyspace, describe: `put, ${o.clients} clients, random ${KEY_SIZE}-byte keys over ${o.keyspace}, ${VALUE_SIZE}-byte values` };
    log(`uniform put load, capped: ${uniform.describe}`);
    for (let round = 0; round < o.rounds; round++) {
      if (o.rounds > 1) log(`round ${round + 1} of ${o.rounds}${round % 2 ? ' (meta first)' : ''}`);
      // One baseline run serves a and b; every other round it goes last.
      const baselineRun = async () => results.push(await measure(want('a') ? 'a' : 'b', 'etcd', uniform, [baseline.endpoint], etcdObs, true, o, round));
      if (round % 2 === 0) await baselineRun();
      if (want('a')) {
        log('a: 3 shards + coordinator, 1 proxy');
        results.push(await measure('a', 'meta', uniform, [p1.endpoint], observedMeta(meta, [{ label: 'proxy1', p: p1 }], observedOf), true, o, round));
      }
      if (want('b')) {
        const p2 = await startProxy(meta, o);
        prioritise('proxy2', p2);
        log(`b: 2 proxies (${p1.endpoint}, ${p2.endpoint}), half the clients on each (one tool process per proxy)`);
        const proxies = [
          { label: 'proxy1', p: p1 },
          { label: 'proxy2', p: p2 },
        ];
        results.push(await measure('b', 'meta', uniform, [p1.endpoint, p2.endpoint], observedMeta(meta, proxies, observedOf), true, o, round));
        await p2.stop();
      }
      if (round % 2 === 1) await baselineRun();
    }
  }

  if (want('c') || want('d')) {
    if (cg) {
      cg.setQuota(undefined);
      log('lifted the CPU caps for the hot-key scenarios');
    }
    const hot = (kind: Load['kind']): Load => ({
      kind,
      clients: o.hotClients,
      keySpace: 1,
      describe:
        kind === 'put'
          ? `put, ${o.hotClients} clients, one ${KEY_SIZE}-byte key, ${VALUE_SIZE}-byte values`
          : `CAS update loop (benchmark stm: read k in a Txn, then Txn{If MOD(k)==r Then Put(k)}, read again on a failed compare), ${o.hotClients} clients, one key`,
    });
    const metaObs = observedMeta(meta, [{ label: 'proxy1', p: p1 }], observedOf);
    for (const [id, kind] of [
      ['c', 'put'],
      ['d', 'cas'],
    ] as const) {
      if (!want(id)) continue;
      const l = hot(kind);
      log(`${id}: one hot key, uncapped: ${l.describe}`);
      for (let round = 0; round < o.rounds; round++) {
        const sides = round % 2 ? (['meta', 'etcd'] as const) : (['etcd', 'meta'] as const);
        for (const side of sides) {
          results.push(await measure(id, side, l, [side === 'etcd' ? baseline.endpoint : p1.endpoint], side === 'etcd' ? etcdObs : metaObs, false, o, round));
        }
      }
    }
  }

  await p1.stop();
  await watcher.stop();
  await meta.stop();
  return results;
}

// ---------------------------------------------------------------------------------------------
// Scenario e: storage

interface StorageResult {
  quotaBytes: number;
  valueSize: number;
  etcd: FillResult & { dbBytes?: number };
  meta: FillResult & {
    perEtcd: { label: string; keys?: number; dbBytes?: number; storedKeys?: number }[];
    /** Keys under the prefix found on the shards directly (user keys are stored verbatim with the default empty namespace). */
    storedOnShards?: number;
  };
  /** With --rounds: keys acknowledged by each side in every round (this result is the median-ratio one). */
  rounds?: { etcd: number; meta: number }[];
}

/**
 * Scenario e once per round, on fresh etcds each time: how many keys one etcd's backend fits
 * moves from fill to fill (2721-3070 of 4 KiB in 16 MiB here), so the round with the median
 * ratio is reported, with every round's counts.
 */
async function storageRounds(o: Opts): Promise<StorageResult> {
  const all: StorageResult[] = [];
  for (let round = 0; round < o.rounds; round++) {
    if (o.rounds > 1) log(`e: round ${round + 1} of ${o.rounds}`);
    all.push(await storageScenario(o));
  }
  const ratio = (r: StorageResult) => ratioOf(r.meta.acked, r.etcd.acked);
  const sorted = [...all].sort((x, y) => ratio(x) - ratio(y));
  const shown = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return o.rounds > 1 ? { ...shown, rounds: all.map((r) => ({ etcd: r.etcd.acked, meta: r.meta.acked })) } : shown;
}

async function storageScenario(o: Opts): Promise<StorageResult> {
  const quotaBytes = o.storageMb * 1024 * 1024;
  const fill = { valueSize: o.storageValue, concurrency: 64, conns: 8, fullAfter: FULL_AFTER, maxSeconds: 240, log };
  log(`e: storage, --quota-backend-bytes ${quotaBytes} on every etcd, ${o.storageValue}-byte values, new keys until every write is refused (uncapped)`);
  const baseGroup = await startEtcds(['etcd-e'], { noFsync: o.noFsync, dirTag: 'storage', quotaBackendBytes: quotaBytes });
  const base = baseGroup.etcds[0]!;
  log(`  plain etcd at ${base.endpoint}`);
  const etcdFill = await fillUntilFull(base.endpoint, fill);
  const baseCounters = await takeSample([{ label: 'etcd', role: 'etcd', metricsUrl: base.metricsUrl, pid: base.pid }]);
  await baseGroup.stop();
  log(`  etcd: ${etcdFill.acked} keys acknowledged (${etcdFill.ackedBeforeFirstNospace} before the first NOSPACE)`);

  const meta = await startMetaEtcds(o.shards, { noFsync: o.noFsync, quotaBackendBytes: quotaBytes });
  // Log level error: a full shard makes today's proxy warn about every failed fence write.
  const p = await startProxy(meta, o, 'error');
  log(`  meta-cluster: coordinator + ${o.shards} shards, proxy at ${p.endpoint}`);
  const metaFill = await fillUntilFull(p.endpoint, fill);
  const etcds = [meta.coordinator, ...meta.shards];
  const stored = new Map<string, number>();
  for (const e of meta.shards) {
    const n = await countPrefix(e.endpoint, STORAGE_PREFIX).catch(() => undefined);
    if (n !== undefined) stored.set(e.name, n);
  }
  const s = await takeSample(etcds.map((e) => ({ label: e.name, role: 'shard' as const, metricsUrl: e.metricsUrl, pid: e.pid })));
  // Writes per member txn: a member stores each batch's clock put as one more (small) item, so
  // small batches use more backend pages per key.
  const proxyCounters = (await takeSample([{ label: 'proxy', role: 'proxy', metricsUrl: p.metricsUrl, pid: p.pid }])).of.get('proxy')?.proxy;
  await p.stop();
  await meta.stop();
  log(`  meta: ${metaFill.acked} keys acknowledged (${metaFill.ackedBeforeFirstNospace} before the first NOSPACE)`);
  if (proxyCounters?.clientWrites && proxyCounters.memberWrites) {
    log(`  meta: ${fmt(proxyCounters.clientWrites / proxyCounters.memberWrites, 1)} client writes per member txn`);
  }
  const db = baseCounters.of.get('etcd')?.etcd?.dbBytes;
  return {
    quotaBytes,
    valueSize: o.storageValue,
    etcd: { ...etcdFill, ...(db !== undefined ? { dbBytes: db } : {}) },
    meta: {
      ...metaFill,
      perEtcd: etcds.map((e) => {
        const c = s.of.get(e.name)?.etcd;
        const k = stored.get(e.name);
        return {
          label: e.name,
          ...(c?.keys !== undefined ? { keys: c.keys } : {}),
          ...(c?.dbBytes !== undefined ? { dbBytes: c.dbBytes } : {}),
          ...(k !== undefined ? { storedKeys: k } : {}),
        };
      }),
      ...(stored.size === meta.shards.length ? { storedOnShards: [...stored.values()].reduce((a, b) => a + b, 0) } : {}),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Report

function report(o: Opts, cg: CpuCgroups | undefined, runs: RunResult[], storage: StorageResult | undefined, started: number): { text: string; checks: Check[] } {
  const out: string[] = [];
  const find = (s: ScenarioId, side: 'etcd' | 'meta', round: number) => runs.find((r) => r.scenario === s && r.side === side && r.round === round);
  // a and b share one baseline run per round.
  const inRound = (s: ScenarioId, side: 'etcd' | 'meta', round: number) => find(s, side, round) ?? (s === 'b' && side === 'etcd' ? find('a', side, round) : undefined);
  const roundRatio = (s: ScenarioId, round: number) => ratioOf(inRound(s, 'meta', round)?.opsPerSec ?? NaN, inRound(s, 'etcd', round)?.opsPerSec ?? NaN);
  const roundsOf = (s: ScenarioId) => runs.filter((r) => r.scenario === s && r.side === 'meta').map((r) => r.round);
  // With several rounds, a scenario is reported by its round with the median ratio (the lower
  // middle one for an even count): every table and target below shows that round.
  const medianRound = (s: ScenarioId) => {
    const rs = roundsOf(s).sort((a, b) => roundRatio(s, a) - roundRatio(s, b));
    return rs[Math.floor((rs.length - 1) / 2)] ?? 0;
  };
  const get = (s: ScenarioId, side: 'etcd' | 'meta') => inRound(s, side, medianRound(s));
  const runLabel = (r: RunResult) =>
    `${r.side === 'etcd' && r.scenario === 'a' && find('b', 'meta', r.round) ? 'a,b' : r.scenario} ${r.side}${o.rounds > 1 ? ` #${r.round + 1}` : ''}`;
  out.push('');
  out.push(
    `etcd-metaproxy scale-out benchmark: etcd ${etcdVersion()} ${o.noFsync ? '--unsafe-no-fsync' : 'fsync on'}, ${o.shards} shards, ` +
      `~${o.duration}s per run, load from etcd's Go benchmark tool` +
      (cg ? `, caps (a, b): ${o.quotaUs} us per ${PERIOD_US} us = ${fmt((o.quotaUs / PERIOD_US) * 100, 1)}% of a core per etcd (${cg.kind})` : ''),
  );

  // Throughput
  const names: Record<ScenarioId, string> = {
    a: `a ${o.shards} shards + coordinator, 1 proxy (capped)`,
    b: `b ${o.shards} shards + coordinator, 2 proxies (capped)`,
    c: 'c one hot key, put (uncapped)',
    d: 'd one hot key, CAS update loop (uncapped)',
    e: 'e storage',
  };
  const thr: string[][] = [['scenario', 'etcd ops/s', 'meta ops/s', 'meta/etcd', 'meta p50 ms', 'meta p99 ms', 'errors']];
  for (const s of ['a', 'b', 'c', 'd'] as const) {
    const e = get(s, 'etcd');
    const m = get(s, 'meta');
    if (!e || !m) continue;
    thr.push([names[s], fmt(e.opsPerSec, 0), fmt(m.opsPerSec, 0), x(ratioOf(m.opsPerSec, e.opsPerSec)), fmt(m.p50Ms, 1), fmt(m.p99Ms, 1), `${e.errors}/${m.errors}`]);
  }
  if (thr.length > 1) {
    out.push('');
    out.push(table(thr));
    if (o.rounds > 1) {
      for (const s of ['a', 'b', 'c', 'd'] as const) {
        const rs = roundsOf(s);
        if (!rs.length) continue;
        const each = rs.map((r) => `#${r + 1} ${fmt(inRound(s, 'etcd', r)?.opsPerSec, 0)}/${fmt(inRound(s, 'meta', r)?.opsPerSec, 0)} = ${x(roundRatio(s, r))}`);
        out.push(`  ${s}: ${o.rounds} rounds (etcd/meta ops/s), shown: #${medianRound(s) + 1} (median ratio): ${each.join(', ')}`);
      }
    }
    for (const s of ['a', 'c', 'd'] as const) {
      const e = get(s, 'etcd');
      if (e) out.push(`  ${s === 'a' ? 'a, b' : s}: ${e.load}`);
    }
  }

  // Caps
  const capped = runs.filter((r) => r.capped);
  if (capped.length && cg) {
    out.push('');
    out.push(`CPU during the capped runs (quota ${fmt((o.quotaUs / PERIOD_US) * 100, 1)}% of a core per etcd; throttled = share of ${PERIOD_US / 1000} ms periods in which the etcd used up its quota):`);
    const rows: string[][] = [['run', 'process', 'cpu % of a core', 'throttled', 'throttled s', 'cpu ms/put']];
    for (const r of capped) {
      r.processes.forEach((d, i) => {
        rows.push([
          i === 0 ? runLabel(r) : '',
          d.label,
          fmt(d.cpuPct, 1),
          d.throttledShare !== undefined ? `${fmt(d.throttledShare * 100, 0)}%` : '-',
          fmt(d.throttledSec, 1),
          fmt(((d.cpuSec ?? NaN) / r.ok) * 1000, 3),
        ]);
      });
      if (r.side === 'meta') rows.push(['', 'all etcds', '', '', '', fmt(r.etcdCpuMsPerOp, 3)]);
    }
    out.push(table(rows, 2));
  }

  // Member work
  const work: string[][] = [['run', 'etcds', 'proposals', 'mvcc puts', 'ranges+compares', 'watch events', 'watchers/etcd', 'events/watcher', 'Put rpcs', 'Txn rpcs', 'Range rpcs']];
  const workRow = (label: string, who: string, p: PerOp | undefined, watchers: number) => {
    if (!p) return;
    work.push([label, who, fmt(p.proposals, 2), fmt(p.mvccPuts, 2), fmt(p.mvccRanges, 2), fmt(p.events, 2), fmt(watchers, 1), fmt(p.events / watchers, 2), fmt(p.putRpcs, 2), fmt(p.txnRpcs, 2), fmt(p.rangeRpcs, 2)]);
  };
  for (const r of runs) {
    const label = runLabel(r);
    if (r.side === 'etcd') workRow(label, 'etcd', r.perOp, r.watchersPerEtcd);
    else {
      workRow(label, 'all', r.perOp, r.watchersPerEtcd);
      workRow('', 'shards', r.perOpShards, r.watchersPerEtcd);
      workRow('', 'coordinator', r.perOpCoordinator, NaN);
    }
  }
  if (work.length > 1) {
    out.push('');
    out.push("Member work per user request (put, or completed CAS update), from the etcds' own /metrics (differences over the measured run):");
    out.push(table(work, 2));
    out.push('  ranges+compares: etcd_mvcc_range_total (etcd counts each Txn compare as a range); watchers/etcd: average over the shards');
  }

  // Proxy
  const prox: string[][] = [['run', 'proxy cpu %', 'cpu ms/op', 'fence writes/write', 'member txns/write', 'clock allocs/write', 'coordinator reads/write', 'member progress reqs/write', 'retries/write', 'writes per proxy', 'requests per proxy']];
  for (const r of runs) {
    if (!r.proxy) continue;
    const p = r.proxy;
    const retries = Object.entries(p.retriesPerWrite).map(([k, v]) => `${k} ${fmt(v, 3)}`).join(', ') || '0';
    const byProxy = Object.values(p.cpuMsPerOpByProxy);
    const cpuShown = byProxy.length > 1 ? `${fmt(p.cpuMsPerOp, 3)} (${byProxy.map((v) => fmt(v, 3)).join(' + ')})` : fmt(p.cpuMsPerOp, 3);
    prox.push([o.rounds > 1 ? `${r.scenario} #${r.round + 1}` : r.scenario, fmt(p.cpuPct, 0), cpuShown, fmt(p.fencePerWrite, 3), fmt(p.memberWritesPerWrite, 3), fmt(p.clockAllocationsPerWrite, 3), fmt(p.coordinatorReadsPerWrite, 3), fmt(p.progressRequestsPerWrite, 3), retries, Object.values(p.writesByProxy).map((v) => fmt(v, 0)).join(' + '), Object.values(p.requestsByProxy).map((v) => fmt(v, 0)).join(' + ')]);
  }
  if (prox.length > 1) {
    out.push('');
    out.push("The proxy, from /proc/<pid>/stat and its own /metrics (per client write: etcd_metaproxy_client_writes_total):");
    out.push(table(prox));
    const lat: string[][] = [['run', 'client request', 'member txn', 'coordinator read', 'owner answer wait for proof']];
    for (const r of runs) {
      if (!r.proxy) continue;
      const l = r.proxy.latencyMs;
      lat.push([o.rounds > 1 ? `${r.scenario} #${r.round + 1}` : r.scenario, fmt(l.request, 2), fmt(l.memberTxn, 2), fmt(l.coordinatorRead, 2), fmt(l.proofWait, 2)]);
    }
    out.push('');
    out.push("Mean latencies in the proxy, ms, from its histograms (a write waits in line for its key's turn, then for its batch's member txn; a txn answered from the owner's state may wait for an arrival proof):");
    out.push(table(lat));
    out.push('  coordinator read: etcd_metaproxy_upstream_request_duration_seconds of coordinator Range calls (clock probes of linearizable reads, arrival proofs); owner answer wait: etcd_metaproxy_owner_answer_proof_wait_seconds');
  }

  // Uncapped runs: what one request costs the plain etcd's process and the proxy's, on the same box.
  const eff: string[][] = [['run', 'plain etcd cpu %', 'plain etcd cpu ms/op', 'proxy cpu %', 'proxy cpu ms/op', 'proxy / plain etcd']];
  for (const r of runs) {
    if (!r.proxy || r.capped) continue;
    const base = runs.find((b) => b.side === 'etcd' && b.scenario === r.scenario && b.round === r.round);
    if (!base) continue;
    const baseCpu = base.processes.filter((d) => d.role === 'etcd').reduce((a, d) => a + (d.cpuPct ?? NaN), 0);
    eff.push([o.rounds > 1 ? `${r.scenario} #${r.round + 1}` : r.scenario, fmt(baseCpu, 0), fmt(base.etcdCpuMsPerOp, 3), fmt(r.proxy.cpuPct, 0), fmt(r.proxy.cpuMsPerOp, 3), x(r.proxy.cpuMsPerOp / base.etcdCpuMsPerOp)]);
  }
  if (eff.length > 1) {
    out.push('');
    out.push('CPU per request in the uncapped runs, from /proc/<pid>/stat: the plain etcd serving the load alone, and the proxy in front of the meta-cluster (its etcds not counted):');
    out.push(table(eff));
  }

  // Storage
  if (storage) {
    const st = storage;
    out.push('');
    out.push(`e storage: --quota-backend-bytes ${st.quotaBytes} (${o.storageMb} MiB) on every etcd, ${st.valueSize}-byte values, new keys until ${FULL_AFTER} writes in a row were refused:`);
    const rows: string[][] = [['target', 'keys acknowledged', 'before 1st NOSPACE', 'counted after', 'NOSPACE errors', 'other errors', 'seconds']];
    for (const [label, f] of [
      ['etcd', st.etcd],
      ['meta', st.meta],
    ] as const) {
      rows.push([label, String(f.acked), String(f.ackedBeforeFirstNospace), f.counted === undefined ? '-' : `${f.counted}${f.countedSerializable ? ' (serializable)' : ''}`, String(f.nospaceErrors), String(f.otherErrors), fmt(f.seconds, 1)]);
    }
    rows.push(['meta/etcd', x(ratioOf(st.meta.acked, st.etcd.acked)), x(ratioOf(st.meta.ackedBeforeFirstNospace, st.etcd.ackedBeforeFirstNospace)), '', '', '', '']);
    out.push(table(rows));
    if (st.rounds) {
      const each = st.rounds.map((r, i) => `#${i + 1} ${r.etcd}/${r.meta} = ${x(ratioOf(r.meta, r.etcd))}`);
      out.push(`  ${st.rounds.length} rounds (etcd/meta keys acknowledged), shown: the median ratio: ${each.join(', ')}`);
    }
    out.push(
      `  per etcd of the meta-cluster (all keys, of which the benchmark's, backend size): ` +
        st.meta.perEtcd.map((e) => `${e.label} ${e.keys ?? '?'}${e.storedKeys !== undefined ? ` (${e.storedKeys})` : ''} keys, ${fmt((e.dbBytes ?? NaN) / 1048576, 1)} MiB`).join('; '),
    );
    // etcd checks its quota against the backend size of its last commit (every 100 ms), so a
    // faster fill gets further past the quota before NOSPACE: keys per MiB of backend tell the
    // storage cost apart from that.
    const shardBytes = st.meta.perEtcd.filter((e) => e.label !== 'coordinator').reduce((n, e) => n + (e.dbBytes ?? NaN), 0);
    const perMib = (keys: number, bytes: number | undefined) => keys / ((bytes ?? NaN) / 1048576);
    const etcdPerMib = perMib(st.etcd.acked, st.etcd.dbBytes);
    const shardPerMib = perMib(st.meta.acked, shardBytes);
    out.push(
      `  keys per MiB of backend at the end: etcd ${fmt(etcdPerMib, 1)} (${fmt((st.etcd.dbBytes ?? NaN) / 1048576, 1)} MiB for a ${fmt(st.quotaBytes / 1048576, 0)} MiB quota), ` +
        `the shards ${fmt(shardPerMib, 1)}: at equal backend bytes the meta-cluster would hold ${x((st.meta.perEtcd.length - 1) * ratioOf(shardPerMib, etcdPerMib))}`,
    );
    if (st.meta.storedOnShards !== undefined) {
      const lost = st.meta.acked - st.meta.storedOnShards;
      out.push(
        `  the benchmark's keys found on the shards directly: ${st.meta.storedOnShards} (acknowledged ${st.meta.acked}` +
          (lost > 0 ? `: ${lost} ACKNOWLEDGED WRITES MISSING)` : '; none missing)'),
      );
    }
    for (const [label, f] of [
      ['etcd', st.etcd],
      ['meta', st.meta],
    ] as const) {
      if (f.countError) out.push(`  ${label}: the linearizable count after the fill failed: ${f.countError}`);
    }
    if (st.meta.firstOtherError) out.push(`  meta, first other error: ${st.meta.firstOtherError}`);
    if (st.etcd.firstOtherError) out.push(`  etcd, first other error: ${st.etcd.firstOtherError}`);
    if (st.meta.stopped !== 'full' || st.etcd.stopped !== 'full') out.push('  WARNING: a fill stopped at its time limit, not because every write was refused');
  }

  // Targets
  const checks: Check[] = [];
  const add = (what: string, value: number, shown: string, op: Check['op'], target: number, targetShown: string) => checks.push({ what, value, shown, op, target, targetShown });
  for (const s of ['a', 'b'] as const) {
    const e = get(s, 'etcd');
    const m = get(s, 'meta');
    if (!e || !m) continue;
    const r = ratioOf(m.opsPerSec, e.opsPerSec);
    add(`${s}: puts/s vs one capped etcd`, r, x(r), '>=', 2.5, '2.5x');
    add(`${s}: mvcc puts per user put (all etcds)`, m.perOp.mvccPuts, fmt(m.perOp.mvccPuts, 2), '<=', 1.2, '1.2');
    add(`${s}: proposals per user put (all etcds)`, m.perOp.proposals, fmt(m.perOp.proposals, 2), '<=', 0.5, '0.5');
    add(`${s}: fence writes per write, uniform keys`, m.proxy!.fencePerWrite, fmt(m.proxy!.fencePerWrite, 3), '<=', 0.02, '0.02');
    // On the replica that owns the shards (issue 10's wording); the table shows every proxy's.
    add(`${s}: proxy CPU per put, ms${s === 'b' ? ', the owner' : ''}`, m.proxy!.ownerCpuMsPerOp, fmt(m.proxy!.ownerCpuMsPerOp, 3), '<=', 0.25, '0.25');
  }
  for (const s of ['c', 'd'] as const) {
    const e = get(s, 'etcd');
    const m = get(s, 'meta');
    if (!e || !m) continue;
    const r = ratioOf(m.opsPerSec, e.opsPerSec);
    add(`${s}: hot key ${s === 'c' ? 'put' : 'CAS updates'}/s vs plain etcd`, r, x(r), '>=', 0.5, '0.5x');
    add(`${s}: fence writes per write, one hot key`, m.proxy!.fencePerWrite, fmt(m.proxy!.fencePerWrite, 3), '<=', 0.02, '0.02');
  }
  if (storage) {
    const r = ratioOf(storage.meta.acked, storage.etcd.acked);
    add('e: keys held before every shard refuses vs one etcd', r, x(r), '>=', 2.7, '2.7x');
  }
  if (checks.length) {
    out.push('');
    out.push("Issue 10's targets:");
    const rows: string[][] = [['figure', 'measured', 'target', '']];
    for (const c of checks) rows.push([c.what, c.shown, `${c.op} ${c.targetShown}`, verdict(c)]);
    out.push(table(rows));
    const failed = checks.filter((c) => verdict(c) === 'FAIL').length;
    out.push(`  ${checks.length - failed} of ${checks.length} met`);
  }
  out.push('');
  out.push(`total time ${((Date.now() - started) / 1000).toFixed(0)}s; machine: ${cpus().length} cores, load average (1 min) ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`);
  return { text: out.join('\n') + '\n', checks };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  installSignalHandlers();
  const o = parse();
  const started = Date.now();
  const want = (s: ScenarioId) => o.scenarios.includes(s);
  const needGo = ['a', 'b', 'c', 'd'].some((s) => want(s as ScenarioId));
  if (needGo && !goBenchmarkAvailable()) {
    throw new Error(`${GO_BENCHMARK_BIN} is missing: build it with \`sudo bash bench/setup-benchmark-tool.sh\``);
  }
  let cg: CpuCgroups | undefined;
  if (want('a') || want('b')) {
    const opened = await openCpuCgroups(PERIOD_US);
    if (!opened.ok) {
      process.stdout.write(
        `scale-out benchmark: cannot cap the etcds' CPU, so scenarios a and b would measure the machine, not the members.\n` +
          `  ${opened.why}\n` +
          `  It needs a writable cpu controller: cgroup v1 (e.g. /sys/fs/cgroup/cpu) or cgroup v2 with cpu in cgroup.controllers, as root.\n` +
          `  The uncapped scenarios run without it: --scenarios c,d,e\n`,
      );
      return;
    }
    cg = opened.cgroups;
  }
  log(
    `etcd ${etcdVersion()} ${o.noFsync ? 'with --unsafe-no-fsync' : 'with fsync'}; scenarios ${o.scenarios.join(',')}; ` +
      `${o.duration}s per measured run (each after a warm-up that sizes it)`,
  );
  const runs = needGo ? await throughputScenarios(o, cg) : [];
  if (cg) await cg.remove();
  const storage = want('e') ? await storageRounds(o) : undefined;
  const { text, checks } = report(o, cg, runs, storage, started);
  process.stdout.write(text);
  if (o.json) {
    writeFileSync(
      o.json,
      JSON.stringify({ options: o, etcdVersion: etcdVersion(), cgroup: cg ? { kind: cg.kind, periodUs: PERIOD_US } : null, runs, storage, checks: checks.map((c) => ({ ...c, verdict: verdict(c) })) }, null, 2) + '\n',
    );
    log(`wrote ${o.json}`);
  }
}

main()
  .catch((err) => {
    if (shuttingDown()) return;
    process.stderr.write(`[scaleout] error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => runCleanups());
