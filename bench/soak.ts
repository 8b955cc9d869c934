/**
 * Soak benchmark: a proxy (3 shards, child process) under a steady mixed load — puts and
 * deletes, single-key gets, paged prefix ranges, prefix watchers that read, leases granted with
 * keys that expire or are revoked, and a compaction every 30 s — for about 10 minutes, printing
 * the proxy's RSS over time, and its JS heap after a full GC (the proxy runs with --expose-gc),
 * with the slopes of least-squares lines through the samples taken once the proxy's bounded
 * structures are full (steady state: at least `max(--history, --undo)` revisions written since
 * the load started, and past the first fifth of the run). Before that the watch history and the
 * read cache's undo window (views kept for paged reads age out after `cache.maxUndoEvents`
 * events) are still filling, which is growth up to a cap, not a leak. Slopes near zero mean
 * nothing accumulates.
 *
 * Then the load stops, every client closes, and after a few full GCs the proxy's RSS is
 * compared with its RSS before the load (memory given back).
 *
 *   node --import tsx bench/soak.ts [--duration 600] [--sample 10] [--short] [--shards 3]
 *        [--history 10000] [--undo 10000] [--settle 20] [--streams 5] [--node-flags='...'] [--no-fsync]
 *
 * --short: 90 s, a sample every 5 s (a quick check). --history: watch.historyEvents; --undo:
 * cache.maxUndoEvents (the configuration's defaults, 100,000 and 20,000, fill in about 20 and 4
 * minutes at this load: a 10-minute run would end before its steady state). --settle: seconds
 * after the load before the last sample. --streams: watch streams of 10 prefix watchers each.
 * --node-flags: extra V8/Node flags for the proxy process.
 */
import { parseArgs } from 'node:util';
import { installSignalHandlers, runCleanups } from './lib/cleanup.js';
import { vmRssBytes } from './lib/cache-probe.js';
import { counter, scrape } from './lib/metrics.js';
import { proxyConfig, startBenchCluster, startProxyProcess } from './lib/proxy-target.js';
import { RawClient, b, prefixEnd } from '../e2e/grpc-raw.js';
import { WatchStream } from '../e2e/watch-client.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    sample: { type: 'string', default: '10' },
    short: { type: 'boolean', default: false },
    shards: { type: 'string', default: '3' },
    history: { type: 'string', default: '10000' },
    undo: { type: 'string', default: '10000' },
    settle: { type: 'string', default: '20' },
    'node-flags': { type: 'string', default: '' },
    streams: { type: 'string', default: '5' },
    'no-fsync': { type: 'boolean', default: false },
  },
});

const DURATION_S = args.short ? 90 : Number(args.duration);
const SAMPLE_S = args.short ? 5 : Number(args.sample);
const KEYS = 2000;
const PREFIX = 'soak/';
const VALUE = Buffer.alloc(256, 0x73);

interface Counts {
  puts: number;
  deletes: number;
  gets: number;
  ranges: number;
  leases: number;
  compactions: number;
  events: number;
  /** Watchers canceled (compacted while they were resynced) and created again. */
  rewatches: number;
  errors: number;
}

function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den ? num / den : 0;
}

