/**
 * The coordinator loses all its data (crash, empty data dir: e.g. a tmpfs coordinator that
 * restarted). DESIGN invariant 6: the clock is rebuilt from the members' clock keys plus a
 * safety gap, so every later write gets a revision above every acknowledged one, no
 * acknowledged write is lost, and a proxy started afterwards records the partition map again.
 * Issue 12: running proxies write their records back (partition map, compaction record at the
 * last compaction, clock) when the coordinator comes back empty, even with no write to trigger
 * it, and log that the clock was rebuilt and by how much it jumped.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { RawClient, metaPerFile, waitFor, type Meta } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';
import { CLOCK_KEY } from '../src/shard/keyspace.js';
import { COMPACT_KEY, decodeCompacted } from '../src/kv/store.js';
import { PARTITION_MAP_KEY } from '../src/partition/map-record.js';

let meta: Meta;
let client: RawClient;
const acked = new Map<string, { value: string; rev: bigint }>();
/** The revision compacted after the first loss. */
let compactedAt = 0n;

const suite = metaPerFile({ tag: 'coord-loss', shards: 3 });
before(async () => {
  ({ meta, clients: [client] } = await suite.started());
}, { timeout: 120_000 });

test('writes before the loss', { timeout: 120_000 }, async () => {
  for (let i = 0; i < 40; i++) {
    const key = `cl/k${i}`;
    const r = await client.kv('Put', { key: b(key), value: b(`v${i}`) });
    assert.ok(r.ok, `put ${key}`);
    acked.set(key, { value: `v${i}`, rev: BigInt(r.res.header.revision) });
  }
});

test('coordinator wiped and restarted: revisions continue above every acknowledged one', { timeout: 180_000 }, async () => {
  const maxBefore = [...acked.values()].reduce((m, a) => (a.rev > m ? a.rev : m), 0n);
  const coord = meta.cluster.coordinator;
  await coord.kill();
  fs.rmSync(path.join(meta.dataDir, 'cluster', 'coordinator'), { recursive: true, force: true });
  await coord.restart();

  // The proxy recovers on its own: its next allocation finds no clock and rebuilds it.
  let rev = 0n;
  await waitFor(async () => {
    const r = await client.kv('Put', { key: b('cl/after'), value: b('x') }, { deadlineMs: 8000 });
    if (r.ok) rev = BigInt(r.res.header.revision);
    return r.ok;
  }, 60_000, 'a write after the coordinator came back');
  assert.ok(rev > maxBefore, `revision after the loss (${rev}) must exceed every earlier one (${maxBefore})`);

  for (const [key, a] of acked) {
    const r = await client.kv('Range', { key: b(key) });
    assert.ok(r.ok);
    assert.equal(r.res.kvs[0]?.value.toString(), a.value, key);
    assert.equal(BigInt(r.res.kvs[0]?.mod_revision), a.rev, `${key} keeps its mod_revision`);
  }
  const all = await client.kv('Range', { key: b('cl/'), range_end: prefixEnd('cl/'), count_only: true });
  assert.ok(all.ok);
  assert.equal(all.res.count, String(acked.size + 1));

  // Compaction still works against the rebuilt coordinator.
  const c = await client.kv('Compact', { revision: String(rev) });
  assert.ok(c.ok, c.ok ? '' : c.details);
  compactedAt = rev;
  const old = await client.kv('Range', { key: b('cl/k0'), revision: String(maxBefore) });
  assert.ok(!old.ok && old.details === 'etcdserver: mvcc: required revision has been compacted');
});

test('a proxy started after the loss records the partition map again and sees the same data', { timeout: 120_000 }, async () => {
  const second = await meta.addProxy();
  const c2 = new RawClient(second.address);
  suite.cleanup.add('close client 2', () => c2.close());
  for (const [key, a] of acked) {
    const r = await c2.kv('Range', { key: b(key) });
    assert.ok(r.ok);
    assert.equal(r.res.kvs[0]?.value.toString(), a.value, key);
  }
  const w1 = await c2.kv('Put', { key: b('cl/p2'), value: b('y') });
  const w2 = await client.kv('Put', { key: b('cl/p1'), value: b('z') });
  assert.ok(w1.ok && w2.ok);
  assert.notEqual(w1.res.header.revision, w2.res.header.revision);
});

test('coordinator wiped while the proxies run, with no write: they write the partition map, compaction record and clock back, and log the clock jump', { timeout: 180_000 }, async () => {
  assert.ok(compactedAt > 0n, 'a compaction was recorded before');
  const before = BigInt((await client.callOrThrow<{ header: { revision: string } }>('KV', 'Put', { key: b('cl/before-wipe'), value: b('w') })).header.revision);
  const coord = meta.cluster.coordinator;
  await coord.kill();
  fs.rmSync(path.join(meta.dataDir, 'cluster', 'coordinator'), { recursive: true, force: true });
  await coord.restart();
  const direct = new RawClient(coord.clientUrl);
  suite.cleanup.add('close coordinator client', () => direct.close());
  const read = async (key: Buffer) => {
    const r = await direct.kv('Range', { key });
    return r.ok ? ((r.res.kvs[0]?.value as Buffer | undefined) ?? null) : null;
  };
  // Nobody writes: the running proxies notice on their own.
  await waitFor(async () => (await read(PARTITION_MAP_KEY)) !== null && (await read(COMPACT_KEY)) !== null && (await read(CLOCK_KEY)) !== null, 60_000, 'the records written back');
  assert.equal(decodeCompacted((await read(COMPACT_KEY))!), compactedAt, 'the compaction record holds the last compaction');
  const map = JSON.parse((await read(PARTITION_MAP_KEY))!.toString()) as { partitions: number };
  assert.equal(map.partitions, 64);

  const logs = fs.readdirSync(meta.dataDir).filter((f) => /^proxy-\d+\.log$/.test(f)).map((f) => fs.readFileSync(path.join(meta.dataDir, f), 'utf8')).join('');
  const rebuilt = logs.split('\n').filter((l) => l.includes('coordinator clock rebuilt'));
  assert.ok(rebuilt.length > 0, 'a proxy logged the clock rebuild');
  const last = JSON.parse(rebuilt[rebuilt.length - 1]!) as { jump: string; previous: string; rebuilt: string };
  assert.ok(BigInt(last.jump) > 0n && BigInt(last.rebuilt) - BigInt(last.previous) === BigInt(last.jump), `the log line gives the jump: ${rebuilt[rebuilt.length - 1]}`);
  assert.ok(logs.includes('rewrote partition map'), 'a proxy logged the records it rewrote');

  // History below the compaction stays refused; writes go on above every earlier revision.
  const old = await client.kv('Range', { key: b('cl/k0'), revision: String(compactedAt - 1n) });
  assert.ok(!old.ok && old.details === 'etcdserver: mvcc: required revision has been compacted');
  const after = await client.callOrThrow<{ header: { revision: string } }>('KV', 'Put', { key: b('cl/after-wipe'), value: b('z') }, { deadlineMs: 20_000 });
  assert.ok(BigInt(after.header.revision) > before);
});
