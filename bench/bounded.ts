/**
 * Issue 12's two long scenarios, with real etcd processes and the proxy in its own process
 * (too slow for the e2e suite; e2e/bounded-memory.test.ts and e2e/held-events.test.ts are the
 * CI proofs at a smaller scale):
 *
 *   node --import tsx bench/bounded.ts --scenario ranges [--keys 20000] [--value 10240] [--ranges 500]
 *        [--budget 536870912] [--cache on|off|loading] [--no-fsync]
 *     Loads the keys (restore, before the proxy starts), then sends `--ranges` whole-keyspace
 *     Ranges at once over 50 connections while another client reads one small key in a loop.
 *     `--cache on` waits until the read cache is loaded (Ranges are answered from memory); `off`
 *     reads the members; `loading` starts the burst as soon as the proxy serves, while its cache
 *     loads (the Ranges go to the members until it is in; the cache's own bytes then add to RSS).
 *     Prints the proxy's RSS before and at its peak, the Ranges answered whole or refused with
 *     "etcdserver: too many requests" (anything else is listed as a failure), the small gets'
 *     p50/p99, and how long the proxy takes to exit on SIGTERM under a second burst.
 *
 *   node --import tsx bench/bounded.ts --scenario stop [--stop-s 300] [--rate 100] [--value 1024]
 *        [--watchers 6] [--budget 33554432] [--settle-s 20] [--no-fsync]
 *     SIGSTOPs one shard's member for `--stop-s` seconds while `--rate` puts/s go to keys of the
 *     other shards, with `--watchers` watch streams on the prefix (half with prev_kv). Prints the
 *     proxy's RSS and the held events' bytes over time, the drops, and after SIGCONT whether
 *     every watcher got every acknowledged write, in order, once (and how long that took), and
 *     the RSS `--settle-s` seconds after the catch-up (memory given back).
 */
import { parseArgs } from 'node:util';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { installSignalHandlers, onCleanup, runCleanups } from './lib/cleanup.js';
import { vmRssBytes } from './lib/cache-probe.js';
import { counter, scrape } from './lib/metrics.js';
import { proxyConfig, startBenchCluster, startProxyProcess } from './lib/proxy-target.js';
import { BULK_PREFIX, partitionMapOf, restoreFile, writeSnapshotFile } from './lib/bulk-load.js';
import { RawClient, b, prefixEnd } from '../e2e/grpc-raw.js';
import { WatchStream, type WatchResponse } from '../e2e/watch-client.js';
import { initHash } from '../src/partition/hash.js';
import { Router } from '../src/partition/router.js';

const { values: args } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'ranges' },
    keys: { type: 'string', default: '20000' },
    value: { type: 'string' },
    ranges: { type: 'string', default: '500' },
    budget: { type: 'string' },
    cache: { type: 'string', default: 'on' },
    'stop-s': { type: 'string', default: '300' },
    'settle-s': { type: 'string', default: '20' },
    rate: { type: 'string', default: '100' },
    watchers: { type: 'string', default: '6' },
    'no-fsync': { type: 'boolean', default: false },
    /** Extra node flags for the proxy process (e.g. --cpu-prof), comma-separated. */
    'proxy-node-flags': { type: 'string' },
  },
});

const MiB = 2 ** 20;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** RangeRequest{key, range_end} encoded by hand: the answers are counted, never decoded. */
function rangeRequest(key: Buffer, end: Buffer): Buffer {
  const field = (tag: number, v: Buffer) => Buffer.concat([Buffer.from([tag]), varint(v.length), v]);
  return Buffer.concat([field(0x0a, key), field(0x12, end)]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

interface Outcome {
  ok: boolean;
  bytes: number;
  code?: number;
  details?: string;
}

/** One connection that sends raw Range requests and keeps only the answers' sizes. */
function rangeConnection(endpoint: string): { range(req: Buffer, deadlineMs: number): Promise<Outcome>; close(): void } {
  const client = new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
  });
  const id = (x: Buffer) => x;
  return {
    range: (req, deadlineMs) =>
      new Promise((resolve) => {
        client.makeUnaryRequest('/etcdserverpb.KV/Range', id, (x: Buffer) => x.length as unknown as Buffer, req, { deadline: new Date(Date.now() + deadlineMs) }, (err, res) => {
          if (err) resolve({ ok: false, bytes: 0, code: err.code, details: err.details });
          else resolve({ ok: true, bytes: res as unknown as number });
        });
      }),
    close: () => client.close(),
  };
}