async function main(): Promise<void> {
  installSignalHandlers();
  const cluster = await startBenchCluster({ shards: Number(args.shards), noFsync: args['no-fsync'] });
  const config = await proxyConfig(cluster, { partitions: 64, historyEvents: Number(args.history), cache: { maxUndoEvents: Number(args.undo) } });
  const nodeFlags = args['node-flags'].split(/\s+/).filter(Boolean);
  const proxy = await startProxyProcess(config, { exposeGc: true, nodeFlags });
  const target = { endpoint: proxy.endpoint, pid: proxy.pid, process: proxy };
  const client = new RawClient(target.endpoint);
  // The level to come back to: the proxy started, its cache loaded, nothing else yet.
  const before = await settledMemory(target.process, target.pid, 3);
  const counts: Counts = { puts: 0, deletes: 0, gets: 0, ranges: 0, leases: 0, compactions: 0, events: 0, rewatches: 0, errors: 0 };
  const rand = (n: number) => Math.floor(Math.random() * n);
  const key = () => b(`${PREFIX}k${rand(KEYS)}`);
  const end = Date.now() + DURATION_S * 1000;
  // The newest revision seen in a response header, and the first one.
  let lastRev = 0n;
  let firstRev = 0n;
  const seen = (res: unknown) => {
    const rev = (res as { header?: { revision?: string } } | undefined)?.header?.revision;
    if (rev === undefined) return;
    const r = BigInt(rev);
    if (r > lastRev) lastRev = r;
    if (firstRev === 0n) firstRev = r;
  };
  const running = () => Date.now() < end;
  const count = (ok: boolean, field: keyof Counts) => (ok ? counts[field]++ : counts.errors++);

  // 10 watchers per stream. With 5 streams (50 watchers) this bench's one client process
  // decodes ~2,500 events/s and falls behind on a busy machine: the proxy then queues events for
  // it (watchq, up to the memory budget), which is what it should do but hides its own slope.
  const watchers = Array.from({ length: Number(args.streams) }, () => new WatchStream(client));
  const watch = (s: WatchStream, id: number) => s.create({ key: PREFIX, rangeEnd: prefixEnd(PREFIX), watchId: id, prevKv: id % 2 === 0 });
  watchers.forEach((s, i) => {
    for (let j = 0; j < 10; j++) watch(s, i * 10 + j + 1);
    // Count and forget what arrives: the client keeps nothing. A watcher that fell behind this
    // busy client and was compacted meanwhile is canceled, as etcd does: watch again, as a
    // client re-lists and watches.
    s.responses.push = (...rs) => {
      for (const r of rs) {
        counts.events += r.events?.length ?? 0;
        if (r.canceled && running()) {
          counts.rewatches++;
          watch(s, Number(r.watch_id));
        }
      }
      return 0;
    };
  });

  const loops: Array<Promise<void>> = [];
  for (let w = 0; w < 4; w++) {
    loops.push(
      (async () => {
        while (running()) {
          if (Math.random() < 0.1) count((await client.kv('DeleteRange', { key: key() })).ok, 'deletes');
          else {
            const put = await client.kv('Put', { key: key(), value: VALUE });
            if (put.ok) seen(put.res);
            count(put.ok, 'puts');
          }
        }
      })(),
    );
  }
  for (let r = 0; r < 2; r++) {
    loops.push(
      (async () => {
        while (running()) count((await client.kv('Range', { key: key(), serializable: r === 1 })).ok, 'gets');
      })(),
    );
  }
  loops.push(
    (async () => {
      while (running()) {
        count((await client.kv('Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX), limit: '500' })).ok, 'ranges');
        await new Promise((res) => setTimeout(res, 100));
      }
    })(),
  );
  loops.push(
    (async () => {
      let n = 0;
      while (running()) {
        const g = await client.call<{ ID: string }>('Lease', 'LeaseGrant', { TTL: '3', ID: '0' });
        if (!g.ok) {
          counts.errors++;
          continue;
        }
        const put = await client.kv('Put', { key: b(`${PREFIX}lease/${n % 50}`), value: VALUE, lease: g.res.ID });
        count(put.ok, 'leases');
        // Every other lease is revoked; the others expire and the proxy deletes their keys.
        if (n++ % 2 === 0) await client.call('Lease', 'LeaseRevoke', { ID: g.res.ID });
        await new Promise((res) => setTimeout(res, 200));
      }
    })(),
  );
  loops.push(
    (async () => {
      while (running()) {
        await new Promise((res) => setTimeout(res, Math.min(30_000, Math.max(0, end - Date.now()))));
        if (!running()) break;
        const head = await client.kv('Range', { key: key() });
        if (!head.ok) continue;
        const rev = BigInt((head.res as { header: { revision: string } }).header.revision) - 1000n;
        if (rev > 0n) count((await client.kv('Compact', { revision: rev.toString() })).ok, 'compactions');
      }
    })(),
  );

  const started = Date.now();
  const samples: Array<[number, number]> = [];
  const heapSamples: Array<[number, number]> = [];
  const externalSamples: Array<[number, number]> = [];
  const caps = BigInt(Math.max(Number(args.history), Number(args.undo)));
  /** When the history and the undo window were first full (s), or null. */
  let fullAt: number | null = null;
  process.stdout.write(
    `soak: ${DURATION_S} s, RSS every ${SAMPLE_S} s (proxy pid ${target.pid}, watch.historyEvents ${args.history}, cache.maxUndoEvents ${args.undo}${nodeFlags.length ? `, node ${nodeFlags.join(' ')}` : ''})\n` +
      `before the load (after GC): RSS ${mib(before.rss)}, heap ${mib(before.heap)}, external ${mib(before.external)}\n`,
  );
  // watchq: watch events queued for this bench's streams (charged to the memory budget): when
  // the bench's own client falls behind they grow up to the budget, then its watchers are
  // resynced (resyncs) or canceled as compacted and watched again.
  process.stdout.write('  t(s)   RSS MiB  heap MiB  ext MiB  watchq MiB  resyncs    puts    gets  ranges  leases  events  errors  revisions\n');
  const watchQueue = async () => {
    const text = await scrape(proxy.metricsUrl).catch(() => '');
    return {
      queued: (counter(text, 'etcd_metaproxy_memory_budget_bytes', (l) => l.use === 'watch') ?? 0) / 2 ** 20,
      resyncs: counter(text, 'etcd_metaproxy_watch_slow_resyncs_total') ?? 0,
    };
  };
  const sampler = (async () => {
    while (running()) {
      await new Promise((res) => setTimeout(res, SAMPLE_S * 1000));
      const mem = (await target.process.sampleMemory()).memory;
      const heap = mem.heapUsed / 2 ** 20;
      // Buffers (keys and values the history and caches copy) live outside the JS heap.
      const external = mem.external / 2 ** 20;
      const rss = vmRssBytes(target.pid);
      if (rss === undefined) continue;
      const t = (Date.now() - started) / 1000;
      const written = firstRev ? lastRev - firstRev : 0n;
      if (fullAt === null && written >= caps) fullAt = t;
      samples.push([t, rss / 2 ** 20]);
      heapSamples.push([t, heap]);
      externalSamples.push([t, external]);
      const wq = await watchQueue();
      process.stdout.write(
        `${t.toFixed(0).padStart(6)}   ${(rss / 2 ** 20).toFixed(1).padStart(7)}  ${heap.toFixed(1).padStart(8)}  ${external.toFixed(1).padStart(7)}  ${wq.queued.toFixed(1).padStart(10)}  ${String(wq.resyncs).padStart(7)}  ${String(counts.puts).padStart(6)}  ${String(counts.gets).padStart(6)}  ${String(counts.ranges).padStart(6)}  ${String(counts.leases).padStart(6)}  ${String(counts.events).padStart(6)}  ${String(counts.errors).padStart(6)}  ${String(written).padStart(9)}${fullAt === t ? '  (history and undo window full)' : ''}\n`,
      );
    }
  })();
  await Promise.all([...loops, sampler]);
  for (const s of watchers) s.close();
  client.close();
  const peak = Math.max(...samples.map(([, r]) => r));
  // Steady state: the bounded structures are full, and past the first fifth of the run.
  const from = Math.max(DURATION_S / 5, fullAt ?? Infinity);
  const warm = ([t]: [number, number]) => t >= from;
  const steady = samples.filter(warm);
  const steadyHeap = heapSamples.filter(warm);
  const steadyExternal = externalSamples.filter(warm);
  const range = (xs: Array<[number, number]>) => `${(xs[0]?.[1] ?? 0).toFixed(1)} -> ${(xs[xs.length - 1]?.[1] ?? 0).toFixed(1)} MiB`;
  const all = (xs: Array<[number, number]>) => `${range(xs)} (slope ${(slope(xs) * 60).toFixed(2)} MiB/min)`;
  process.stdout.write(
    (fullAt === null
      ? `the history and undo window never filled (${lastRev - firstRev} revisions < ${caps}): no steady state; over the whole run RSS ${all(samples)}, heap after GC ${all(heapSamples)}\n`
      : `steady state from ${from.toFixed(0)} s (${steady.length} samples): RSS ${range(steady)}, slope ${(slope(steady) * 60).toFixed(2)} MiB/min; ` +
        `heap after GC ${range(steadyHeap)}, slope ${(slope(steadyHeap) * 60).toFixed(2)} MiB/min; ` +
        `external ${range(steadyExternal)}, slope ${(slope(steadyExternal) * 60).toFixed(2)} MiB/min\n` +
        `while filling (0-${from.toFixed(0)} s): RSS ${all(samples.filter((p) => !warm(p)))}\n`) +
      `${counts.puts} puts, ${counts.deletes} deletes, ${counts.gets} gets, ${counts.ranges} ranges, ${counts.leases} leases, ${counts.compactions} compactions, ${counts.events} events, ${counts.rewatches} watches created again after a cancel, ${counts.errors} errors, ${lastRev - firstRev} revisions\n`,
  );
  // Memory given back: no client left; a few full GCs while the proxy idles.
  const after = await settledMemory(target.process, target.pid, Number(args.settle));
  process.stdout.write(
    `memory given back (${args.settle} s after the load, clients closed, full GCs): RSS ${mib(after.rss)} (before the load ${mib(before.rss)}, peak ${peak.toFixed(1)} MiB; ` +
      `${mib(after.rss - before.rss)} above the start, ${(((peak * 2 ** 20 - after.rss) / Math.max(1, peak * 2 ** 20 - before.rss)) * 100).toFixed(0)}% of the growth given back), ` +
      `heap ${mib(after.heap)} (before ${mib(before.heap)}), external ${mib(after.external)} (before ${mib(before.external)})\n`,
  );
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** RSS, heap and external memory after `seconds` of full GCs once a second (V8 and malloc hand pages back lazily). */
async function settledMemory(p: { sampleMemory(): Promise<{ memory: NodeJS.MemoryUsage }> }, pid: number | undefined, seconds: number): Promise<{ rss: number; heap: number; external: number }> {
  let mem = (await p.sampleMemory()).memory;
  for (let i = 1; i < seconds; i++) {
    await new Promise((res) => setTimeout(res, 1000));
    mem = (await p.sampleMemory()).memory;
  }
  return { rss: vmRssBytes(pid) ?? mem.rss, heap: mem.heapUsed, external: mem.external };
}

main()
  .catch((err) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => runCleanups());
