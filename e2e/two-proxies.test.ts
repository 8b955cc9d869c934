/**
 * Two proxies on the same clusters, written concurrently (invariant 1: one global revision
 * order, with two or more replicas writing at once).
 *
 * Phase 1: 8 writers (alternating proxies) × 200 puts over 24 shared keys. Checks: every
 * acknowledged revision is unique; each writer's revisions increase (its puts are sequential);
 * real-time order (a put acknowledged before another started has the lower revision); each key's
 * final mod_revision / value / version match the acknowledged puts; historical reads at sampled
 * acknowledged revisions return that put; both proxies return the same data.
 * Phase 2: compare-and-swap counters (read, then Txn MOD==observed → put n+1, retried) from
 * both proxies: no increment may be lost or applied twice.
 * Phase 3: read-your-writes across proxies: put through one, linearizable get through the other.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { RawClient, metaPerFile, type Meta } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';

/** Per-test limit: no test may hang. */
const TEST_TIMEOUT = 300_000;
const SETUP_TIMEOUT = 120_000;
const suite = metaPerFile({ tag: 'two', shards: 3, proxies: 2 }, SETUP_TIMEOUT);
let meta: Meta;
let viaA: RawClient;
let viaB: RawClient;

before(async () => {
  ({ meta, clients: [viaA, viaB] } = await suite.started());
}, { timeout: SETUP_TIMEOUT });

interface Ack {
  writer: number;
  seq: number;
  key: string;
  value: string;
  rev: bigint;
  start: number;
  end: number;
}

const WRITERS = 8;
const PUTS = 200;
const KEYS = Array.from({ length: 24 }, (_, i) => `tp/k${String(i).padStart(2, '0')}`);

