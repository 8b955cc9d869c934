/**
 * etcd-metaproxy benchmark: runs the same put / get / range load against a plain etcd and
 * against the proxy (coordinator + N shard etcds) in one run, and prints ops/s, p50/p99 latency
 * and the ratio proxy/etcd, plus coordinator calls per write under the put load.
 *
 *   node --import tsx bench/run.ts [--shards 3] [--duration 10] [--clients 64] [--conns 8]
 *        [--no-fsync] [--loadgen auto|go|node] [--workers 2] [--workloads put,get-l,get-s,range]
 *        [--keyspace 100000] [--targets etcd,proxy] [--json out.json]
 *
 * Everything it starts runs on free loopback ports with temporary data dirs and is stopped at
 * the end, on an error, and on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { intArg } from './lib/args.js';
import { installSignalHandlers, runCleanups, shuttingDown } from './lib/cleanup.js';
import { startPlainEtcd } from './lib/etcd.js';
import { goBenchmarkAvailable, GO_BENCHMARK_BIN, runGo } from './lib/go-bench.js';
import { cpuProbe } from './lib/cpu.js';
import { counter, scrape } from './lib/metrics.js';
import { runNode } from './lib/node-loadgen.js';
import { preloadReadKeys } from './lib/preload.js';
import { startProxyTarget } from './lib/proxy-target.js';
import {
  ALL_WORKLOADS,
  describeWorkload,
  KNOWN_WORKLOADS,
  workloadsFor,
  type Measurement,
  type Workload,
  type WorkloadName,
} from './lib/workloads.js';

const USAGE = `usage: node --import tsx bench/run.ts [options]
  --shards N          shard etcds behind the proxy (default 3)
  --partitions N      hash partitions of the proxy's keyspace (default 256)
  --duration S        seconds per measured run (default 10)
  --rounds N          measured runs per workload and target, alternating which target goes
                      first (default 1); ops/s over all rounds, median p50/p99
  --clients N         concurrent clients (default 64)
  --conns N           gRPC connections (default 8)
  --no-fsync          start every etcd (both sides) with --unsafe-no-fsync
  --loadgen G         go | node | auto (default auto: go when bench/.cache/bin/benchmark exists)
  --workers N         Node load generator processes (default 2)
  --workloads LIST    comma list of ${KNOWN_WORKLOADS.join(',')} (default ${ALL_WORKLOADS.join(',')})
  --keyspace N        distinct keys for put (default 100000)
  --targets A,B       what to compare: etcd,proxy (default); etcd,etcd compares two plain etcds
                      (harness check); a single target runs without ratios
  --json FILE         also write the results as JSON
`;

interface Target {
  label: string;
  kind: 'etcd' | 'proxy';
  endpoint: string;
  metricsUrl?: string;
  /** The process that serves clients (etcd, or the proxy): its CPU use is reported. */
  pid: number | undefined;
}

interface CoordinatorStat {
  allocations: number;
  writes: number;
  perWrite: number;
}

