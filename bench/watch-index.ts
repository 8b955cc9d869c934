/**
 * Watcher lookup benchmark: events/s through the watch hub (history append, finding the
 * watchers whose range holds each key, delivery to a counting sink) with 10 and with 10,000
 * prefix watchers (kube-apiserver's kind: one prefix per namespace), each event held by one
 * namespace watcher plus a few ranges kept in the interval index. The same events are also
 * matched by a scan over every watcher (the hub's former way) for comparison. In-process, no
 * etcd: it measures the index, not the network.
 *
 *   node --import tsx bench/watch-index.ts [--watchers 10,10000] [--events 200000] [--ranges 20] [--rounds 5]
 *
 * Rounds alternate between the watcher counts; the median round is printed, and the ratios are
 * the median of each round's ratio (the setups of one round run back to back: a shared machine's
 * load changes less within a round than across rounds).
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { prefixEnd } from '../src/shard/keyspace.js';
import type { EventBatch, MetaEvent } from '../src/watch/event.js';
import { eventSize } from '../src/watch/event.js';
import { WatchHub, type WatchSink } from '../src/watch/hub.js';
import type { MergedStream } from '../src/watch/merged-stream.js';
import { Watcher } from '../src/watch/watcher.js';

const { values: args } = parseArgs({
  options: {
    watchers: { type: 'string', default: '10,10000' },
    events: { type: 'string', default: '200000' },
    ranges: { type: 'string', default: '20' },
    batch: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '9' },
  },
});

const EVENTS = Number(args.events);
const RANGES = Number(args.ranges);
const BATCH = Number(args.batch);

function event(key: string, rev: bigint): MetaEvent {
  const kv = { key: Buffer.from(key), value: Buffer.from('v'.repeat(100)), create_revision: rev.toString(), mod_revision: rev.toString(), version: '1', lease: '0' };
  return { type: 0, rev, shard: 0, key: kv.key, kv, prevKv: null, size: eventSize(kv, null) };
}

function watchers(n: number): Watcher[] {
  const out: Watcher[] = [];
  for (let i = 0; i < n; i++) {
    const key = Buffer.from(`/registry/pods/ns${i}/`);
    out.push(new Watcher({ id: BigInt(i), key, end: prefixEnd(key), prevKv: false, noPut: false, noDelete: false, progressNotify: false, fragment: false }, 1n));
  }
  // A few arbitrary ranges (not prefixes), held in the interval index.
  for (let i = 0; i < RANGES; i++) {
    out.push(new Watcher({ id: BigInt(n + i), key: Buffer.from(`/registry/services/${i}`), end: Buffer.from(`/registry/services/${i}z`), prevKv: false, noPut: false, noDelete: false, progressNotify: false, fragment: false }, 1n));
  }
  return out;
}

function batches(namespaces: number): EventBatch[] {
  const out: EventBatch[] = [];
  let rev = 2n;
  for (let i = 0; i < EVENTS; i += BATCH) {
    const events: MetaEvent[] = [];
    for (let j = 0; j < BATCH; j++, rev++) events.push(event(`/registry/pods/ns${(i + j) * 7919 % namespaces}/pod-${i + j}`, rev));
    out.push({ events, rev: rev - 1n });
  }
  return out;
}

/** Events/s through the hub with the index. */
function throughIndex(ws: Watcher[], bs: EventBatch[]): { perSec: number; delivered: number } {
  let onBatch: (b: EventBatch) => void = () => undefined;
  const stream = { released: 1n, onBatch: (f: (b: EventBatch) => void) => (onBatch = f), onReset: () => undefined } as unknown as MergedStream;
  const hub = new WatchHub(stream, { read: async () => 1n }, pino({ level: 'silent' }), { historyEvents: 1000, historyBytes: 1 << 20, progressNotifyIntervalMs: 3_600_000 });
  let delivered = 0;
  const sink: WatchSink = { deliver: (_w, events) => void (delivered += events.length), progressTick: () => undefined, reset: () => undefined };
  for (const w of ws) hub.addLive(w, sink);
  const t0 = process.hrtime.bigint();
  for (const b of bs) onBatch(b);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  hub.close();
  for (const w of ws) hub.removeLive(w);
  return { perSec: EVENTS / s, delivered };
}

/** The same matching done by scanning every watcher. */
function throughScan(ws: Watcher[], bs: EventBatch[]): { perSec: number; delivered: number } {
  let delivered = 0;
  let events = 0;
  const t0 = process.hrtime.bigint();
  for (const b of bs) {
    events += b.events.length;
    for (const e of b.events) for (const w of ws) if (w.wants(e)) delivered++;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { perSec: events / s, delivered };
}

const counts = args.watchers.split(',').map(Number);
const first = counts[0]!;
// Two event mixes: keys spread over every watcher's namespace (each event goes to a different,
// cold watcher), and keys in the first `first` namespaces only (the same watchers get events
// whatever the count: what remains is the cost of the other watchers being there).
const setups = counts.flatMap((n) => [
  { n, spread: n, ws: watchers(n), bs: batches(n), index: [] as number[], delivered: 0 },
  ...(n === first ? [] : [{ n, spread: first, ws: watchers(n), bs: batches(first), index: [] as number[], delivered: 0 }]),
]);
for (const st of setups) throughIndex(st.ws, st.bs.slice(0, 200)); // warm-up
for (let round = 0; round < Number(args.rounds); round++) {
  for (const st of setups) {
    const r = throughIndex(st.ws, st.bs);
    st.index.push(r.perSec);
    st.delivered = r.delivered;
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows = setups.map((st) => {
  // The scan is slow with many watchers: a fiftieth of the events is enough to time it.
  const scan = throughScan(st.ws, st.bs.slice(0, Math.max(1, Math.ceil(st.bs.length / (st.n > 1000 ? 50 : 1)))));
  return { watchers: st.n, spread: st.spread, index: median(st.index), scan: scan.perSec, delivered: st.delivered };
});
process.stdout.write(`prefix watchers (+${RANGES} range watchers), ${EVENTS} events in batches of ${BATCH}, median of ${args.rounds} rounds\n`);
process.stdout.write('watchers   namespaces with events   index events/s   scan events/s   delivered\n');
for (const r of rows) process.stdout.write(`${String(r.watchers).padStart(8)}   ${String(r.spread).padStart(22)}   ${r.index.toFixed(0).padStart(14)}   ${r.scan.toFixed(0).padStart(13)}   ${r.delivered}\n`);
const base = rows[0]!;
for (const [i, r] of rows.entries()) {
  if (i === 0) continue;
  const ratio = median(setups[i]!.index.map((x, round) => x / setups[0]!.index[round]!));
  process.stdout.write(`${r.watchers} watchers, events on ${r.spread} namespaces: index ${ratio.toFixed(2)}x the events/s of ${base.watchers} watchers (median of the rounds' ratios; scan ${(r.scan / base.scan).toFixed(3)}x)\n`);
}
