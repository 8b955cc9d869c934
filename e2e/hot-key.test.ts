/**
 * Many clients writing one key at once (a hot key: a counter, a leader record). etcd serialises
 * such puts and never fails them; the proxy's pins make a put planned on a stale state retry,
 * and retries keep their place in line, so every put succeeds and none is lost. Blind puts that
 * queue behind a write to their key go out as one chain (kv/put-chain.ts): one member put, one
 * meta revision, event and version each, as in etcd (the oracle).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, metaPerFile, metricTotal } from './harness.js';
import { b } from './grpc-raw.js';
import { WatchStream } from './watch-client.js';
import type { FileMeta } from './harness.js';
import { checkStm, checkSwaps, incrementLoop, stmLoop, type StmRead, type Swap } from './cas-swaps.js';

let client: RawClient;
let started: FileMeta;

const suite = metaPerFile({ tag: 'hotkey', shards: 2, oracleName: 'hotkey-oracle' });
before(async () => {
  started = await suite.started();
  client = started.clients[0]!;
}, { timeout: 120_000 });

interface Acked {
  rev: bigint;
  value: string;
}

/** `writers` clients each putting `key` `puts` times at once; every put's revision and value. */
async function hammer(c: RawClient, key: string, writers: number, puts: number): Promise<Acked[]> {
  const acked: Acked[] = [];
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; i < puts; i++) {
        const value = `${w}-${i}`;
        const r = await c.kv('Put', { key: b(key), value: b(value) });
        if (!r.ok) failures.push(`${r.code}: ${r.details}`);
        else acked.push({ rev: BigInt(r.res.header.revision), value });
      }
    }),
  );
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} puts failed`);
  return acked.sort((x, y) => (x.rev < y.rev ? -1 : 1));
}

/**
 * What a client of `c` sees of `acked` (all puts of `key`, a new key): a watcher from before the
 * first put gets one event per put at its revision with its value and the put before it as
 * prev_kv, versions 1.. in revision order; a Range at each put's revision finds that put; the key ends at the last one.
 */
async function checkHistory(c: RawClient, key: string, from: bigint, acked: Acked[], label: string): Promise<void> {
  const w = new WatchStream(c);
  try {
    w.create({ key, startRevision: from, prevKv: true });
    await w.until(() => w.responses.flatMap((r) => r.events ?? []).length >= acked.length, 30_000, `${label}: every event`);
    const events = w.responses.flatMap((r) => r.events ?? []);
    assert.equal(events.length, acked.length, `${label}: one event per put`);
    const create = events[0].kv.create_revision;
    events.forEach((e, i) => {
      assert.equal(BigInt(e.kv.mod_revision), acked[i].rev, `${label}: event ${i} at the put's revision`);
      assert.equal(e.kv.value.toString(), acked[i].value, `${label}: event ${i} value`);
      assert.equal(e.kv.version, String(i + 1), `${label}: event ${i} version`);
      assert.equal(e.kv.create_revision, create, `${label}: event ${i} create revision`);
      assert.equal(e.prev_kv?.value.toString(), i ? acked[i - 1].value : undefined, `${label}: event ${i} prev_kv`);
    });
  } finally {
    w.close();
  }
  for (const [i, a] of acked.entries()) {
    const got = await c.callOrThrow('KV', 'Range', { key: b(key), revision: String(a.rev) });
    assert.equal(got.kvs[0]?.value.toString(), a.value, `${label}: Range at ${a.rev}`);
    assert.equal(got.kvs[0]?.version, String(i + 1), `${label}: version at ${a.rev}`);
    assert.equal(BigInt(got.kvs[0]?.mod_revision), a.rev, `${label}: mod_revision at ${a.rev}`);
  }
  const now = await c.callOrThrow('KV', 'Range', { key: b(key) });
  assert.equal(now.kvs[0].value.toString(), acked[acked.length - 1].value, `${label}: the last put stays`);
  assert.equal(now.kvs[0].version, String(acked.length), `${label}: version`);
}