function parse() {
  const { values } = parseArgs({
    options: {
      shards: { type: 'string', default: '3' },
      partitions: { type: 'string', default: '256' },
      duration: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '1' },
      clients: { type: 'string', default: '64' },
      conns: { type: 'string', default: '8' },
      'no-fsync': { type: 'boolean', default: false },
      loadgen: { type: 'string', default: 'auto' },
      workers: { type: 'string', default: '2' },
      workloads: { type: 'string', default: ALL_WORKLOADS.join(',') },
      keyspace: { type: 'string', default: '100000' },
      targets: { type: 'string', default: 'etcd,proxy' },
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
  const workloads = values.workloads.split(',').map((s) => s.trim()) as WorkloadName[];
  for (const w of workloads) if (!KNOWN_WORKLOADS.includes(w)) throw new Error(`unknown workload ${w}`);
  const targets = values.targets.split(',').map((s) => s.trim());
  if (targets.length < 1 || targets.length > 2 || targets.some((t) => t !== 'etcd' && t !== 'proxy')) {
    throw new Error('--targets takes one or two of etcd, proxy (e.g. etcd,proxy or etcd,etcd)');
  }
  let loadgen = values.loadgen;
  if (loadgen === 'auto') {
    loadgen = goBenchmarkAvailable() ? 'go' : 'node';
    if (loadgen === 'node') {
      log(`${GO_BENCHMARK_BIN} not found: using the Node load generator (bench/setup-benchmark-tool.sh builds etcd's Go tool)`);
    }
  }
  if (loadgen !== 'go' && loadgen !== 'node') throw new Error('--loadgen is go, node or auto');
  if (loadgen === 'go' && !goBenchmarkAvailable()) {
    throw new Error(`${GO_BENCHMARK_BIN} missing: run bench/setup-benchmark-tool.sh, or use --loadgen node`);
  }
  return {
    shards: int('shards', values.shards),
    partitions: int('partitions', values.partitions),
    duration: int('duration', values.duration),
    rounds: int('rounds', values.rounds),
    clients: int('clients', values.clients),
    conns: int('conns', values.conns),
    noFsync: values['no-fsync'],
    loadgen: loadgen as 'go' | 'node',
    workers: int('workers', values.workers),
    workloads,
    keyspace: int('keyspace', values.keyspace),
    targets: targets as ('etcd' | 'proxy')[],
    json: values.json,
  };
}

type Opts = ReturnType<typeof parse>;

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

async function startTargets(o: Opts): Promise<Target[]> {
  const out: Target[] = [];
  for (const kind of o.targets) {
    const label = out.some((t) => t.label === kind) ? `${kind}2` : kind;
    if (kind === 'etcd') {
      const e = await startPlainEtcd({ name: label, noFsync: o.noFsync });
      log(`${label}: plain etcd at ${e.endpoint}`);
      out.push({ label, kind, endpoint: e.endpoint, pid: e.pid });
    } else {
      const p = await startProxyTarget({ shards: o.shards, noFsync: o.noFsync, partitions: o.partitions });
      log(`${label}: proxy at ${p.endpoint} (${o.shards} shards), metrics ${p.metricsUrl ?? 'none'}`);
      out.push({ label, kind, endpoint: p.endpoint, pid: p.pid, ...(p.metricsUrl ? { metricsUrl: p.metricsUrl } : {}) });
    }
  }
  return out;
}

async function measure(w: Workload, t: Target, o: Opts): Promise<Measurement> {
  const cpu = cpuProbe(t.pid);
  const common = {
    endpoint: t.endpoint,
    clients: o.clients,
    conns: o.conns,
    durationSec: o.duration,
    onMeasureStart: () => cpu.start(),
    onMeasureEnd: () => cpu.end(),
  };
  const m = o.loadgen === 'go' ? await runGo(w, t.label, common) : await runNode(w, t.label, { ...common, workers: o.workers });
  return cpu.pct === undefined ? m : { ...m, cpuPct: cpu.pct };
}

async function coordinatorCounters(t: Target): Promise<{ allocations: number; writes: number } | undefined> {
  if (!t.metricsUrl) return undefined;
  try {
    const text = await scrape(t.metricsUrl);
    const allocations = counter(text, 'etcd_metaproxy_clock_allocations_total');
    const writes = counter(text, 'etcd_metaproxy_client_writes_total');
    if (allocations === undefined || writes === undefined) {
      log(`${t.label}: /metrics lacks etcd_metaproxy_clock_allocations_total or etcd_metaproxy_client_writes_total`);
      return undefined;
    }
    return { allocations, writes };
  } catch (err) {
    log(`${t.label}: scraping ${t.metricsUrl} failed: ${String(err)}`);
    return undefined;
  }
}

/** Rounds of one workload and target: ops/s over all rounds, median p50/p99 of the rounds. */
function combineRounds(runs: Measurement[]): Measurement[] {
  const groups = new Map<string, Measurement[]>();
  for (const r of runs) {
    const k = `${r.workload}\0${r.target}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  return [...groups.values()].map((g) => {
    if (g.length === 1) return g[0]!;
    const ops = g.reduce((a, r) => a + r.ops, 0);
    const seconds = g.reduce((a, r) => a + r.seconds, 0);
    const note = g.find((r) => r.note)?.note;
    return {
      workload: g[0]!.workload,
      target: g[0]!.target,
      ops,
      errors: g.reduce((a, r) => a + r.errors, 0),
      seconds,
      opsPerSec: g.reduce((a, r) => a + r.opsPerSec * r.seconds, 0) / seconds,
      p50Ms: median(g.map((r) => r.p50Ms)),
      p99Ms: median(g.map((r) => r.p99Ms)),
      ...(g.every((r) => r.cpuPct !== undefined) ? { cpuPct: median(g.map((r) => r.cpuPct!)) } : {}),
      ...(note ? { note } : {}),
    };
  });
}

const fmt = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '-');

function table(results: Measurement[], targets: Target[], names: WorkloadName[]): string {
  const rows: string[][] = [['workload', 'target', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'cpu %']];
  for (const name of names) {
    const ms = targets.map((t) => results.find((r) => r.workload === name && r.target === t.label));
    ms.forEach((m, i) => {
      if (m) rows.push([i === 0 ? name : '', m.target, fmt(m.opsPerSec, 0), fmt(m.p50Ms, 2), fmt(m.p99Ms, 2), String(m.errors), fmt(m.cpuPct ?? NaN, 0)]);
    });
    if (ms.length === 2 && ms[0] && ms[1]) {
      rows.push(['', `${ms[1].target}/${ms[0].target}`, ratio(ms[1].opsPerSec, ms[0].opsPerSec), ratio(ms[1].p50Ms, ms[0].p50Ms), ratio(ms[1].p99Ms, ms[0].p99Ms), '', '']);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) => r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd())
    .join('\n');
}

function etcdVersion(): string {
  try {
    return /etcd Version: (\S+)/.exec(execFileSync(process.env.ETCD_BIN ?? 'etcd', ['--version']).toString())?.[1] ?? '?';
  } catch {
    return '?';
  }
}

async function main(): Promise<void> {
  installSignalHandlers();
  const o = parse();
  const workloads = workloadsFor(o.workloads, o.keyspace);
  const started = Date.now();
  const gen =
    o.loadgen === 'go'
      ? `etcd's Go benchmark tool (${GO_BENCHMARK_BIN.replace(process.cwd() + '/', '')})`
      : `Node load generator (${o.workers} worker processes)`;
  log(
    `loadgen: ${gen}; ${o.clients} clients over ${o.conns} connections; ${o.duration}s per run; ` +
      `etcd ${etcdVersion()} ${o.noFsync ? 'with --unsafe-no-fsync' : 'with fsync'}`,
  );

  const targets = await startTargets(o);
  for (const t of targets) await preloadReadKeys(t.endpoint, t.label);

  const runs: Measurement[] = [];
  const coordinator = new Map<string, CoordinatorStat>();
  let turn = 0;
  for (const w of workloads) {
    log(describeWorkload(w, o.loadgen));
    for (let round = 0; round < o.rounds; round++) {
      // Alternate which target goes first, so slow drift of a noisy machine hits both alike.
      const order = turn++ % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const before = w.kind === 'put' ? await coordinatorCounters(t) : undefined;
        const m = await measure(w, t, o);
        if (before) {
          const after = await coordinatorCounters(t);
          if (after) {
            const prev = coordinator.get(t.label) ?? { allocations: 0, writes: 0, perWrite: NaN };
            const allocations = prev.allocations + after.allocations - before.allocations;
            const writes = prev.writes + after.writes - before.writes;
            coordinator.set(t.label, { allocations, writes, perWrite: writes > 0 ? allocations / writes : NaN });
          }
        }
        runs.push(m);
        log(
          `  ${t.label.padEnd(6)} ${fmt(m.opsPerSec, 0).padStart(7)} ops/s  p50 ${fmt(m.p50Ms, 2)} ms  p99 ${fmt(m.p99Ms, 2)} ms` +
            (m.cpuPct !== undefined ? `  cpu ${fmt(m.cpuPct, 0)}%` : '') +
            (m.errors ? `  errors ${m.errors} (${m.note})` : ''),
        );
      }
    }
  }
  const results = combineRounds(runs);

  const out: string[] = [];
  out.push('');
  out.push(
    `etcd-metaproxy benchmark: ${gen}, ${o.clients} clients, ${o.conns} conns, ~${o.duration}s per run, ` +
      `etcd ${etcdVersion()} ${o.noFsync ? '--unsafe-no-fsync' : 'fsync on'}` +
      (o.rounds > 1 ? `, ${o.rounds} rounds` : '') +
      (o.targets.includes('proxy') ? `, proxy with ${o.shards} shards` : ''),
  );
  out.push('');
  out.push(table(results, targets, o.workloads));
  out.push('');
  for (const w of workloads) out.push(`  ${describeWorkload(w, o.loadgen)}`);
  out.push('  cpu %: CPU time of the process serving clients (etcd, or the proxy process) during the run, % of one core');
  for (const [label, c] of coordinator) {
    out.push('');
    out.push(
      `${label}: coordinator calls per write under the put load (${o.clients} clients): ${fmt(c.perWrite, 3)} ` +
        `(${c.allocations} clock allocations / ${c.writes} client writes)`,
    );
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
          loadgen: gen,
          etcdVersion: etcdVersion(),
          results,
          coordinator: Object.fromEntries(coordinator),
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
    process.stderr.write(`[bench] error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => runCleanups());