test('concurrent puts through two proxies: unique, ordered, nothing lost', { timeout: TEST_TIMEOUT }, async () => {
  const acks: Ack[] = [];
  const failures: string[] = [];
  const clients = Array.from({ length: WRITERS }, (_, w) => new RawClient(meta.addresses[w % 2]!));
  try {
    await Promise.all(
      clients.map(async (c, w) => {
        for (let seq = 0; seq < PUTS; seq++) {
          const key = KEYS[(w * 7 + seq * 5) % KEYS.length]!;
          const value = `w${w}-${seq}`;
          const start = performance.now();
          const r = await c.kv('Put', { key: b(key), value: b(value) });
          const end = performance.now();
          if (!r.ok) failures.push(`writer ${w} put ${key}=${value}: ${r.code} ${r.details}`);
          else acks.push({ writer: w, seq, key, value, rev: BigInt(r.res.header.revision), start, end });
        }
      }),
    );
  } finally {
    clients.forEach((c) => c.close());
  }
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} puts failed`);
  assert.equal(acks.length, WRITERS * PUTS);

  // 1. unique revisions
  const byRev = new Map<bigint, Ack>();
  const dups: string[] = [];
  for (const a of acks) {
    const other = byRev.get(a.rev);
    if (other) dups.push(`rev ${a.rev}: ${other.key}=${other.value} (writer ${other.writer}) and ${a.key}=${a.value} (writer ${a.writer})`);
    byRev.set(a.rev, a);
  }
  assert.deepEqual(dups.slice(0, 10), [], `${dups.length} duplicate revisions`);

  // 2. per-writer monotonic
  const nonMono: string[] = [];
  for (let w = 0; w < WRITERS; w++) {
    const mine = acks.filter((a) => a.writer === w).sort((x, y) => x.seq - y.seq);
    for (let i = 1; i < mine.length; i++)
      if (mine[i]!.rev <= mine[i - 1]!.rev) nonMono.push(`writer ${w}: seq ${i - 1} rev ${mine[i - 1]!.rev} then seq ${i} rev ${mine[i]!.rev}`);
  }
  assert.deepEqual(nonMono.slice(0, 10), [], `${nonMono.length} non-monotonic sequences`);

  // 3. real-time order: if a ended before b started, a.rev < b.rev
  const byEnd = [...acks].sort((x, y) => x.end - y.end);
  const byStart = [...acks].sort((x, y) => x.start - y.start);
  const violations: string[] = [];
  let i = 0;
  let maxDone: Ack | undefined;
  for (const bAck of byStart) {
    while (i < byEnd.length && byEnd[i]!.end < bAck.start) {
      if (!maxDone || byEnd[i]!.rev > maxDone.rev) maxDone = byEnd[i];
      i++;
    }
    if (maxDone && maxDone.rev >= bAck.rev)
      violations.push(`${maxDone.key}=${maxDone.value} acked at rev ${maxDone.rev} before ${bAck.key}=${bAck.value} started, which got rev ${bAck.rev}`);
  }
  assert.deepEqual(violations.slice(0, 10), [], `${violations.length} real-time order violations`);

  // 4. final state per key, through both proxies
  const expected = new Map<string, { last: Ack; count: number }>();
  for (const a of acks) {
    const e = expected.get(a.key);
    if (!e) expected.set(a.key, { last: a, count: 1 });
    else {
      e.count++;
      if (a.rev > e.last.rev) e.last = a;
    }
  }
  for (const [name, c] of [['proxy A', viaA], ['proxy B', viaB]] as const) {
    const r = await c.kv('Range', { key: b('tp/'), range_end: prefixEnd('tp/') });
    assert.ok(r.ok, `${name} range: ${!r.ok && r.details}`);
    const problems: string[] = [];
    const got = new Map<string, { mod_revision: string; value: Buffer; version: string }>(
      (r.res.kvs as Array<{ key: Buffer; mod_revision: string; value: Buffer; version: string }>).map((kv) => [kv.key.toString(), kv]),
    );
    for (const [key, e] of expected) {
      const kv = got.get(key);
      if (!kv) {
        problems.push(`${key} missing`);
        continue;
      }
      if (BigInt(kv.mod_revision) !== e.last.rev) problems.push(`${key}: mod_revision ${kv.mod_revision}, highest acked ${e.last.rev}`);
      if (kv.value.toString() !== e.last.value) problems.push(`${key}: value ${kv.value}, want ${e.last.value} (acked at ${e.last.rev})`);
      if (Number(kv.version) !== e.count) problems.push(`${key}: version ${kv.version}, want ${e.count} acked puts`);
    }
    if (got.size !== expected.size) problems.push(`${got.size} keys, want ${expected.size}`);
    if (BigInt(r.res.header.revision) < [...expected.values()].reduce((m, e) => (e.last.rev > m ? e.last.rev : m), 0n))
      problems.push(`header.revision ${r.res.header.revision} below the highest acked write`);
    assert.deepEqual(problems.slice(0, 20), [], `${name}: ${problems.length} problems`);
  }

  // 5. historical reads at acknowledged revisions (sampled), alternating proxies
  const sample = acks.filter((_, k) => k % 40 === 0);
  const histProblems: string[] = [];
  for (const [k, a] of sample.entries()) {
    const c = k % 2 === 0 ? viaA : viaB;
    const r = await c.kv('Range', { key: b(a.key), revision: String(a.rev) });
    if (!r.ok) histProblems.push(`${a.key}@${a.rev}: ${r.code} ${r.details}`);
    else {
      const kv = r.res.kvs[0];
      if (!kv || kv.value.toString() !== a.value || BigInt(kv.mod_revision) !== a.rev)
        histProblems.push(`${a.key}@${a.rev}: got ${kv ? `${kv.value}@${kv.mod_revision}` : 'nothing'}, want ${a.value}`);
    }
  }
  assert.deepEqual(histProblems, []);
});

test('compare-and-swap counters from both proxies lose no increment', { timeout: TEST_TIMEOUT }, async () => {
  const COUNTERS = ['cas/c0', 'cas/c1', 'cas/c2'];
  const WORKERS = 6;
  const INCS = 15;
  for (const k of COUNTERS) {
    const r = await viaA.kv('Put', { key: b(k), value: b('0') });
    assert.ok(r.ok);
  }
  const clients = Array.from({ length: WORKERS }, (_, w) => new RawClient(meta.addresses[w % 2]!));
  const errors: string[] = [];
  let attempts = 0;
  try {
    await Promise.all(
      clients.map(async (c, w) => {
        for (let n = 0; n < INCS; n++) {
          const key = COUNTERS[(w + n) % COUNTERS.length]!;
          let cur = await c.kv('Range', { key: b(key) });
          for (let tries = 0; ; tries++) {
            attempts++;
            if (!cur.ok || tries > 200) {
              errors.push(`worker ${w}: ${cur.ok ? 'too many retries' : cur.details}`);
              return;
            }
            const kv = cur.res.kvs[0];
            const t = await c.kv('Txn', {
              compare: [{ target: 2, result: 0, key: b(key), mod_revision: kv.mod_revision }],
              success: [{ request_put: { key: b(key), value: b(String(Number(kv.value.toString()) + 1)) } }],
              failure: [{ request_range: { key: b(key) } }],
            });
            if (!t.ok) {
              errors.push(`worker ${w} txn: ${t.code} ${t.details}`);
              return;
            }
            if (t.res.succeeded) break;
            cur = { ok: true, res: t.res.responses[0].response_range };
          }
        }
      }),
    );
  } finally {
    clients.forEach((c) => c.close());
  }
  assert.deepEqual(errors, []);
  let total = 0;
  const versions: string[] = [];
  for (const k of COUNTERS) {
    const ra = await viaA.kv('Range', { key: b(k) });
    const rb = await viaB.kv('Range', { key: b(k) });
    assert.ok(ra.ok && rb.ok);
    assert.equal(ra.res.kvs[0].value.toString(), rb.res.kvs[0].value.toString(), `${k}: proxies disagree`);
    total += Number(ra.res.kvs[0].value.toString());
    versions.push(`${k}: value ${ra.res.kvs[0].value} version ${ra.res.kvs[0].version}`);
    assert.equal(Number(ra.res.kvs[0].version), Number(ra.res.kvs[0].value.toString()) + 1, `${k}: version != increments + 1`);
  }
  assert.equal(total, WORKERS * INCS, `increments lost or doubled (${attempts} attempts): ${versions.join('; ')}`);
});

test('read-your-writes across proxies (put via one, linearizable get via the other)', { timeout: TEST_TIMEOUT }, async () => {
  const stale: string[] = [];
  for (let i = 0; i < 100; i++) {
    const [w, r] = i % 2 === 0 ? [viaA, viaB] : [viaB, viaA];
    const key = `ryw/k${i % 7}`;
    const p = await w.kv('Put', { key: b(key), value: b(`v${i}`) });
    assert.ok(p.ok, !p.ok ? p.details : '');
    const g = await r.kv('Range', { key: b(key) });
    assert.ok(g.ok, !g.ok ? g.details : '');
    const kv = g.res.kvs[0];
    if (!kv || kv.value.toString() !== `v${i}` || BigInt(kv.mod_revision) !== BigInt(p.res.header.revision))
      stale.push(`${key}: put v${i} at ${p.res.header.revision}, other proxy read ${kv ? `${kv.value}@${kv.mod_revision}` : 'nothing'}`);
    if (BigInt(g.res.header.revision) < BigInt(p.res.header.revision)) stale.push(`${key}: read header ${g.res.header.revision} < write ${p.res.header.revision}`);
  }
  assert.deepEqual(stale, []);
});

test('revision block: every replica reports the revision of the last write, never the reserved block end', { timeout: TEST_TIMEOUT }, async () => {
  // One replica owns every shard, so it hands out revisions from a block reserved on the
  // coordinator: the coordinator's clock is then ahead of the last write.
  const coord = new RawClient(meta.cluster.coordinator.clientUrl);
  try {
    for (let i = 0; i < 5; i++) {
      const p = await [viaA, viaB][i % 2]!.kv('Put', { key: b(`blk/k${i}`), value: b(`v${i}`) });
      assert.ok(p.ok, !p.ok ? p.details : '');
    }
    const last = await viaB.kv('Put', { key: b('blk/last'), value: b('x') });
    assert.ok(last.ok, !last.ok ? last.details : '');
    const rev = BigInt(last.res.header.revision);
    const clock = await coord.kv('Range', { key: Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), b('metaproxy/clock')]) });
    assert.ok(clock.ok && clock.res.kvs[0], 'the coordinator has a clock');
    const reserved = clock.res.kvs[0].value.readBigUInt64BE(0);
    assert.ok(reserved > rev, `a block is reserved (coordinator clock ${reserved} > last write ${rev})`);
    const wrong: string[] = [];
    for (const [name, c] of [['A', viaA], ['B', viaB]] as const) {
      const range = await c.kv('Range', { key: b('blk/last') });
      const status = await c.call('Maintenance', 'Status', {});
      const members = await c.call('Cluster', 'MemberList', {});
      const grant = await c.call('Lease', 'LeaseGrant', { TTL: 60, ID: 0 });
      for (const [what, r] of [['Range', range], ['Status', status], ['MemberList', members], ['LeaseGrant', grant]] as const) {
        if (!r.ok) wrong.push(`${name} ${what}: ${r.code} ${r.details}`);
        else if (BigInt((r.res as { header: { revision: string } }).header.revision) !== rev)
          wrong.push(`${name} ${what}: header revision ${(r.res as { header: { revision: string } }).header.revision}, want ${rev}`);
      }
    }
    assert.deepEqual(wrong, []);
    // The next write continues right after the last one (the block is not given up).
    const next = await viaA.kv('Put', { key: b('blk/next'), value: b('y') });
    assert.ok(next.ok, !next.ok ? next.details : '');
    assert.equal(BigInt(next.res.header.revision), rev + 1n);
  } finally {
    coord.close();
  }
});
