/**
 * Compares two builds of the proxy on one load of bench/scaleout.ts (a: the uniform put load on
 * capped members; c or d: the hot-key loads), against one set of etcds, in short alternating
 * windows (A B, B A, ...), and prints each window's rate and the proxy's CPU per operation, and
 * the medians of the paired ratios A/B (in a, the members are the bottleneck: the CPU per put
 * is the figure to compare).
 *
 * Why: on a shared machine the speed moves by 20 % and more within minutes, more than most
 * changes to the proxy's CPU per request; whole benchmark runs minutes apart cannot tell such a
 * change from the machine. Adjacent short windows against the same etcds can (their drift is
 * mostly shared), and the median of the pairs discards a window the machine spoiled.
 *
 *   npm run build && cp -r dist /tmp/dist-new       # the change
 *   git stash && npm run build && cp -r dist /tmp/dist-old && git stash pop
 *   node --import tsx bench/ab.ts --a /tmp/dist-new --b /tmp/dist-old [--scenario d] [--rounds 6] [--duration 8]
 *
 * A build named with a `+N` suffix runs with node's --max-semi-space-size=N (e.g. /tmp/dist-new+64).
 * The builds are copied into dist/ in turn (the proxy child runs dist/, as `npm start` does);
 * the dist/ there was before is put back at the end.
 */
import { cpSync, existsSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startMetaEtcds } from './lib/bench-etcds.js';
import { proxyConfig, startProxyProcess, type ProxyProcess } from './lib/proxy-target.js';
import { goBenchmarkAvailable, runGoArgs, type GoReport } from './lib/go-bench.js';
import { cpuSeconds } from './lib/cpu.js';
import { openCpuCgroups, type CpuCgroups } from './lib/cgroup-cpu.js';
import { installSignalHandlers, runCleanups } from './lib/cleanup.js';

const { values } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string' },
    scenario: { type: 'string', default: 'd' },
    rounds: { type: 'string', default: '6' },
    duration: { type: 'string', default: '8' },
    clients: { type: 'string' },
    'quota-us': { type: 'string', default: '1000' },
    conns: { type: 'string', default: '8' },
  },
});
if (!values.a || !values.b || !['a', 'c', 'd'].includes(values.scenario!)) {
  process.stderr.write('usage: node --import tsx bench/ab.ts --a DIST_A --b DIST_B [--scenario a|c|d] [--rounds N] [--duration S] [--quota-us N]\n');
  process.exit(2);
}
if (!goBenchmarkAvailable()) {
  process.stderr.write('bench/ab.ts needs etcd\'s Go benchmark tool: sudo bash bench/setup-benchmark-tool.sh\n');
  process.exit(2);
}
const builds = [values.a, values.b];
const rounds = Number(values.rounds);
const seconds = Number(values.duration);
const scenario = values.scenario as 'a' | 'c' | 'd';
const clients = values.clients ?? (scenario === 'a' ? '64' : '16');
/** Ops of the warm-up that sizes a window. */
const WARM_OPS = { a: 2000, c: 3000, d: 300 }[scenario];
const dist = path.resolve(import.meta.dirname, '..', 'dist');
const saved = `${dist}.ab-saved`;
process.env.BENCH_PROXY_BUILD = 'dist';
installSignalHandlers();
if (existsSync(dist) && !existsSync(saved)) renameSync(dist, saved);

/** bench/scaleout.ts's loads: a puts random keys, c puts one key, d runs etcd's STM update loop on it. */
function loadArgs(endpoint: string, total: number): string[] {
  const common = [`--endpoints=${endpoint}`, `--conns=${values.conns}`, `--clients=${clients}`, '--precise'];
  if (scenario === 'a') return [...common, 'put', `--total=${total}`, '--key-space-size=100000', '--key-size=16', '--val-size=256'];
  if (scenario === 'c') return [...common, 'put', `--total=${total}`, '--key-space-size=1', '--key-size=16', '--val-size=256'];
  return [...common, 'stm', `--total=${total}`, '--keys=1', '--keys-per-txn=1', '--txn-wr-percent=100', '--isolation=r', '--stm-locker=stm', '--val-size=256'];
}

