/**
 * Issue 12, slow watchers: many watchers whose clients never read while writers go on. Two
 * proxies with a memory budget of 8 MiB each: the first keeps the default history (its slow
 * watchers are resynced from memory), the second a history shorter than the run (200 watchers:
 * their resyncs read the members). The bytes of queued watch events must stay bounded (slow
 * watchers are resynced: etcd_metaproxy_watch_slow_resyncs_total), the writers must keep
 * going, and every watcher that later reads must get every event of its prefix from its start
 * revision, in order, exactly once — or a compaction cancel as etcd would send, never a
 * silent gap.
 *
 * E2E_SLOW_WATCHERS sets the number of watchers on the first proxy (default 2000; the issue's
 * 10,000 runs too, slower: the test process decodes every event of every watcher).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, metaPerFile, metricTotal, waitFor, type Meta } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';
import { WatchStream, type WatchResponse } from './watch-client.js';

const HISTORY_WATCHERS = Number(process.env.E2E_SLOW_WATCHERS ?? 2000);
const REPLAY_WATCHERS = 200;
const WATCHERS = HISTORY_WATCHERS + REPLAY_WATCHERS;
const STREAMS = 20;
const PREFIXES = 10;
const WRITES = 1000;
const WRITERS = 8;
const VALUE = Buffer.alloc(200, 0x62);
const BUDGET = 8 * 1024 * 1024;
const SETUP_TIMEOUT = 120_000;

const suite = metaPerFile(
  {
    tag: 'slowwatch',
    shards: 3,
    proxies: 2,
    configure: (cfg, i) => {
      cfg.limits.memoryBudgetBytes = BUDGET;
      if (i === 1) cfg.watch = { ...cfg.watch, historyEvents: 300 };
    },
  },
  SETUP_TIMEOUT,
);

let meta: Meta;
let client: RawClient;

before(async () => {
  let clients: RawClient[];
  ({ meta, clients } = await suite.started());
  client = clients[0]!;
}, { timeout: SETUP_TIMEOUT });

const prefix = (i: number) => `sw/p${i}/`;

/** WRITES puts by WRITERS writers spread over the prefixes; returns acked revisions by prefix and puts/s. */
async function write(tag: string): Promise<{ acks: Map<number, bigint[]>; perSec: number }> {
  const acks = new Map<number, bigint[]>();
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (next < WRITES) {
        const n = next++;
        const p = n % PREFIXES;
        const r = await client.callOrThrow<{ header: { revision: string } }>('KV', 'Put', { key: b(`${prefix(p)}${tag}${n % 37}`), value: VALUE }, { deadlineMs: 60_000 });
        const list = acks.get(p) ?? [];
        list.push(BigInt(r.header.revision));
        acks.set(p, list);
      }
    }),
  );
  for (const list of acks.values()) list.sort((a, c) => (a < c ? -1 : a > c ? 1 : 0));
  return { acks, perSec: WRITES / ((Date.now() - started) / 1000) };
}

test(`${WATCHERS} watchers that never read while writers go on: bounded queue bytes, writers keep going, every watcher later gets every event in order or a compaction cancel`, { timeout: 600_000 }, async () => {
  const baseline = await write('base');
  const start = (await client.callOrThrow<{ header: { revision: string } }>('KV', 'Put', { key: b('sw/start'), value: b('x') })).header.revision;
  // The last stream goes to the second proxy and carries its REPLAY_WATCHERS watchers.
  const conns = Array.from({ length: STREAMS + 1 }, (_, i) => new RawClient(meta.addresses[i === STREAMS ? 1 : 0]!));
  const streamOf = (i: number) => (i >= HISTORY_WATCHERS ? STREAMS : i % STREAMS);
  const streams = conns.map((c) => new WatchStream(c));
  try {
    const perStream = streams.map(() => [] as number[]);
    for (let i = 0; i < WATCHERS; i++) {
      const p = i % PREFIXES;
      streams[streamOf(i)]!.create({ key: prefix(p), rangeEnd: prefixEnd(prefix(p)), startRevision: BigInt(start) + 1n, watchId: i + 1 });
      perStream[streamOf(i)]!.push(i);
    }
    await Promise.all(streams.map((s, si) => s.until(() => s.responses.filter((r: WatchResponse) => r.created).length >= perStream[si]!.length, 60_000, 'created')));
    for (const s of streams) s.pause();
    const resyncsBefore = await metricTotal('etcd_metaproxy_watch_slow_resyncs_total');

    let peak = 0;
    let writing = true;
    const sampler = (async () => {
      while (writing) {
        peak = Math.max(peak, await metricTotal('etcd_metaproxy_memory_budget_bytes', { use: 'watch' }));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    process.stdout.write(`# ${WATCHERS} watchers created and paused; writing\n`);
    const loaded = await write('slow');
    writing = false;
    await sampler;
    const resyncs = (await metricTotal('etcd_metaproxy_watch_slow_resyncs_total')) - resyncsBefore;
    const rss = process.memoryUsage().rss;
    process.stdout.write(
      `# ${WATCHERS} watchers not reading: writers ${loaded.perSec.toFixed(0)} puts/s (without them ${baseline.perSec.toFixed(0)} puts/s); ` +
        `peak queued watch bytes ${(peak / 2 ** 20).toFixed(1)} MiB (budget ${BUDGET / 2 ** 20} MiB per proxy); ${resyncs} resyncs; test process RSS ${(rss / 2 ** 20).toFixed(0)} MiB\n`,
    );
    assert.ok(resyncs > 0, 'slow watchers were resynced');
    // Past the budget, a watcher keeps at most a few KiB queued and one batch beyond (two
    // proxies in this process: two budgets).
    assert.ok(peak <= 2 * BUDGET + WATCHERS * 8192, `queued watch bytes ${peak} stay bounded`);

    for (const s of streams) s.resume();
    const expected = (i: number) => loaded.acks.get(i % PREFIXES)!;
    const finished = (s: WatchStream, id: number) => {
      if (s.responses.some((r: WatchResponse) => r.watch_id === String(id) && r.canceled)) return true;
      return s.events(id).length >= expected(id - 1).length;
    };
    await Promise.all(
      streams.map((s, si) =>
        s.until(
          () => {
            for (const i of perStream[si]!) if (!finished(s, i + 1)) return false;
            return true;
          },
          300_000,
          'every watcher of the stream caught up',
        ),
      ),
    );
    let canceled = 0;
    for (let i = 0; i < WATCHERS; i++) {
      const s = streams[streamOf(i)]!;
      const id = i + 1;
      const cancel = s.responses.find((r: WatchResponse) => r.watch_id === String(id) && r.canceled);
      const revs = s.events(id).map((e: WatchResponse) => BigInt(e.kv.mod_revision));
      if (cancel) {
        // Only etcd's compaction cancel, and only after an unbroken prefix of the events.
        assert.ok(BigInt(cancel.compact_revision) > 0n, `watcher ${id} canceled without a compaction: ${cancel.cancel_reason}`);
        assert.deepEqual(revs, expected(i).slice(0, revs.length), `watcher ${id}: events before its cancel`);
        canceled++;
        continue;
      }
      assert.deepEqual(revs, expected(i), `watcher ${id}: every event of its prefix, in order, once`);
    }
    process.stdout.write(`# every watcher complete (${canceled} canceled as compacted)\n`);
    await waitFor(async () => (await metricTotal('etcd_metaproxy_memory_budget_bytes', { use: 'watch' })) === 0, 30_000, 'no queued watch bytes once every client read');
  } finally {
    for (const s of streams) s.close();
    for (const c of conns) c.close();
  }
});
