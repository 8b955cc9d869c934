/**
 * A shard's etcd dies (SIGKILL) and comes back; later the coordinator does the same.
 *
 * Expected (DESIGN "Failure behaviour"): requests for keys on the dead shard fail with gRPC
 * UNAVAILABLE (not a hang, not another code); keys on the other shards keep working, for
 * writes and linearizable reads; after the restart everything works again and no acknowledged
 * write is lost; revisions keep increasing. With the coordinator down, writes fail with
 * UNAVAILABLE, serializable reads keep working, and a linearizable read either fails with
 * UNAVAILABLE (DESIGN) or returns the last acknowledged value.
 *
 * Which shard holds a key is read from the members directly (user keys are stored as-is).
 * The raw gRPC client is used (the etcd3 client would retry UNAVAILABLE).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, metaPerFile, waitFor, type Meta } from './harness.js';
import { Code, b, prefixEnd, type CallResult } from './grpc-raw.js';

/** Per-test limit: no test may hang. */
const TEST_TIMEOUT = 300_000;
const SETUP_TIMEOUT = 120_000;
let meta: Meta;
let client: RawClient;
/** Last acknowledged value per key and the revision it was acknowledged at. */
const acked = new Map<string, { value: string; rev: bigint }>();
let maxAckedRev = 0n;
const keysByShard = new Map<number, string[]>();
// The proxy's per-call upstream deadline is 5 s (harness); the client waits longer than that.
const DEADLINE_MS = 8000;

const suite = metaPerFile({ tag: 'fail', shards: 3 }, SETUP_TIMEOUT);
before(async () => {
  ({ meta, clients: [client] } = await suite.started());
}, { timeout: SETUP_TIMEOUT });

async function put(key: string, value: string): Promise<CallResult> {
  const r = await client.kv('Put', { key: b(key), value: b(value) }, { deadlineMs: DEADLINE_MS });
  if (r.ok) {
    const rev = BigInt(r.res.header.revision);
    acked.set(key, { value, rev });
    if (rev > maxAckedRev) maxAckedRev = rev;
  }
  return r;
}

const describeResult = (r: CallResult) => (r.ok ? 'OK' : `${Code[r.code] ?? r.code}: ${r.details}`);

test('setup: keys on every shard', { timeout: TEST_TIMEOUT }, async () => {
  for (let i = 0; i < 30; i++) {
    const key = `mf/k${i}`;
    const r = await put(key, `v0-${i}`);
    assert.ok(r.ok, `put ${key}: ${describeResult(r)}`);
    const shard = await meta.shardOf(key);
    assert.ok(shard >= 0, `${key} is in no member`);
    keysByShard.set(shard, [...(keysByShard.get(shard) ?? []), key]);
  }
  assert.equal(keysByShard.size, 3, `30 keys landed on ${keysByShard.size} shards only`);
});