/** The warm-up, retried while the new proxy takes the shards over from the one before. */
async function warmUp(endpoint: string): Promise<GoReport> {
  for (let i = 0; ; i++) {
    try {
      return await runGoArgs(loadArgs(endpoint, WARM_OPS), 60_000);
    } catch (err) {
      if (i >= 20) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function start(build: string, meta: Awaited<ReturnType<typeof startMetaEtcds>>): Promise<ProxyProcess> {
  const [dir, semi] = build.split('+');
  if (!existsSync(dir!)) throw new Error(`${dir} does not exist`);
  rmSync(dist, { recursive: true, force: true });
  cpSync(dir!, dist, { recursive: true });
  const p = await startProxyProcess(await proxyConfig(meta.cluster, { partitions: 256 }), { nodeFlags: semi ? [`--max-semi-space-size=${semi}`] : [] });
  // As in bench/scaleout.ts: the proxy gets the capped etcds' high CPU weight, with no quota.
  if (cg && p.pid !== undefined) cg.cap('proxy', p.pid, undefined);
  return p;
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const results = new Map<string, Array<{ ops: number; msPerOp: number }>>();
const meta = await startMetaEtcds(3, { noFsync: false });
/** Scenario a caps every etcd of the meta-cluster, as bench/scaleout.ts a does. */
let cg: CpuCgroups | undefined;
if (scenario === 'a') {
  const opened = await openCpuCgroups(20_000);
  if (!opened.ok) throw new Error(`scenario a needs a writable cpu cgroup controller: ${opened.why}`);
  cg = opened.cgroups;
  for (const e of [meta.coordinator, ...meta.shards]) cg.cap(e.name, e.pid, Number(values['quota-us']));
}
try {
  for (let r = 0; r < rounds; r++) {
    for (const build of r % 2 === 0 ? builds : [...builds].reverse()) {
      const p = await start(build, meta);
      try {
        const warm = await warmUp(p.endpoint);
        const cpu0 = cpuSeconds(p.pid!) ?? NaN;
        const t0 = performance.now();
        const rep = await runGoArgs(loadArgs(p.endpoint, Math.max(100, Math.round(warm.opsPerSec * seconds))), 120_000);
        const cpu = ((cpuSeconds(p.pid!) ?? NaN) - cpu0) / ((performance.now() - t0) / 1000);
        const msPerOp = (cpu * 1000) / rep.opsPerSec;
        results.set(build, [...(results.get(build) ?? []), { ops: rep.opsPerSec, msPerOp }]);
        console.log(`round ${r + 1} ${build}: ${rep.opsPerSec.toFixed(0)} ops/s, p99 ${rep.p99Ms.toFixed(1)} ms, proxy cpu ${(cpu * 100).toFixed(0)} %, ${msPerOp.toFixed(3)} ms/op, ${rep.errors} errors`);
      } finally {
        await p.stop();
      }
    }
  }
} finally {
  await cg?.remove();
  await meta.stop();
  await runCleanups();
  if (existsSync(saved)) {
    rmSync(dist, { recursive: true, force: true });
    renameSync(saved, dist);
  }
}
for (const build of builds) {
  const xs = results.get(build) ?? [];
  console.log(`${build}: median ${median(xs.map((x) => x.ops)).toFixed(0)} ops/s (${xs.map((x) => x.ops.toFixed(0)).join(' ')}), median ${median(xs.map((x) => x.msPerOp)).toFixed(3)} ms/op`);
}
const a = results.get(builds[0]!) ?? [];
const b = results.get(builds[1]!) ?? [];
const ratios = a.map((x, i) => x.ops / b[i]!.ops);
console.log(`A/B ops/s per round: ${ratios.map((x) => x.toFixed(2)).join(' ')}; median ${median(ratios).toFixed(2)}`);
const cpuRatios = a.map((x, i) => x.msPerOp / b[i]!.msPerOp);
console.log(`A/B proxy CPU per op per round: ${cpuRatios.map((x) => x.toFixed(2)).join(' ')}; median ${median(cpuRatios).toFixed(2)}`);
process.exit(0);