/** Peak RSS of `pid` while `work` runs, sampled every 100 ms. */
async function peakRss<T>(pid: number | undefined, work: Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = vmRssBytes(pid) ?? 0;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      peak = Math.max(peak, vmRssBytes(pid) ?? 0);
      await sleep(100);
    }
  })();
  const result = await work.finally(() => (done = true));
  await sampler;
  return { result, peak };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function rangesScenario(): Promise<void> {
  const keys = Number(args.keys);
  const valueSize = Number(args.value ?? 10240);
  const budget = Number(args.budget ?? 512 * MiB);
  const cluster = await startBenchCluster({ shards: 3, noFsync: args['no-fsync'] });
  if (!['on', 'off', 'loading'].includes(args.cache)) throw new Error('--cache: on, off or loading');
  const cfg = await proxyConfig(cluster, { partitions: 64, cache: { enabled: args.cache !== 'off' } });
  cfg.limits.memoryBudgetBytes = budget;
  // Restore writes the keys into the empty members before the proxy starts (fastest load).
  const dir = await mkdtemp(path.join(tmpdir(), 'etcd-metaproxy-bench-bounded-'));
  const unregister = onCleanup('snapshot file', () => rm(dir, { recursive: true, force: true }));
  const t0 = Date.now();
  const file = path.join(dir, 'keys.snapshot');
  await writeSnapshotFile(file, keys, valueSize, partitionMapOf(cfg));
  await restoreFile(file, cfg);
  unregister();
  await rm(dir, { recursive: true, force: true });
  process.stdout.write(`loaded ${keys} keys of ${valueSize} B (${mib(keys * valueSize)}) in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);

  const nodeFlags = args['proxy-node-flags']?.split(',').filter(Boolean) ?? [];
  const proxy = await startProxyProcess(cfg, { exposeGc: true, startTimeoutMs: 600_000, nodeFlags });
  const pid = proxy.pid!;
  const prefix = Buffer.from(BULK_PREFIX);
  const small = new RawClient(proxy.endpoint);
  await small.callOrThrow('KV', 'Put', { key: b('small'), value: b('v') });
  // The baseline: the proxy serving, its cache (if on) loaded, after a full GC.
  if (args.cache === 'on') {
    const t = Date.now();
    while ((await fetch(`${proxy.httpUrl}/readyz/cache`).then((r) => r.status, () => 0)) !== 200) {
      if (Date.now() - t > 600_000) throw new Error('the cache was not ready within 600 s');
      await sleep(500);
    }
    process.stdout.write(`cache ready in ${((Date.now() - t) / 1000).toFixed(0)} s\n`);
  }
  await proxy.sampleMemory();
  const base = vmRssBytes(pid) ?? 0;
  process.stdout.write(`proxy (cache ${args.cache}, budget ${mib(budget)}) RSS before the Ranges: ${mib(base)}\n`);

  const conns = Array.from({ length: 50 }, () => rangeConnection(proxy.endpoint));
  const req = rangeRequest(prefix, prefixEnd(BULK_PREFIX));
  const burst = async (n: number, deadlineMs: number): Promise<Outcome[]> =>
    Promise.all(Array.from({ length: n }, (_, i) => conns[i % conns.length]!.range(req, deadlineMs)));

  // Small gets from another client while the Ranges run.
  let bursting = true;
  const smallMs: number[] = [];
  let smallFailed = 0;
  const smallLoop = (async () => {
    while (bursting) {
      const t = performance.now();
      const r = await small.kv('Range', { key: b('small') }, { deadlineMs: 30_000 });
      smallMs.push(performance.now() - t);
      if (!r.ok) smallFailed++;
      await sleep(5);
    }
  })();
  // What the budget counts (responses in flight, cache load pages), scraped while the burst runs.
  let peakHeld = 0;
  const heldLoop = (async () => {
    while (bursting) {
      const text = await scrape(`${proxy.httpUrl}/metrics`).catch(() => '');
      const held = counter(text, 'etcd_metaproxy_memory_budget_bytes', (l) => l.use === 'responses' || l.use === 'load') ?? 0;
      peakHeld = Math.max(peakHeld, held);
      await sleep(250);
    }
  })();
  const t1 = Date.now();
  const { result: outcomes, peak } = await peakRss(pid, burst(Number(args.ranges), 120_000));
  const burstS = (Date.now() - t1) / 1000;
  bursting = false;
  await Promise.all([smallLoop, heldLoop]);
  const afterText = await scrape(`${proxy.httpUrl}/metrics`).catch(() => '');
  const cacheBytes = counter(afterText, 'etcd_metaproxy_cache_bytes') ?? 0;
  const cacheReady = await fetch(`${proxy.httpUrl}/readyz/cache`).then((r) => r.status === 200, () => false);
  const whole = outcomes.filter((o) => o.ok);
  const refused = outcomes.filter((o) => !o.ok && o.code === grpc.status.RESOURCE_EXHAUSTED && o.details === 'etcdserver: too many requests');
  const other = outcomes.filter((o) => !o.ok && !refused.includes(o));
  const sizes = new Set(whole.map((o) => o.bytes));
  smallMs.sort((x, y) => x - y);
  const q = (p: number) => (smallMs.length ? smallMs[Math.min(smallMs.length - 1, Math.floor(smallMs.length * p))]!.toFixed(0) : '-');
  process.stdout.write(
    `${args.ranges} concurrent whole-keyspace Ranges in ${burstS.toFixed(1)} s: ${whole.length} answered whole (${[...sizes].map(mib).join(', ')} each), ` +
      `${refused.length} refused with "etcdserver: too many requests", ${other.length} other outcomes${other.length ? ` (${[...new Set(other.map((o) => `${o.code} ${o.details}`))].slice(0, 3).join('; ')})` : ''}\n` +
      `proxy RSS peak ${mib(peak)}: ${mib(peak - base)} above its level before the Ranges (budget ${mib(budget)}); ` +
      `budget bytes held (responses + cache load pages) peaked at ${mib(peakHeld)}\n` +
      (args.cache === 'loading' ? `cache ${cacheReady ? 'loaded' : 'still loading'} after the burst, holding ${mib(cacheBytes)} of keys and values (part of the RSS growth)\n` : '') +
      `small gets meanwhile: ${smallMs.length}, ${smallFailed} failed, p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms\n`,
  );
  const sample = await proxy.sampleMemory();
  process.stdout.write(
    `proxy RSS after the Ranges and a full GC: ${mib(vmRssBytes(pid) ?? 0)} (JS heap ${mib(sample.memory.heapUsed)}, external ${mib(sample.memory.external)})\n`,
  );

  // SIGTERM under a second burst.
  const second = burst(Math.min(100, Number(args.ranges)), 60_000);
  await sleep(3000);
  const t2 = Date.now();
  process.kill(pid, 'SIGTERM');
  while (alive(pid) && Date.now() - t2 < 30_000) await sleep(20);
  process.stdout.write(`SIGTERM under 100 more Ranges: ${alive(pid) ? 'still running after 30 s' : `exited in ${((Date.now() - t2) / 1000).toFixed(2)} s`}\n`);
  await second;
  for (const c of conns) c.close();
  small.close();
  await proxy.stop();
  await cluster.stop();
}

async function stopScenario(): Promise<void> {
  const stopS = Number(args['stop-s']);
  const rate = Number(args.rate);
  const value = Buffer.alloc(Number(args.value ?? 1024), 0x63);
  const budget = Number(args.budget ?? 32 * MiB);
  const cluster = await startBenchCluster({ shards: 3, noFsync: args['no-fsync'] });
  const cfg = await proxyConfig(cluster, { partitions: 64 });
  cfg.limits.memoryBudgetBytes = budget;
  const proxy = await startProxyProcess(cfg, { exposeGc: true });
  const pid = proxy.pid!;
  const client = new RawClient(proxy.endpoint);
  // Keys of the shards that keep running (the router tells a key's shard).
  await initHash();
  const router = new Router(partitionMapOf(cfg));
  const victim = 0;
  const prefix = 'stop/';
  const keys: string[] = [];
  for (let i = 0; keys.length < 64; i++) if (router.shardOf(b(`${prefix}k${i}`)) !== victim) keys.push(`${prefix}k${i}`);
  // Every key exists before the watchers start: each of their events has a previous value.
  for (const k of keys) await client.callOrThrow('KV', 'Put', { key: b(k), value: b('start') });
  const start = BigInt((await client.callOrThrow<{ header: { revision: string } }>('KV', 'Put', { key: b(keys[0]!), value: b('start') })).header.revision);

  // Watchers record the revisions they get (nothing else, so the bench itself stays small).
  const streams = Array.from({ length: Number(args.watchers) }, () => new WatchStream(client));
  const got = streams.map(() => [] as bigint[]);
  let disorder = 0;
  let badValues = 0;
  let missingPrev = 0;
  let canceled = 0;
  streams.forEach((s, i) => {
    s.create({ key: prefix, rangeEnd: prefixEnd(prefix), startRevision: start + 1n, prevKv: i % 2 === 0, watchId: 1 });
    s.responses.push = (...rs: WatchResponse[]) => {
      for (const r of rs) {
        if (r.canceled) canceled++;
        for (const e of r.events ?? []) {
          const rev = BigInt(e.kv.mod_revision);
          const list = got[i]!;
          if (list.length && rev <= list[list.length - 1]!) disorder++;
          list.push(rev);
          if (!Buffer.from(e.kv.value).equals(value)) badValues++;
          if (i % 2 === 0 && !e.prev_kv) missingPrev++;
        }
      }
      return 0;
    };
  });
  await sleep(1000);
  await proxy.sampleMemory();
  const base = vmRssBytes(pid) ?? 0;
  const member = cluster.pids[1 + victim]!;
  process.stdout.write(
    `stop: member of shard ${victim} (pid ${member}) SIGSTOPped for ${stopS} s; ${rate} puts/s of ${value.length} B to the other shards; ${streams.length} watchers; budget ${mib(budget)}; proxy RSS before ${mib(base)}\n`,
  );
  process.stdout.write('  t(s)   RSS MiB   held MiB   puts   drops\n');
  const held = async () => {
    const text = await scrape(proxy.metricsUrl);
    return {
      held: counter(text, 'etcd_metaproxy_memory_budget_bytes', (l) => l.use === 'held') ?? 0,
      drops: counter(text, 'etcd_metaproxy_watch_held_drops_total') ?? 0,
    };
  };
  const dropsBefore = (await held()).drops;
  process.kill(member, 'SIGSTOP');
  const unstop = onCleanup('SIGCONT the member', () => void process.kill(member, 'SIGCONT'));
  const acked: bigint[] = [];
  let failed = 0;
  const t0 = Date.now();
  const end = t0 + stopS * 1000;
  let peakRssBytes = base;
  let peakHeld = 0;
  let n = 0;
  // Steady writes: `rate` puts/s, at most 32 in flight.
  const writer = (async () => {
    const inFlight = new Set<Promise<void>>();
    while (Date.now() < end) {
      const due = t0 + (n / rate) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      while (inFlight.size >= 32) await Promise.race(inFlight);
      const key = keys[n++ % keys.length]!;
      const p: Promise<void> = client.kv('Put', { key: b(key), value }, { deadlineMs: 60_000 }).then((r) => {
        if (r.ok) acked.push(BigInt((r.res as { header: { revision: string } }).header.revision));
        else failed++;
        inFlight.delete(p);
      });
      inFlight.add(p);
    }
    await Promise.all(inFlight);
  })();
  let sampling = true;
  const sampler = (async () => {
    let nextPrint = Date.now() + 10_000;
    while (sampling) {
      await sleep(250);
      const rss = vmRssBytes(pid) ?? 0;
      const h = await held();
      peakRssBytes = Math.max(peakRssBytes, rss);
      peakHeld = Math.max(peakHeld, h.held);
      if (Date.now() >= nextPrint) {
        nextPrint += 10_000;
        process.stdout.write(`${((Date.now() - t0) / 1000).toFixed(0).padStart(6)}   ${(rss / MiB).toFixed(1).padStart(7)}   ${(h.held / MiB).toFixed(2).padStart(8)}   ${String(acked.length).padStart(5)}   ${String(h.drops - dropsBefore).padStart(5)}\n`);
      }
    }
  })();
  await writer;
  const peakStopped = peakRssBytes;
  // What is live while the member is still stopped (a full GC first): tells held or leaked
  // memory from garbage and allocator pages.
  const stoppedSample = await proxy.sampleMemory();
  const stoppedRss = vmRssBytes(pid) ?? 0;
  process.stdout.write(
    `before SIGCONT, after a full GC: RSS ${mib(stoppedRss)}, JS heap ${mib(stoppedSample.memory.heapUsed)} used of ${mib(stoppedSample.memory.heapTotal)}, external ${mib(stoppedSample.memory.external)} (array buffers ${mib(stoppedSample.memory.arrayBuffers)})\n`,
  );
  const beforeCont = got.reduce((s, g) => s + g.length, 0);
  process.kill(member, 'SIGCONT');
  unstop();
  const t1 = Date.now();
  acked.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const complete = () => got.every((g) => g.length >= acked.length);
  while (!complete() && Date.now() - t1 < 600_000 && canceled === 0) await sleep(100);
  const caughtUpS = (Date.now() - t1) / 1000;
  sampling = false;
  await sampler;
  const drops = (await held()).drops - dropsBefore;
  const exact = got.filter((g) => g.length === acked.length && g.every((r, i) => r === acked[i])).length;
  const sample = await proxy.sampleMemory();
  const after = vmRssBytes(pid) ?? 0;
  process.stdout.write(
    `after the full GC: JS heap ${mib(sample.memory.heapUsed)} used of ${mib(sample.memory.heapTotal)}, external ${mib(sample.memory.external)} (array buffers ${mib(sample.memory.arrayBuffers)}); the rest of the RSS is memory the allocators keep\n` +
    `${acked.length} puts acknowledged (${failed} failed) while the member was stopped; events released before SIGCONT: ${beforeCont}\n` +
      `proxy RSS: before ${mib(base)}, peak while the member was stopped ${mib(peakStopped)} (+${mib(peakStopped - base)}), peak while the watchers caught up ${mib(peakRssBytes)} (+${mib(peakRssBytes - base)}), ` +
      `after catching up and a full GC ${mib(after)} (the history holds the last events: watch.historyEvents ${cfg.watch.historyEvents}, ${mib(Math.min(cfg.watch.historyBytes, budget / 4))} at most, a quarter of the budget); held events peak ${mib(peakHeld)} (budget ${mib(budget)}), ${drops} drops\n` +
      `after SIGCONT (${caughtUpS.toFixed(1)} s): ${exact}/${streams.length} watchers got every acknowledged write in order, once; ${disorder} out of order, ${badValues} wrong values, ${missingPrev} without prev_kv, ${canceled} canceled\n`,
  );
  // Given back: V8 returns its emptied pages some seconds after the load (memory reducer), so a
  // GC right after the catch-up still shows them.
  const settleS = Number(args['settle-s']);
  await sleep(settleS * 1000);
  const settled = await proxy.sampleMemory();
  const settledRss = vmRssBytes(pid) ?? 0;
  process.stdout.write(
    `${settleS} s later (watch streams open, no load), after a full GC: RSS ${mib(settledRss)} (${mib(settledRss - base)} above the level before), JS heap ${mib(settled.memory.heapUsed)} used of ${mib(settled.memory.heapTotal)}, external ${mib(settled.memory.external)}\n`,
  );
  for (const s of streams) s.close();
  client.close();
  await proxy.stop();
  await cluster.stop();
  if (exact !== streams.length || disorder || badValues || missingPrev) process.exitCode = 1;
}

installSignalHandlers();
(args.scenario === 'stop' ? stopScenario() : args.scenario === 'ranges' ? rangesScenario() : Promise.reject(new Error('--scenario is ranges or stop')))
  .catch((err) => {
    process.stderr.write(`bounded failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => runCleanups());
