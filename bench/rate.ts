/**
 * The proxy's CPU per put at fixed rates: a coordinator and 3 shards (fsync on, uncapped), the
 * compiled proxy (`npm run build` first, as `npm start` runs it), and etcd's Go benchmark tool
 * putting random keys at each --rates value (its --rate) for about --duration seconds, after a
 * warm-up at full speed. Prints the proxy's CPU at idle and, per rate, the rate reached, the
 * proxy's CPU, its CPU per put, and the member txns per put (etcd_metaproxy_member_writes_total).
 * Compare with bench/transport.ts --rates (a grpc-js server answering a fixed message at the same
 * rates): what a Node process that is not saturated pays per call.
 *
 *   node --import tsx bench/rate.ts [--rates 200,800,1600] [--duration 8] [--clients 64] [--val-size 256]
 */
import { parseArgs } from 'node:util';
import { startMetaEtcds } from './lib/bench-etcds.js';
import { proxyConfig, startProxyProcess } from './lib/proxy-target.js';
import { goBenchmarkAvailable, GO_BENCHMARK_BIN, runGoArgs } from './lib/go-bench.js';
import { cpuSeconds } from './lib/cpu.js';
import { counter } from './lib/metrics.js';
import { installSignalHandlers, runCleanups } from './lib/cleanup.js';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '200,800,1600' },
    duration: { type: 'string', default: '8' },
    clients: { type: 'string', default: '64' },
    'val-size': { type: 'string', default: '256' },
  },
});
if (!goBenchmarkAvailable()) {
  process.stderr.write(`${GO_BENCHMARK_BIN} missing: run bench/setup-benchmark-tool.sh\n`);
  process.exit(2);
}
const rates = values.rates!.split(',').filter(Boolean).map(Number);
const seconds = Number(values.duration);
process.env.BENCH_PROXY_BUILD = 'dist';
installSignalHandlers();

const meta = await startMetaEtcds(3, { noFsync: false });
try {
  const p = await startProxyProcess(await proxyConfig(meta.cluster, { partitions: 256 }));
  const load = (total: number, rate: number) => [
    `--endpoints=${p.endpoint}`,
    '--conns=8',
    `--clients=${values.clients}`,
    '--precise',
    'put',
    `--total=${total}`,
    `--rate=${rate}`,
    '--key-space-size=100000',
    '--key-size=16',
    `--val-size=${values['val-size']}`,
  ];
  const memberWrites = async () => counter(await (await fetch(p.metricsUrl)).text(), 'etcd_metaproxy_member_writes_total') ?? NaN;
  try {
    await runGoArgs(load(3000, 0), 120_000);
    const idle0 = cpuSeconds(p.pid!) ?? NaN;
    await new Promise((r) => setTimeout(r, 5000));
    console.log(`proxy at idle: ${(((cpuSeconds(p.pid!) ?? NaN) - idle0) / 5 * 100).toFixed(1)} % of a core`);
    for (const rate of rates) {
      const cpu0 = cpuSeconds(p.pid!) ?? NaN;
      const txns0 = await memberWrites();
      const t0 = performance.now();
      const rep = await runGoArgs(load(Math.round(rate * seconds), rate), 120_000);
      const wall = (performance.now() - t0) / 1000;
      const cpu = ((cpuSeconds(p.pid!) ?? NaN) - cpu0) / wall;
      const puts = rate * seconds;
      const txns = (await memberWrites()) - txns0;
      console.log(
        `rate ${rate}/s: ${rep.opsPerSec.toFixed(0)} puts/s, proxy ${(cpu * 100).toFixed(0)} % of a core, ` +
          `${((cpu * 1000) / rep.opsPerSec).toFixed(3)} ms per put, ${(txns / puts).toFixed(2)} member txns per put, ${rep.errors} errors`,
      );
    }
  } finally {
    await p.stop();
  }
} finally {
  await meta.stop();
  await runCleanups();
}
process.exit(0);
