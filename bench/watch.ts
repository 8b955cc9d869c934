/**
 * Watch benchmark: event delivery latency (write acknowledged → event at a watcher, p50/p99)
 * and delivered events/s for 1, 100 and 1000 watchers, against a plain etcd and the proxy in
 * the same run; then the proxy's fence writes per user write under a uniform and a skewed
 * (one hot key, so one busy shard and idle others) write load.
 *
 *   node --import tsx bench/watch.ts [--shards 3] [--watchers 1,100,1000] [--events 100000]
 *        [--writers 16] [--streams 10] [--no-fsync]
 */
import { parseArgs } from 'node:util';
import { installSignalHandlers, runCleanups } from './lib/cleanup.js';
import { startPlainEtcd } from './lib/etcd.js';
import { counter, scrape } from './lib/metrics.js';
import { startProxyTarget } from './lib/proxy-target.js';
import { RawClient, b, prefixEnd } from '../e2e/grpc-raw.js';
import { WatchStream, type WatchResponse } from '../e2e/watch-client.js';

const { values: args } = parseArgs({
  options: {
    shards: { type: 'string', default: '3' },
    watchers: { type: 'string', default: '1,100,1000' },
    events: { type: 'string', default: '100000' },
    writers: { type: 'string', default: '16' },
    streams: { type: 'string', default: '10' },
    'no-fsync': { type: 'boolean', default: false },
  },
});

interface Result {
  watchers: number;
  writes: number;
  p50: number;
  p99: number;
  eventsPerSec: number;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
}

/** `watchers` watchers on one prefix spread over streams; `writes` puts by concurrent writers. */
async function measure(endpoint: string, watchers: number, writes: number, tag: string): Promise<Result> {
  const client = new RawClient(endpoint);
  const prefix = `bw/${tag}/`;
  const streams = Array.from({ length: Math.min(watchers, Number(args.streams)) }, () => new WatchStream(client));
  const recv: Array<Map<string, number>> = [];
  let received = 0;
  let lastRecv = 0;
  for (let i = 0; i < watchers; i++) {
    const s = streams[i % streams.length]!;
    s.create({ key: prefix, rangeEnd: prefixEnd(prefix), watchId: i + 1 });
    recv.push(new Map());
  }
  for (const s of streams) {
    // Record arrival times as they come (the collected responses are not needed).
    const push = s.responses.push.bind(s.responses);
    s.responses.push = (...rs: WatchResponse[]) => {
      const t = now();
      for (const r of rs) {
        const id = Number(r.watch_id);
        for (const e of r.events) {
          recv[id - 1]?.set(e.kv.mod_revision, t);
          received++;
          lastRecv = t;
        }
      }
      return push(...rs.filter((r) => r.created || r.watch_id === '-1'));
    };
  }
  await Promise.all(streams.map((s, i) => s.until(() => s.responses.filter((r: WatchResponse) => r.created).length >= Math.ceil((watchers - i) / streams.length), 30_000, 'created')));
  const acks = new Map<string, number>();
  const started = now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Number(args.writers) }, async () => {
      while (next < writes) {
        const n = next++;
        const r = await client.callOrThrow('KV', 'Put', { key: b(`${prefix}k${n % 1000}`), value: b(`v${n}`) });
        acks.set(r.header.revision, now());
      }
    }),
  );
  const want = writes * watchers;
  const deadline = Date.now() + 120_000;
  while (received < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const lat: number[] = [];
  for (const m of recv) for (const [rev, t] of m) lat.push(Math.max(0, t - (acks.get(rev) ?? t)));
  lat.sort((x, y) => x - y);
  for (const s of streams) s.close();
  client.close();
  return { watchers, writes, p50: pct(lat, 50), p99: pct(lat, 99), eventsPerSec: received / ((lastRecv - started) / 1000) };
}

async function fenceRatio(endpoint: string, metricsUrl: string, skewed: boolean): Promise<{ writes: number; fences: number; putsPerSec: number }> {
  const client = new RawClient(endpoint);
  const s = new WatchStream(client);
  s.create({ key: '', rangeEnd: Buffer.from([0]) });
  const before = await scrape(metricsUrl);
  const t0 = now();
  let next = 0;
  const N = 3000;
  await Promise.all(
    Array.from({ length: Number(args.writers) }, async () => {
      while (next < N) {
        const n = next++;
        await client.callOrThrow('KV', 'Put', { key: b(skewed ? 'fence/hot' : `fence/k${n}`), value: b('x') });
      }
    }),
  );
  const secs = (now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 500));
  const afterText = await scrape(metricsUrl);
  const d = (name: string) => (counter(afterText, name) ?? 0) - (counter(before, name) ?? 0);
  s.close();
  client.close();
  return { writes: d('etcd_metaproxy_client_writes_total'), fences: d('etcd_metaproxy_fence_writes_total'), putsPerSec: N / secs };
}

async function main(): Promise<void> {
  installSignalHandlers();
  const noFsync = args['no-fsync'];
  const etcd = await startPlainEtcd({ name: 'bench-watch-etcd', noFsync });
  const proxy = await startProxyTarget({ shards: Number(args.shards), noFsync, partitions: 1024 });
  const counts = args.watchers.split(',').map(Number);
  console.log(`watch delivery: ${args.writers} writers, ${args.streams} streams max, ${args.shards} shards, fsync ${noFsync ? 'off' : 'on'}`);
  console.log('watchers | writes | etcd p50/p99 ms | proxy p50/p99 ms | etcd events/s | proxy events/s | proxy/etcd events/s');
  for (const n of counts) {
    const writes = Math.max(100, Math.min(5000, Math.floor(Number(args.events) / n)));
    const e = await measure(etcd.endpoint, n, writes, `e${n}`);
    const p = await measure(proxy.endpoint, n, writes, `p${n}`);
    const f = (x: number) => x.toFixed(1);
    console.log(
      `${n} | ${writes} | ${f(e.p50)}/${f(e.p99)} | ${f(p.p50)}/${f(p.p99)} | ${Math.round(e.eventsPerSec)} | ${Math.round(p.eventsPerSec)} | ${(p.eventsPerSec / e.eventsPerSec).toFixed(2)}x`,
    );
  }
  for (const skewed of [false, true]) {
    const r = await fenceRatio(proxy.endpoint, proxy.metricsUrl!, skewed);
    console.log(`fence writes, ${skewed ? 'skewed (one hot key)' : 'uniform keys'}: ${r.fences} fences for ${r.writes} user writes = ${(r.fences / r.writes).toFixed(3)} per write (${Math.round(r.putsPerSec)} puts/s, 1 watcher)`);
  }
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => runCleanups());