test('16 writers put one new key at once: the proxy chains the puts, and a client sees what etcd shows (an event, a revision and a version per put, each readable at its revision)', { timeout: 240_000 }, async () => {
  const WRITERS = 16;
  const PUTS = 20;
  const oracle = started.oracle!.client;
  for (const [c, label] of [
    [oracle, 'etcd'],
    [client, 'proxy'],
  ] as const) {
    const key = `chain/${label}`;
    const from = BigInt((await c.callOrThrow('KV', 'Range', { key: b('x') })).header.revision) + 1n;
    const writesBefore = await metricTotal('etcd_metaproxy_member_writes_total');
    const acked = await hammer(c, key, WRITERS, PUTS);
    assert.equal(new Set(acked.map((a) => a.rev)).size, WRITERS * PUTS, `${label}: every put got its own revision`);
    await checkHistory(c, key, from, acked, label);
    if (label === 'proxy') {
      // The chains: far fewer member txns than puts, and the member's own version says so.
      const member = started.meta.memberClient(await started.meta.shardOf(key));
      const stored = await member.callOrThrow('KV', 'Range', { key: b(key) });
      const memberTxns = (await metricTotal('etcd_metaproxy_member_writes_total')) - writesBefore;
      assert.ok(Number(stored.kvs[0].version) < WRITERS * PUTS / 2, `member version ${stored.kvs[0].version}: puts were chained`);
      assert.ok(memberTxns < WRITERS * PUTS / 2, `${memberTxns} member txns for ${WRITERS * PUTS} puts`);
    }
  }
  // A later plain put, a put with prev_kv, a delete and a new put after a chain keep versions exact.
  const key = 'chain/proxy';
  const p1 = await client.callOrThrow('KV', 'Put', { key: b(key), value: b('after'), prev_kv: true });
  assert.equal(p1.prev_kv.version, String(WRITERS * PUTS));
  const r1 = await client.callOrThrow('KV', 'Range', { key: b(key) });
  assert.equal(r1.kvs[0].version, String(WRITERS * PUTS + 1));
  await client.callOrThrow('KV', 'DeleteRange', { key: b(key) });
  await client.callOrThrow('KV', 'Put', { key: b(key), value: b('again') });
  const r2 = await client.callOrThrow('KV', 'Range', { key: b(key) });
  assert.equal(r2.kvs[0].version, '1');
});

test('16 concurrent writers on one key: every put succeeds, versions add up', { timeout: 180_000 }, async () => {
  const WRITERS = 16;
  const PUTS = 25;
  const failures: string[] = [];
  const revs = new Set<string>();
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; i < PUTS; i++) {
        const r = await client.kv('Put', { key: b('hot/key'), value: b(`${w}-${i}`) });
        if (!r.ok) failures.push(`${r.code}: ${r.details}`);
        else revs.add(r.res.header.revision);
      }
    }),
  );
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} puts failed`);
  assert.equal(revs.size, WRITERS * PUTS, 'every put got its own revision');
  const got = await client.callOrThrow('KV', 'Range', { key: b('hot/key') });
  assert.equal(got.kvs[0].version, String(WRITERS * PUTS));
});

test('16 clients increment one counter by compare-and-swap (kube-apiserver\'s update): every increment lands once, and a lost swap, answered from the owner\'s state, is never stale', { timeout: 180_000 }, async () => {
  const CLIENTS = 16;
  const WINS = 8;
  const key = b('hot/counter');
  const init = await client.callOrThrow('KV', 'Put', { key, value: b('0') });
  const answeredBefore = await metricTotal('etcd_metaproxy_owner_state_answers_total');
  const swaps: Swap[] = [];
  await Promise.all(Array.from({ length: CLIENTS }, () => incrementLoop(client, 'hot/counter', swaps, (wins) => wins < WINS)));
  const won = checkSwaps(swaps, BigInt(init.header.revision));
  assert.deepEqual(won.map((s) => s.value), Array.from({ length: CLIENTS * WINS }, (_, i) => i + 1), 'each increment landed once');
  const final = await client.callOrThrow('KV', 'Range', { key });
  assert.equal(final.kvs[0].value.toString(), String(CLIENTS * WINS));
  assert.equal(final.kvs[0].version, String(CLIENTS * WINS + 1));
  const lost = swaps.length - won.length;
  const answered = (await metricTotal('etcd_metaproxy_owner_state_answers_total')) - answeredBefore;
  assert.ok(answered > 0, `lost swaps answered from the owner's state (${answered} of ${lost})`);
});

test("16 clients increment one counter as etcd's STM does (a serializable read in a Txn, then a swap with no else branch): every increment lands once, every read is one state and sees the client's own increments, as on a plain etcd", { timeout: 180_000 }, async () => {
  const CLIENTS = 16;
  const WINS = 6;
  const readsBefore = await metricTotal('etcd_metaproxy_owner_state_reads_total');
  const oracle = started.oracle?.client;
  assert.ok(oracle, 'the plain etcd beside the proxy');
  for (const [label, c] of [['etcd', oracle], ['proxy', client]] as const) {
    const init = await c.callOrThrow('KV', 'Put', { key: b('hot/stm'), value: b('0') });
    const swaps: Swap[] = [];
    const reads: StmRead[] = [];
    await Promise.all(Array.from({ length: CLIENTS }, () => stmLoop(c, 'hot/stm', swaps, reads, (wins) => wins < WINS)));
    checkStm(swaps, reads, BigInt(init.header.revision), label);
    assert.equal(swaps.length, CLIENTS * WINS, `${label}: every client won ${WINS} times`);
  }
  const answered = (await metricTotal('etcd_metaproxy_owner_state_reads_total')) - readsBefore;
  assert.ok(answered > 0, `reads answered from the owner's state before the cache caught up (${answered})`);
});