test('a killed shard: its keys fail with UNAVAILABLE, other shards keep working, restart restores everything', { timeout: TEST_TIMEOUT }, async () => {
  const victim = 0;
  const victimKeys = keysByShard.get(victim)!;
  const otherKeys = [...keysByShard.entries()].filter(([s]) => s !== victim).flatMap(([, ks]) => ks);
  await meta.cluster.shards[victim]!.kill();

  const problems: string[] = [];
  const ambiguous = new Map<string, string>(); // key → value of a put that failed (may or may not apply)

  // Keys on the dead shard: writes and linearizable reads → UNAVAILABLE.
  for (const key of victimKeys.slice(0, 3)) {
    const t0 = Date.now();
    const value = `during-outage-${key}`;
    const w = await put(key, value);
    const wMs = Date.now() - t0;
    if (w.ok) problems.push(`put ${key} on the dead shard succeeded`);
    else {
      ambiguous.set(key, value);
      if (w.code !== Code.UNAVAILABLE) problems.push(`put ${key} on the dead shard: ${describeResult(w)} after ${wMs} ms, want UNAVAILABLE`);
    }
    const t1 = Date.now();
    const r = await client.kv('Range', { key: b(key) }, { deadlineMs: DEADLINE_MS });
    if (r.ok) problems.push(`linearizable get ${key} on the dead shard succeeded`);
    else if (r.code !== Code.UNAVAILABLE) problems.push(`get ${key} on the dead shard: ${describeResult(r)} after ${Date.now() - t1} ms, want UNAVAILABLE`);
    const t = await client.kv(
      'Txn',
      { compare: [{ target: 2, result: 0, key: b(key), mod_revision: '0' }], success: [{ request_put: { key: b(key), value: b('txn') } }], failure: [] },
      { deadlineMs: DEADLINE_MS },
    );
    if (t.ok) problems.push(`txn on ${key} on the dead shard succeeded`);
    else if (t.code !== Code.UNAVAILABLE) problems.push(`txn on ${key} on the dead shard: ${describeResult(t)}, want UNAVAILABLE`);
  }
  // A range over every shard needs the dead one too.
  const all = await client.kv('Range', { key: b('mf/'), range_end: prefixEnd('mf/') }, { deadlineMs: DEADLINE_MS });
  if (all.ok) problems.push('a range over all shards succeeded while one is down');
  else if (all.code !== Code.UNAVAILABLE) problems.push(`range over all shards: ${describeResult(all)}, want UNAVAILABLE`);

  // Keys on the other shards: writes and linearizable reads keep working.
  for (const key of otherKeys) {
    const t0 = Date.now();
    const w = await put(key, `v1-${key}`);
    if (!w.ok) problems.push(`put ${key} on a live shard failed: ${describeResult(w)} after ${Date.now() - t0} ms`);
    const t1 = Date.now();
    const r = await client.kv('Range', { key: b(key) }, { deadlineMs: DEADLINE_MS });
    if (!r.ok) problems.push(`linearizable get ${key} on a live shard failed: ${describeResult(r)} after ${Date.now() - t1} ms`);
    else if (w.ok && r.res.kvs[0]?.value.toString() !== `v1-${key}`) problems.push(`get ${key} on a live shard: ${r.res.kvs[0]?.value}, want v1-${key}`);
  }

  // Restart the member; the proxy must recover by itself.
  await meta.cluster.shards[victim]!.restart();
  await waitFor(
    async () => (await client.kv('Range', { key: b(victimKeys[0]!) }, { deadlineMs: 3000 })).ok,
    30_000,
    'reads of the restarted shard through the proxy',
  ).catch((err: Error) => problems.push(err.message));

  for (const key of [...victimKeys, ...otherKeys]) {
    const w = await put(key, `v2-${key}`);
    if (!w.ok) problems.push(`put ${key} after the restart failed: ${describeResult(w)}`);
    else if (BigInt(w.res.header.revision) < maxAckedRev && acked.get(key)!.rev !== maxAckedRev)
      problems.push(`put ${key} after the restart got rev ${w.res.header.revision}, below an earlier acknowledged write`);
  }

  // Nothing acknowledged is lost; failed puts left nothing half-done.
  const r = await client.kv('Range', { key: b('mf/'), range_end: prefixEnd('mf/') }, { deadlineMs: DEADLINE_MS });
  if (!r.ok) problems.push(`final range failed: ${describeResult(r)}`);
  else {
    const got = new Map<string, { value: Buffer; mod_revision: string }>(
      (r.res.kvs as Array<{ key: Buffer; value: Buffer; mod_revision: string }>).map((kv) => [kv.key.toString(), kv]),
    );
    for (const [key, a] of acked) {
      const kv = got.get(key);
      if (!kv) problems.push(`${key}: acknowledged ${a.value}@${a.rev} but missing`);
      else if (kv.value.toString() !== a.value || BigInt(kv.mod_revision) !== a.rev)
        problems.push(`${key}: ${kv.value}@${kv.mod_revision}, last acknowledged ${a.value}@${a.rev}`);
    }
  }
  assert.deepEqual(problems, []);
});

test('coordinator down: writes UNAVAILABLE, serializable reads work, linearizable reads stay correct; recovers after restart', { timeout: TEST_TIMEOUT }, async () => {
  const key = keysByShard.get(1)![0]!;
  const before = await put(key, 'before-coordinator-outage');
  assert.ok(before.ok, describeResult(before));
  // Let the proxy's cache catch up before the outage (serializable reads may serve it).
  await client.kv('Range', { key: b(key) });
  await meta.cluster.coordinator.kill();
  const problems: string[] = [];
  try {
    const w = await put(key, 'during-coordinator-outage');
    if (w.ok) problems.push('a put succeeded with the coordinator down');
    else if (w.code !== Code.UNAVAILABLE) problems.push(`put with the coordinator down: ${describeResult(w)}, want UNAVAILABLE`);
    // DESIGN expects UNAVAILABLE; serving it is fine too when the answer is still linearizable
    // (a single-shard read straight from its member sees every acknowledged write).
    const lr = await client.kv('Range', { key: b(key) }, { deadlineMs: DEADLINE_MS });
    if (lr.ok && lr.res.kvs[0]?.value.toString() !== 'before-coordinator-outage')
      problems.push(`linearizable get with the coordinator down returned ${lr.res.kvs[0]?.value}, want the last acknowledged value`);
    else if (!lr.ok && lr.code !== Code.UNAVAILABLE) problems.push(`linearizable get with the coordinator down: ${describeResult(lr)}, want UNAVAILABLE`);
    const sr = await client.kv('Range', { key: b(key), serializable: true }, { deadlineMs: DEADLINE_MS });
    if (!sr.ok) problems.push(`serializable get with the coordinator down: ${describeResult(sr)}`);
    else if (sr.res.kvs[0]?.value.toString() !== 'before-coordinator-outage') problems.push(`serializable get: ${sr.res.kvs[0]?.value}`);
  } finally {
    await meta.cluster.coordinator.restart();
  }
  await waitFor(async () => (await put(key, 'after-coordinator-outage')).ok, 30_000, 'a put after the coordinator restart').catch((err: Error) =>
    problems.push(err.message),
  );
  const after = await client.kv('Range', { key: b(key) }, { deadlineMs: DEADLINE_MS });
  if (!after.ok) problems.push(`get after coordinator restart: ${describeResult(after)}`);
  else {
    if (after.res.kvs[0]?.value.toString() !== 'after-coordinator-outage') problems.push(`value after restart: ${after.res.kvs[0]?.value}`);
    if (BigInt(after.res.kvs[0]?.mod_revision ?? 0) <= BigInt(before.ok ? before.res.header.revision : 0))
      problems.push(`revision went backwards after the coordinator restart: ${after.res.kvs[0]?.mod_revision}`);
  }
  assert.deepEqual(problems, []);
});
