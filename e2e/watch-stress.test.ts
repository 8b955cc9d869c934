/**
 * Watch under load: 2 proxies on the same clusters, 8 concurrent writers through both, watchers
 * opened through both at various start revisions (live, from before the first write, from a
 * revision in the middle; one proxy keeps a tiny history so its past watchers read from the
 * members). Then the same again while a member is killed and restarted.
 *
 * Checks, for every watcher: revisions strictly increase (events of one revision together);
 * every acknowledged write whose key it covers and whose revision is at or after its start
 * appears exactly once, with the acknowledged value; replaying the events from before the first
 * write gives exactly the final state a range read returns; the watchers of both proxies that
 * start at the same revision see the same events in the same order.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cleanup, RawClient, sleep, startMeta, type Meta, metricTotal, waitFor } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';
import { WatchStream, type WatchResponse } from './watch-client.js';

const cleanup = new Cleanup();
let meta: Meta;
let via: RawClient[];

before(async () => {
  try {
    meta = await startMeta({
      tag: 'watchstress',
      shards: 3,
      proxies: 2,
      // The second proxy keeps little history: its watchers that start in the past replay from the members.
      configure: (cfg, i) => {
        if (i === 1) cfg.watch = { ...cfg.watch, historyEvents: 50 };
      },
    });
    cleanup.add('stop meta', () => meta.stop());
    via = meta.addresses.map((a) => new RawClient(a));
    cleanup.add('close clients', () => via.forEach((c) => c.close()));
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}, { timeout: 120_000 });

after(() => cleanup.run(), { timeout: 60_000 });

const PREFIX = 'ws/';
const KEYS = Array.from({ length: 40 }, (_, i) => `${PREFIX}k${String(i).padStart(2, '0')}`);
const WRITERS = 8;

interface Ack {
  rev: bigint;
  key: string;
  type: 0 | 1;
  value: string;
}

interface Probe {
  name: string;
  stream: WatchStream;
  id: string;
  key: string;
  end: Buffer | null;
  start: bigint;
}

const acks: Ack[] = [];
const probes: Probe[] = [];
let nextId = 1;

function covers(p: Probe, key: string): boolean {
  if (p.end === null) return key === p.key;
  return Buffer.compare(b(key), b(p.key)) >= 0 && (p.end.length === 0 || Buffer.compare(b(key), p.end) < 0);
}

function open(name: string, proxy: number, key: string, end: Buffer | null, start: bigint): Probe {
  const stream = new WatchStream(via[proxy]!);
  const id = String(nextId++);
  stream.create({ key, rangeEnd: end ?? undefined, startRevision: start, prevKv: true, watchId: id });
  const p = { name, stream, id, key, end, start };
  probes.push(p);
  return p;
}

/** Writers: random puts and deletes over KEYS, alternating proxies, until `stop()` returns true. */
async function writeLoad(stop: () => boolean, tag: string): Promise<{ failed: number }> {
  let failed = 0;
  let seq = 0;
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      const client = via[w % 2]!;
      while (!stop()) {
        const key = KEYS[Math.floor(Math.random() * KEYS.length)]!;
        const n = seq++;
        if (Math.random() < 0.2) {
          const r = await client.kv('DeleteRange', { key: b(key) }, { deadlineMs: 3000 });
          if (!r.ok) failed++;
          else if (r.res.deleted !== '0') acks.push({ rev: BigInt(r.res.header.revision), key, type: 1, value: '' });
        } else {
          const value = `${tag}-${w}-${n}`;
          const r = await client.kv('Put', { key: b(key), value: b(value) }, { deadlineMs: 3000 });
          if (!r.ok) failed++;
          else acks.push({ rev: BigInt(r.res.header.revision), key, type: 0, value });
        }
        if (memberDown) await sleep(5);
      }
    }),
  );
  return { failed };
}

/** Resolves once `n` more writes than `from` were acknowledged: load observed, not slept on. */
function acked(from: number, n: number, what: string): Promise<void> {
  return waitFor(() => acks.length >= from + n, 60_000, what);
}

/** While a member is down, writers back off a little between writes so the test does not spin. */
let memberDown = false;

async function currentRev(): Promise<bigint> {
  const r = await via[0]!.callOrThrow('KV', 'Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX) });
  return BigInt(r.header.revision);
}

/** Waits until every probe reported progress at or above `rev` (all its events up to it sent). */
async function settle(rev: bigint): Promise<void> {
  await Promise.all(
    [...new Set(probes.map((p) => p.stream))].map(async (s) => {
      const before = s.responses.length;
      s.requestProgress();
      await s.until(
        () => s.responses.slice(before).some((r: WatchResponse) => r.watch_id === '-1' && BigInt(r.header.revision) >= rev),
        60_000,
        'progress at the last acknowledged revision',
      );
    }),
  );
}

function verify(p: Probe, lastRev: bigint, problems: string[]): void {
  const responses = p.stream.responses.filter((r: WatchResponse) => r.watch_id === p.id);
  // A watcher created at "now" starts after the revision its created response reports.
  const created = responses.find((r: WatchResponse) => r.created);
  const start = p.start === 0n ? BigInt(created?.header.revision ?? '0') + 1n : p.start;
  if (responses.some((r: WatchResponse) => r.canceled)) {
    problems.push(`${p.name}: canceled: ${JSON.stringify(responses.find((r: WatchResponse) => r.canceled))}`);
    return;
  }
  const seen = new Map<string, WatchResponse>();
  let last = 0n;
  for (const r of responses) {
    const revs = [...new Set(r.events.map((e: WatchResponse) => BigInt(e.kv.mod_revision)))] as bigint[];
    for (const rev of revs) {
      if (rev <= last) problems.push(`${p.name}: revision ${rev} after ${last}`);
      last = rev;
    }
    for (const e of r.events) {
      const k = `${e.kv.mod_revision}/${e.kv.key.toString()}`;
      if (seen.has(k)) problems.push(`${p.name}: event ${k} twice`);
      seen.set(k, e);
    }
  }
  for (const a of acks) {
    if (a.rev < start || a.rev > lastRev || !covers(p, a.key)) continue;
    const e = seen.get(`${a.rev}/${a.key}`);
    if (!e) problems.push(`${p.name}: acknowledged ${a.type ? 'delete' : 'put'} of ${a.key} at ${a.rev} missing`);
    else if (e.type !== a.type || (a.type === 0 && e.kv.value.toString() !== a.value)) problems.push(`${p.name}: event at ${a.rev} for ${a.key} differs from the ack`);
  }
}

async function finalState(): Promise<Map<string, string>> {
  const r = await via[1]!.callOrThrow('KV', 'Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX) });
  return new Map(r.kvs.map((kv: WatchResponse) => [kv.key.toString(), `${kv.value.toString()}@${kv.mod_revision}`]));
}

function replayed(p: Probe): Map<string, string> {
  const state = new Map<string, string>();
  for (const e of p.stream.events(p.id)) {
    if (e.type === 0) state.set(e.kv.key.toString(), `${e.kv.value.toString()}@${e.kv.mod_revision}`);
    else state.delete(e.kv.key.toString());
  }
  return state;
}

function sequence(p: Probe): string[] {
  return p.stream.events(p.id).map((e: WatchResponse) => `${e.kv.mod_revision}:${e.type}:${e.kv.key.toString()}:${e.kv.value.toString()}`);
}

let firstRev = 0n;


test('8 writers through 2 proxies: every watcher sees every acknowledged write once, in order', { timeout: 300_000 }, async () => {
  firstRev = (await currentRev()) + 1n;
  const allA = open('all keys via A from the start', 0, PREFIX, prefixEnd(PREFIX), firstRev);
  const allB = open('all keys via B from the start', 1, PREFIX, prefixEnd(PREFIX), firstRev);
  open('live via A', 0, PREFIX, prefixEnd(PREFIX), 0n);
  open('single key via B', 1, KEYS[3]!, null, 0n);
  open('range k10..k20 via A', 0, `${PREFIX}k10`, b(`${PREFIX}k20`), 0n);

  let done = false;
  const load = writeLoad(() => done, 'p1');
  await acked(0, 150, '150 acknowledged writes');
  // Watchers that start in the past, opened while writes go on (B's history holds 50 events).
  const mid = acks[Math.floor(acks.length / 3)]!.rev;
  open('from a middle revision via A', 0, PREFIX, prefixEnd(PREFIX), mid);
  open('from a middle revision via B (members)', 1, PREFIX, prefixEnd(PREFIX), mid);
  open('from revision 1 via B (members)', 1, '', Buffer.from([0]), 1n);
  // Well past the little history B keeps, while those watchers replay.
  await acked(acks.length, 250, '250 more acknowledged writes');
  done = true;
  const { failed } = await load;
  assert.equal(failed, 0, 'no write failed');
  const lastRev = acks.reduce((m, a) => (a.rev > m ? a.rev : m), 0n);
  await settle(lastRev);

  const problems: string[] = [];
  for (const p of probes) verify(p, lastRev, problems);
  assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems`);
  assert.deepEqual(replayed(allA), await finalState(), 'events replayed from the start give the final state');
  assert.deepEqual(sequence(allA), sequence(allB), 'both proxies deliver the same events in the same order');
  assert.ok(acks.length > 100, `enough writes (${acks.length})`);
  console.log(`# watch stress: ${acks.length} acknowledged writes, ${await metricTotal('etcd_metaproxy_fence_writes_total')} fence writes (both proxies)`);
});

test('the same while a member is killed and restarted: watchers wait, then resume with nothing lost', { timeout: 300_000 }, async () => {
  const fromHere = (await currentRev()) + 1n;
  open('live via A (member outage)', 0, PREFIX, prefixEnd(PREFIX), 0n);
  open('live via B (member outage)', 1, PREFIX, prefixEnd(PREFIX), fromHere);
  let done = false;
  const atStart = acks.length;
  const load = writeLoad(() => done, 'p2');
  await acked(atStart, 100, '100 acknowledged writes before the outage');
  const victim = meta.cluster.shards[1]!;
  await victim.kill();
  memberDown = true;
  // The outage itself lasts a while: writes to the other shards go on meanwhile.
  await sleep(3000);
  await victim.restart();
  memberDown = false;
  await acked(acks.length, 200, '200 acknowledged writes after the restart');
  done = true;
  await load;
  const lastRev = acks.reduce((m, a) => (a.rev > m ? a.rev : m), 0n);
  await settle(lastRev);
  const problems: string[] = [];
  for (const p of probes) verify(p, lastRev, problems);
  assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems`);
  const allA = probes[0]!;
  const allB = probes[1]!;
  assert.deepEqual(replayed(allA), await finalState(), 'events replayed from the start give the final state');
  assert.deepEqual(sequence(allA), sequence(allB), 'both proxies deliver the same events in the same order');
  for (const p of probes) p.stream.close();
});
