/**
 * Adversarial probes: odd but valid (or invalid) requests, txn corner cases, concurrency through
 * two proxies and compaction, each checked against what a single etcd does (a plain etcd runs
 * beside the meta-cluster as the oracle where the answer is not obvious).
 *
 * Meta-cluster: 3 shards, 2 proxies (A and B), routingPrefixSegments = 1, so every key under
 * one top-level "xx/" prefix lives on one shard and may be written in one txn.
 * Every test works under its own prefix; the first test needs a fresh meta-cluster and the
 * "delete everything" test runs last. The oracle is the etcd on PATH (3.4 on Debian today) while
 * the proxy answers as 3.5: only behaviour the two versions share is compared with it.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { RawClient, metaPerFile, sleep, waitFor, type FileMeta, type Meta } from './harness.js';
import { Code, b, prefixEnd, type CallResult } from './grpc-raw.js';
import { etcdService } from '../src/etcd/proto.js';
import { cmp, opDel, opDelPrefix, opGet, opGetPrefix, opPut, opTxn } from './diff-script.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Msg = any;

const SETUP_TIMEOUT = 120_000;
const T = 30_000;
const ZERO = Buffer.from([0]);

let meta: Meta;
let oracle: RawClient;
let viaA: RawClient;
let viaB: RawClient;

const suite = metaPerFile({ tag: 'adv', shards: 3, proxies: 2, routingPrefixSegments: 1, oracleName: 'oracle-adv' }, SETUP_TIMEOUT);
before(async () => {
  let o: FileMeta['oracle'];
  ({ meta, clients: [viaA, viaB], oracle: o } = await suite.started());
  oracle = o!.client;
}, { timeout: SETUP_TIMEOUT });

/** Outcome without revisions: code + message, or the response with revisions dropped. */
function outcome(r: CallResult): Msg {
  if (!r.ok) return { code: Code[r.code], details: r.details };
  return { ok: stripRevs(r.res) };
}

function stripRevs(x: Msg): Msg {
  if (Buffer.isBuffer(x)) return x.toString('hex');
  if (Array.isArray(x)) return x.map(stripRevs);
  if (x && typeof x === 'object') {
    const out: Record<string, Msg> = {};
    for (const [k, v] of Object.entries(x)) {
      if (['header', 'create_revision', 'mod_revision'].includes(k)) continue;
      out[k] = stripRevs(v);
    }
    return out;
  }
  return x;
}

async function ok(c: RawClient, method: 'Range' | 'Put' | 'DeleteRange' | 'Txn' | 'Compact', req: Msg): Promise<Msg> {
  const r = await c.kv(method, req);
  if (!r.ok) assert.fail(`${method} ${c.address}: ${Code[r.code]} ${r.details}`);
  return r.res;
}

/** Runs the same request on the oracle and through proxy A and asserts the same outcome. */
async function same(method: 'Range' | 'Put' | 'DeleteRange' | 'Txn' | 'Compact', req: Msg, what: string): Promise<{ o: CallResult; p: CallResult }> {
  const o = await oracle.kv(method, req);
  const p = await viaA.kv(method, req);
  assert.deepEqual(outcome(p), outcome(o), `${what}: proxy differs from etcd`);
  return { o, p };
}

/** Puts the same keys on both sides. */
async function seed(kvs: Array<[string | Buffer, string | Buffer]>): Promise<void> {
  for (const [k, v] of kvs) {
    await ok(oracle, 'Put', { key: b(k), value: b(v) });
    await ok(viaA, 'Put', { key: b(k), value: b(v) });
  }
}

// ------------------------------------------------------------------------------------------------
// Runs first: nothing has been written yet.

test('the first write to a fresh meta-cluster gets revision 2, as on a fresh etcd', { timeout: T }, async () => {
  const r = await ok(viaA, 'Put', { key: b('fresh/a'), value: b('1') });
  // A fresh etcd starts at revision 1; its first write is revision 2 (docs/ARCHITECTURE.md: the
  // clock starts "at 1 on a fresh system").
  assert.equal(r.header.revision, '2');
});

// ------------------------------------------------------------------------------------------------
// Malformed and odd requests.

test('a RequestOp with no request set inside a Txn: same error as etcd', { timeout: T }, async () => {
  await same('Txn', { compare: [], success: [{}], failure: [] }, 'empty RequestOp in success');
  await same('Txn', { compare: [], success: [], failure: [{}] }, 'empty RequestOp in failure');
  await same('Txn', { compare: [], success: [opTxn({ compare: [], success: [{}], failure: [] })], failure: [] }, 'empty RequestOp nested');
});

test('odd Range fields: range_end < key, negative limit/revision, huge limit, 0x00/0xff keys, empty value', { timeout: T }, async () => {
  const k0 = Buffer.from('od/\x00a', 'latin1');
  const kf = Buffer.from([0x6f, 0x64, 0x2f, 0xff, 0xfe]); // od/ ff fe
  await seed([
    ['od/a', 'va'],
    ['od/b', ''],
    [k0, 'zero'],
    [kf, Buffer.from([0xff, 0x00])],
  ]);
  const P = prefixEnd('od/');
  await same('Range', { key: b('od/b'), range_end: b('od/a') }, 'range_end < key');
  await same('Range', { key: b('od/'), range_end: P, limit: '-5' }, 'negative limit');
  await same('Range', { key: b('od/'), range_end: P, revision: '-3' }, 'negative revision');
  await same('Range', { key: b('od/'), range_end: P, limit: '9223372036854775807' }, 'max int64 limit');
  await same('Range', { key: b('od/'), range_end: P, limit: '9223372036854775807', sort_order: 2 }, 'max limit descending');
  await same('Range', { key: b('od/'), range_end: P, limit: '1', sort_order: 2 }, 'limit 1 descending');
  // (Out-of-range sort_order / sort_target: etcd 3.5 refuses them, 3.4 (the oracle here) does not; see differential.test.ts.)
  await same('Range', { key: b('od/'), range_end: P, max_mod_revision: '-1' }, 'negative max_mod_revision');
  await same('Range', { key: b('od/'), range_end: P, min_create_revision: '-1' }, 'negative min_create_revision');
  await same('Range', { key: k0 }, 'key with 0x00');
  await same('Range', { key: kf }, 'key with 0xff');
  await same('Range', { key: b('od/b') }, 'empty value');
  await same('Range', { key: b('od/'), range_end: P, sort_target: 4, sort_order: 1 }, 'sort by value asc with empty value and 0xff');
  await same('Range', { key: Buffer.from('od/\x00', 'latin1'), range_end: Buffer.from('od/\x00b', 'latin1') }, 'range between 0x00 keys');
  await same('Range', { key: b('od/'), range_end: b('od/') }, 'range_end == key');
  await same('DeleteRange', { key: b('od/zz'), range_end: b('od/a') }, 'delete with range_end < key');
  await same('Put', { key: b('od/c'), value: Buffer.alloc(0), prev_kv: true }, 'put of empty value, prev_kv missing');
  await same('Put', { key: b('od/c'), value: b('x'), prev_kv: true }, 'put with prev_kv of an empty value');
});

test('int64 extremes in revision, limit, lease and compare fields: same answers as etcd', { timeout: T }, async () => {
  const MAX = '9223372036854775807';
  const MIN = '-9223372036854775808';
  await seed([['ix/a', '1']]);
  await same('Range', { key: b('ix/a'), revision: MAX }, 'revision max');
  await same('Range', { key: b('ix/a'), revision: MIN }, 'revision min');
  await same('Range', { key: b('ix/'), range_end: prefixEnd('ix/'), limit: MIN }, 'limit min');
  await same('Range', { key: b('ix/'), range_end: prefixEnd('ix/'), min_mod_revision: MAX }, 'min_mod max');
  await same('Range', { key: b('ix/'), range_end: prefixEnd('ix/'), max_create_revision: MIN }, 'max_create min');
  await same('Put', { key: b('ix/b'), value: b('x'), lease: MIN }, 'lease min');
  await same('Put', { key: b('ix/b'), value: b('x'), lease: MAX }, 'lease max');
  await same('Compact', { revision: MAX }, 'compact max');
  for (const [t, f] of [[0, 'version'], [1, 'create_revision'], [2, 'mod_revision'], [4, 'lease']] as const) {
    for (const v of [MAX, MIN]) {
      for (const result of [0, 1, 2, 3]) {
        await same('Txn', { compare: [{ target: t, result, key: b('ix/a'), [f]: v }], success: [opGet('ix/a', { count_only: true })], failure: [] }, `${f} ${result} ${v}`);
      }
    }
  }
});

test('Compact(0) and negative compaction revisions: same answer as etcd', { timeout: T }, async () => {
  await same('Compact', { revision: '-1' }, 'Compact(-1)');
  await same('Compact', { revision: '0' }, 'Compact(0)');
});

test('compare with an unknown target: etcd compares nothing (result 0)', { timeout: T }, async () => {
  await seed([['ut/a', 'v']]);
  for (const result of [0, 1, 2, 3]) {
    for (const key of ['ut/a', 'ut/missing']) {
      const req = { compare: [{ target: 7, result, key: b(key), version: '0' }], success: [opGet('ut/a', { keys_only: true })], failure: [] };
      const { o, p } = await same('Txn', req, `unknown target, result ${result}, key ${key}`);
      assert.ok(o.ok && p.ok);
    }
  }
});

test('odd compares: unknown result, a target_union that does not match the target, binary and empty values', { timeout: T }, async () => {
  await seed([['oc/a', Buffer.from([0xff, 0x00])], ['oc/e', '']]);
  const cases: Array<[string, Msg]> = [
    ['unknown result 9', { target: 0, result: 9, key: b('oc/a'), version: '5' }],
    ['unknown result -1', { target: 2, result: -1, key: b('oc/a'), mod_revision: '0' }],
    ['MOD compare carrying a version', { target: 2, result: 0, key: b('oc/a'), version: '1' }],
    ['VALUE compare carrying a version', { target: 3, result: 3, key: b('oc/a'), version: '1' }],
    ['CREATE GREATER carrying a value', { target: 1, result: 1, key: b('oc/a'), value: b('x') }],
    ['VALUE LESS than 0xff01', { target: 3, result: 2, key: b('oc/a'), value: Buffer.from([0xff, 0x01]) }],
    ['VALUE GREATER than 0xff', { target: 3, result: 1, key: b('oc/a'), value: Buffer.from([0xff]) }],
    ['empty VALUE equal empty', { target: 3, result: 0, key: b('oc/e'), value: Buffer.alloc(0) }],
    ['missing key VALUE NOT_EQUAL x', { target: 3, result: 3, key: b('oc/zz'), value: b('x') }],
    ['missing key LEASE EQUAL 0', { target: 4, result: 0, key: b('oc/zz'), lease: '0' }],
  ];
  for (const [name, c] of cases) {
    await same('Txn', { compare: [c], success: [opGet('oc/a', { keys_only: true })], failure: [opGet('oc/e', { count_only: true })] }, name);
  }
});

test('a chain of 100 nested txns, the innermost one writing', { timeout: T }, async () => {
  await seed([['ch/a', '1']]);
  let t: Msg = { compare: [cmp('VERSION', 'EQUAL', 'ch/a', '1')], success: [opPut('ch/b', 'deep'), opGet('ch/a')], failure: [] };
  for (let i = 0; i < 100; i++) t = { compare: [cmp('VERSION', 'GREATER', 'ch/a', '0')], success: [opTxn(t)], failure: [opGet('ch/a')] };
  await same('Txn', t, '100-deep txn');
  await same('Range', { key: b('ch/'), range_end: prefixEnd('ch/') }, 'after');
});

test('range compares whose key and range_end contain 0x00 are kept apart', { timeout: T }, async () => {
  // [rz/a, "rz/b\0rz/c") holds rz/a; ["rz/a\0rz/b", rz/c) holds nothing. Joined with a 0x00
  // between key and range_end, both read "rz/a\0rz/b\0rz/c": the two compares must not be confused.
  await seed([['rz/a', '1']]);
  const req = {
    compare: [
      { target: 0, result: 0, key: b('rz/a'), range_end: Buffer.from('rz/b\x00rz/c', 'latin1'), version: '1' },
      { target: 0, result: 0, key: Buffer.from('rz/a\x00rz/b', 'latin1'), range_end: b('rz/c'), version: '0' },
    ],
    success: [opGet('rz/a', { keys_only: true })],
    failure: [],
  };
  const { o } = await same('Txn', req, 'two range compares with colliding ids');
  assert.ok(o.ok && o.res.succeeded, 'etcd: both compares hold');
  // Two range deletes whose ids collide the same way: ["rz2/a", "rz2/a\x01\0rz2/c") is empty,
  // ["rz2/a\0rz2/a\x01", "rz2/c") holds rz2/b, which must be deleted.
  await seed([['rz2/b', '1']]);
  const del = {
    compare: [],
    success: [
      { request_delete_range: { key: b('rz2/a'), range_end: Buffer.from('rz2/a\x01\x00rz2/c', 'latin1'), prev_kv: true } },
      { request_delete_range: { key: Buffer.from('rz2/a\x00rz2/a\x01', 'latin1'), range_end: b('rz2/c'), prev_kv: true } },
    ],
    failure: [],
  };
  await same('Txn', del, 'two range deletes with colliding ids');
  await same('Range', { key: b('rz2/'), range_end: prefixEnd('rz2/') }, 'rz2/ after the deletes');
});

test('a compare range_end "\\0" (from key) in a read-only txn', { timeout: T }, async () => {
  await seed([['fz/a', '1'], ['fz/b', '2']]);
  for (const [result, v] of [[0, '1'], [1, '0'], [2, '3']] as const) {
    await same(
      'Txn',
      { compare: [{ target: 0, result, key: b('fz/'), range_end: ZERO, version: v }], success: [opGetPrefix('fz/')], failure: [opGet('fz/a')] },
      `from-key compare ${result} ${v}`,
    );
  }
});

// ------------------------------------------------------------------------------------------------
// Txn evaluation.

test('nested txns 3 deep; compares see the state before the txn; a Range after a Put sees it at the txn revision', { timeout: T }, async () => {
  await seed([['nt/k', '1']]);
  const req = {
    compare: [cmp('VALUE', 'EQUAL', 'nt/k', '1')],
    success: [
      opPut('nt/k', '2', { prev_kv: true }),
      opGet('nt/k'),
      opTxn({
        compare: [cmp('VALUE', 'EQUAL', 'nt/k', '2')], // false: compares see the state before the txn
        success: [opPut('nt/wrong', 'x')],
        failure: [
          opTxn({
            compare: [cmp('VERSION', 'EQUAL', 'nt/k', '1')],
            success: [opTxn({ compare: [cmp('CREATE', 'EQUAL', 'nt/new', '0')], success: [opPut('nt/new', 'deep'), opGet('nt/new')], failure: [] }), opGetPrefix('nt/')],
            failure: [],
          }),
        ],
      }),
    ],
    failure: [],
  };
  const { o, p } = await same('Txn', req, 'nested 3 deep');
  for (const [side, r] of [['etcd', o], ['proxy', p]] as const) {
    assert.ok(r.ok);
    const rev = r.res.header.revision;
    const got = r.res.responses[1].response_range.kvs[0];
    assert.equal(got.mod_revision, rev, `${side}: range after put shows the txn revision`);
    const deep = r.res.responses[2].response_txn.responses[0].response_txn.responses[0].response_txn.responses[1].response_range;
    assert.equal(deep.kvs[0].create_revision, rev, `${side}: deep put's create revision`);
    assert.equal(deep.header.revision, rev, `${side}: deep range header`);
  }
});

test('a put in one nested txn and a delete of the same key in a later nested txn (etcd allows it)', { timeout: T }, async () => {
  await seed([['pd/b', 'old']]);
  const req = { compare: [], success: [opTxn({ compare: [], success: [opPut('pd/b', 'new')], failure: [] }), opTxn({ compare: [], success: [opDel('pd/b', { prev_kv: true })], failure: [] })], failure: [] };
  await same('Txn', req, 'put then delete through nested txns');
  await same('Range', { key: b('pd/b') }, 'after');
});

test('apply-time errors are reported in op order (a bad lease before a nested ignore_value on a missing key)', { timeout: T }, async () => {
  const req = {
    compare: [],
    success: [opPut('eo/a', 'x', { lease: '4242' }), opTxn({ compare: [], success: [opPut('eo/missing', '', { ignore_value: true })], failure: [] })],
    failure: [],
  };
  await same('Txn', req, 'error order');
});

test('nested txns fanning out to many puts within etcd\'s per-level limits', { timeout: T }, async () => {
  // 16 nested txns × 100 puts: every level is within 128 ops, as etcd checks it.
  const nested = Array.from({ length: 16 }, (_, i) =>
    opTxn({ compare: [], success: Array.from({ length: 100 }, (_, j) => opPut(`fo/${i}/${j}`, 'v')), failure: [] }),
  );
  await same('Txn', { compare: [], success: nested, failure: [] }, '1600 puts in nested txns');
  await same('Range', { key: b('fo/'), range_end: prefixEnd('fo/'), count_only: true }, 'count after');
});

test('a read-only txn with a nested txn goes through raft in etcd: request size limit applies', { timeout: T }, async () => {
  const big = Buffer.alloc(1024 * 1024 + 600 * 1024, 0x61);
  await same('Txn', { compare: [], success: [opTxn({ compare: [], success: [{ request_range: { key: big } }], failure: [] })], failure: [] }, 'nested read-only txn of 1.6 MiB');
  await same('Txn', { compare: [], success: [{ request_range: { key: big } }], failure: [] }, 'flat read-only txn of 1.6 MiB');
});

test('same key in compares, ranges and puts of one txn; a Range before and after the Put', { timeout: T }, async () => {
  await seed([['sk/a', '1']]);
  const req = {
    compare: [cmp('VALUE', 'EQUAL', 'sk/a', '1'), cmp('VERSION', 'EQUAL', 'sk/a', '1'), cmp('MOD', 'GREATER', 'sk/a', '0')],
    success: [opGet('sk/a'), opPut('sk/a', '2'), opGet('sk/a'), opDel('sk/zz'), opGet('sk/a', { count_only: true })],
    failure: [opGet('sk/a')],
  };
  const { o, p } = await same('Txn', req, 'same key');
  for (const r of [o, p]) {
    assert.ok(r.ok);
    const [before, , afterPut, del, cnt] = r.res.responses;
    assert.ok(BigInt(before.response_range.header.revision) < BigInt(r.res.header.revision), 'a Range before the Put reports the state before the txn');
    assert.equal(afterPut.response_range.header.revision, r.res.header.revision);
    assert.equal(afterPut.response_range.kvs[0].mod_revision, r.res.header.revision);
    assert.equal(del.response_delete_range.header.revision, r.res.header.revision);
    assert.equal(cnt.response_range.header.revision, r.res.header.revision);
  }
});

// ------------------------------------------------------------------------------------------------
// Concurrency.

test('compare-and-swap through two proxies: exactly one winner per round', { timeout: T }, async () => {
  const key = 'cas/k';
  await ok(viaA, 'Put', { key: b(key), value: b('0') });
  const clients = Array.from({ length: 8 }, (_, i) => new RawClient(meta.addresses[i % 2]!));
  try {
    for (let round = 0; round < 15; round++) {
      const cur = await ok(viaB, 'Range', { key: b(key) });
      const mod = cur.kvs[0].mod_revision;
      const results = await Promise.all(
        clients.map((c, i) =>
          ok(c, 'Txn', { compare: [cmp('MOD', 'EQUAL', key, mod)], success: [opPut(key, `r${round}-c${i}`)], failure: [opGet(key)] }),
        ),
      );
      const winners = results.map((r, i) => (r.succeeded ? i : -1)).filter((i) => i >= 0);
      assert.equal(winners.length, 1, `round ${round}: winners ${winners}`);
      const after = await ok(viaA, 'Range', { key: b(key) });
      assert.equal(after.kvs[0].value.toString(), `r${round}-c${winners[0]}`);
      assert.equal(after.kvs[0].mod_revision, results[winners[0]!].header.revision);
      for (const [i, r] of results.entries()) {
        if (r.succeeded) continue;
        const seen = r.responses[0].response_range.kvs[0];
        assert.ok(BigInt(seen.mod_revision) > BigInt(mod), `client ${i}: loser must see a newer mod`);
      }
    }
  } finally {
    clients.forEach((c) => c.close());
  }
});

test('a read through proxy B right after a write through proxy A sees it (single key and prefix)', { timeout: T }, async () => {
  for (let i = 0; i < 40; i++) {
    const key = `ryw${i % 4}/k${i}`;
    const w = await ok(viaA, 'Put', { key: b(key), value: b(`v${i}`) });
    const r = await ok(viaB, 'Range', { key: b(key) });
    assert.equal(r.kvs[0]?.value.toString(), `v${i}`, `single key ${key}`);
    assert.equal(r.kvs[0].mod_revision, w.header.revision);
    const all = await ok(viaB, 'Range', { key: b('ryw'), range_end: b('ryx') });
    assert.ok(
      (all.kvs as Msg[]).some((kv) => kv.key.toString() === key && kv.value.toString() === `v${i}`),
      `multi-shard range misses ${key}`,
    );
    assert.ok(BigInt(all.header.revision) >= BigInt(w.header.revision), 'multi-shard header below an acknowledged write');
  }
});

test('linearizable multi-shard reads through B miss no write acknowledged through A before they started', { timeout: T }, async () => {
  // Writers share keys, so acknowledgements may arrive out of commit order: judge by revision,
  // not by the order the answers came back in.
  const acked: Array<{ key: string; value: string; revision: bigint; at: number }> = [];
  let stop = false;
  const writers = Array.from({ length: 3 }, (_, w) =>
    (async () => {
      for (let i = 0; !stop; i++) {
        const key = `lz${(w * 7 + i) % 9}/k`;
        const value = `w${w}-${i}`;
        const put = await ok(viaA, 'Put', { key: b(key), value: b(value) });
        acked.push({ key, value, revision: BigInt(put.header.revision), at: performance.now() });
      }
    })(),
  );
  const problems: string[] = [];
  try {
    for (let n = 0; n < 60 && problems.length === 0; n++) {
      const started = performance.now();
      const before = new Map<string, (typeof acked)[number]>();
      for (const a of acked) {
        const seen = before.get(a.key);
        if (a.at < started && (!seen || a.revision > seen.revision)) before.set(a.key, a);
      }
      const r = await ok(viaB, 'Range', { key: b('lz'), range_end: b('l{') });
      const got = new Map((r.kvs as Msg[]).map((kv) => [kv.key.toString(), kv]));
      for (const [key, a] of before) {
        const kv = got.get(key);
        // Any later write is fine; an older one (or none) misses an acknowledged write.
        const mod = kv ? BigInt(kv.mod_revision) : -1n;
        if (mod < a.revision) {
          problems.push(`read ${n}: ${key} = ${kv?.value.toString() ?? 'missing'} at ${mod}, but ${a.value} was acknowledged at ${a.revision} before the read`);
        }
        if (mod === a.revision && kv.value.toString() !== a.value) problems.push(`read ${n}: ${key} at ${mod} holds ${kv.value}, not ${a.value}`);
      }
    }
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  assert.deepEqual(problems.slice(0, 5), []);
});

test('a txn that deletes a prefix and then reads it never sees a key there (concurrent puts)', { timeout: T }, async () => {
  let stop = false;
  let n = 0;
  const writer = (async () => {
    while (!stop) await ok(viaA, 'Put', { key: b(`dr/${n++}`), value: b('x') });
  })();
  const problems: string[] = [];
  try {
    for (let i = 0; i < 300 && problems.length === 0; i++) {
      const r = await ok(viaA, 'Txn', { compare: [], success: [opDelPrefix('dr/'), opGetPrefix('dr/', { keys_only: true })], failure: [] });
      const left = r.responses[1].response_range;
      if (left.kvs.length > 0) {
        problems.push(`iteration ${i}: deleted ${r.responses[0].response_delete_range.deleted}, then the same txn still reads ${left.kvs.map((kv: Msg) => kv.key.toString())}`);
      }
    }
  } finally {
    stop = true;
    await writer;
  }
  assert.deepEqual(problems, []);
});

/**
 * Runs `txns` Txns guarded by a VALUE compare over a 40-key range while 4 writers (through both
 * proxies) keep writing other keys of the same shard; every Txn must succeed.
 */
async function rangeGuardedUnderWrites(prefix: string, txns: number, success: (i: number) => Msg[]): Promise<void> {
  for (let i = 0; i < 40; i++) await ok(viaA, 'Put', { key: b(`${prefix}/${String(i).padStart(2, '0')}`), value: b('same') });
  let stop = false;
  let puts = 0;
  const writers = Array.from({ length: 4 }, (_, w) =>
    (async () => {
      let i = 0;
      // Same shard (same routing prefix), outside the compared range.
      while (!stop) {
        await ok(w % 2 ? viaA : viaB, 'Put', { key: b(`${prefix}/~w${w}`), value: b(String(i++)) });
        puts++;
      }
    })(),
  );
  const failures: string[] = [];
  try {
    await waitFor(() => puts >= 8, 10_000, 'the writers to be writing');
    for (let i = 0; i < txns; i++) {
      const r = await viaA.kv('Txn', {
        compare: [cmp('VALUE', 'EQUAL', `${prefix}/`, 'same', { range_end: b(`${prefix}/~`) })],
        success: success(i),
        failure: [],
      });
      if (!r.ok) failures.push(`${Code[r.code]} ${r.details}`);
      else if (!r.res.succeeded) failures.push('compare failed');
    }
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  assert.deepEqual(failures, []);
}

test('a read-only txn comparing a range of more than 32 keys completes while the shard takes writes', { timeout: T }, async () => {
  await rangeGuardedUnderWrites('bg', 20, () => [opGet('bg/00')]);
});

test('a writing txn guarded by a compare over more than 32 keys completes while the shard takes writes', { timeout: T }, async () => {
  await rangeGuardedUnderWrites('bw', 10, (i) => [opPut('bw/~target', String(i))]);
});

test('a txn over 200 keys completes while the shard takes writes', { timeout: T }, async () => {
  let stop = false;
  let puts = 0;
  const writers = Array.from({ length: 4 }, (_, w) =>
    (async () => {
      let i = 0;
      while (!stop) {
        await ok(w % 2 ? viaA : viaB, 'Put', { key: b(`bt/~w${w}`), value: b(String(i++)) });
        puts++;
      }
    })(),
  );
  const failures: string[] = [];
  try {
    await waitFor(() => puts >= 8, 10_000, 'the writers to be writing');
    for (let i = 0; i < 5; i++) {
      const nested = Array.from({ length: 10 }, (_, n) =>
        opTxn({ compare: [cmp('VERSION', 'LESS', `bt/c${n}`, '100')], success: Array.from({ length: 20 }, (_, j) => opPut(`bt/${n}/${j}`, String(i))), failure: [] }),
      );
      const r = await viaA.kv('Txn', { compare: [], success: nested, failure: [] });
      if (!r.ok) failures.push(`${Code[r.code]} ${r.details}`);
    }
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  assert.deepEqual(failures, []);
  const n = await ok(viaB, 'Range', { key: b('bt/'), range_end: b('bt/~'), count_only: true });
  assert.equal(n.count, '200');
});

test('concurrent puts and deletes of the same keys through two proxies: revisions unique, final state matches the last write', { timeout: T }, async () => {
  const keys = ['pdx/a', 'pdx/b', 'pdx/c'];
  const acks: Array<{ key: string; rev: bigint; value: string | null }> = [];
  await Promise.all(
    Array.from({ length: 6 }, async (_, w) => {
      const c = w % 2 ? viaB : viaA;
      for (let i = 0; i < 40; i++) {
        const key = keys[(w + i) % keys.length]!;
        if ((w + i) % 3 === 0) {
          const r = await ok(c, 'DeleteRange', { key: b(key) });
          if (r.deleted !== '0') acks.push({ key, rev: BigInt(r.header.revision), value: null });
        } else {
          const value = `w${w}-${i}`;
          const r = await ok(c, 'Put', { key: b(key), value: b(value) });
          acks.push({ key, rev: BigInt(r.header.revision), value });
        }
      }
    }),
  );
  const revs = acks.map((a) => a.rev);
  assert.equal(new Set(revs.map(String)).size, revs.length, 'two writes acknowledged at one revision');
  for (const key of keys) {
    const last = acks.filter((a) => a.key === key).sort((x, y) => (x.rev < y.rev ? -1 : 1)).at(-1);
    const now = await ok(viaB, 'Range', { key: b(key) });
    if (!last) continue;
    assert.equal(now.kvs[0]?.value.toString() ?? null, last.value, `${key}: final state`);
  }
});

test('historical prefix reads at every acknowledged revision match the writes (batches, deletes, two proxies)', { timeout: T }, async () => {
  // hs/ keys share one shard (their writes get batched); hx<i>/k keys spread over the shards.
  const keys = [...Array.from({ length: 6 }, (_, i) => `hs/${i}`), ...Array.from({ length: 6 }, (_, i) => `hx${i}/k`)];
  type Op = { key: string; rev: bigint; value: string | null };
  const ops: Op[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      const c = w % 2 ? viaB : viaA;
      for (let i = 0; i < 25; i++) {
        const key = keys[(w * 5 + i * 7) % keys.length]!;
        if ((w + i) % 5 === 0) {
          const r = await ok(c, 'DeleteRange', { key: b(key) });
          if (r.deleted !== '0') ops.push({ key, rev: BigInt(r.header.revision), value: null });
        } else {
          const value = `w${w}-${i}`;
          const r = await ok(c, 'Put', { key: b(key), value: b(value) });
          ops.push({ key, rev: BigInt(r.header.revision), value });
        }
      }
    }),
  );
  ops.sort((x, y) => (x.rev < y.rev ? -1 : 1));
  const stateAt = (rev: bigint) => {
    const st = new Map<string, { value: string; create: bigint; mod: bigint; version: number }>();
    for (const o of ops) {
      if (o.rev > rev) break;
      const cur = st.get(o.key);
      if (o.value === null) st.delete(o.key);
      else st.set(o.key, { value: o.value, create: cur?.create ?? o.rev, mod: o.rev, version: (cur?.version ?? 0) + 1 });
    }
    return st;
  };
  const problems: string[] = [];
  for (const [i, o] of ops.entries()) {
    const want = stateAt(o.rev);
    for (const [prefix, end] of [['hs/', prefixEnd('hs/')], ['hx', b('hy')]] as const) {
      const c = i % 2 ? viaA : viaB;
      const r = await ok(c, 'Range', { key: b(prefix), range_end: end, revision: o.rev.toString() });
      const got = (r.kvs as Msg[]).map((kv) => `${kv.key}=${kv.value}@${kv.create_revision}/${kv.mod_revision}/v${kv.version}`);
      const exp = [...want.entries()]
        .filter(([k]) => k.startsWith(prefix))
        .sort(([a], [z]) => (a < z ? -1 : 1))
        .map(([k, v]) => `${k}=${v.value}@${v.create}/${v.mod}/v${v.version}`);
      if (JSON.stringify(got) !== JSON.stringify(exp)) problems.push(`at ${o.rev} ${prefix}: got ${got.join(' ')} want ${exp.join(' ')}`);
      if (r.count !== String(exp.length)) problems.push(`at ${o.rev} ${prefix}: count ${r.count} want ${exp.length}`);
    }
  }
  assert.deepEqual(problems.slice(0, 10), []);
});

test('a Range before the Put in a writing txn never reports a header below the mod_revisions it returns (batched writes)', { timeout: T }, async () => {
  const problems: string[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 25; i++) {
        if (w % 2) {
          await ok(viaA, 'Put', { key: b(`hb/p${w}-${i % 3}`), value: b(String(i)) });
        } else {
          const r = await ok(viaA, 'Txn', { compare: [], success: [opGetPrefix('hb/'), opPut(`hb/t${w}`, String(i))], failure: [] });
          const rr = r.responses[0].response_range;
          const maxMod = (rr.kvs as Msg[]).reduce((m, kv) => (BigInt(kv.mod_revision) > m ? BigInt(kv.mod_revision) : m), 0n);
          if (BigInt(rr.header.revision) < maxMod) problems.push(`range header ${rr.header.revision} < mod ${maxMod} (txn at ${r.header.revision})`);
          if (BigInt(rr.header.revision) >= BigInt(r.header.revision)) problems.push(`range before the put reports ${rr.header.revision} >= txn ${r.header.revision}`);
        }
      }
    }),
  );
  assert.deepEqual(problems.slice(0, 5), []);
});

test('historical reads around a delete made inside a nested txn while other writes are batched with it', { timeout: T }, async () => {
  const problems: string[] = [];
  for (let r = 0; r < 10; r++) {
    const key = `hn/d${r}`;
    await ok(viaA, 'Put', { key: b(key), value: b('alive') });
    const jobs: Array<Promise<{ kind: string; rev: bigint }>> = [
      ok(viaA, 'Put', { key: b(`hn/x${r}`), value: b('x') }).then((res) => ({ kind: 'put', rev: BigInt(res.header.revision) })),
      ok(viaA, 'Txn', { compare: [], success: [opTxn({ compare: [], success: [opDel(key)], failure: [] })], failure: [] }).then((res) => ({
        kind: 'del',
        rev: BigInt(res.header.revision),
      })),
      ...Array.from({ length: 6 }, (_, i) =>
        ok(viaA, 'Put', { key: b(`hn/p${r}-${i}`), value: b('v') }).then((res) => ({ kind: 'put', rev: BigInt(res.header.revision) })),
      ),
    ];
    const acks = await Promise.all(jobs);
    const delRev = acks.find((a) => a.kind === 'del')!.rev;
    for (const a of acks) {
      const at = await ok(viaB, 'Range', { key: b(key), revision: a.rev.toString() });
      const exists = at.kvs.length > 0;
      if (exists !== a.rev < delRev) problems.push(`round ${r}: ${key} at ${a.rev} (deleted at ${delRev}): ${exists ? 'still there' : 'missing'}`);
      const pre = await ok(viaB, 'Range', { key: b('hn/'), range_end: prefixEnd('hn/'), revision: a.rev.toString(), keys_only: true });
      const has = (pre.kvs as Msg[]).some((kv) => kv.key.toString() === key);
      if (has !== a.rev < delRev) problems.push(`round ${r}: prefix at ${a.rev} (deleted at ${delRev}): ${has ? 'lists' : 'lacks'} ${key}`);
    }
  }
  assert.deepEqual(problems.slice(0, 6), []);
});

test('concurrent txns carrying large values in nested txns all succeed (each within etcd\'s request limit)', { timeout: T }, async () => {
  const value = Buffer.alloc(1200 * 1024, 0x62);
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      viaA.kv('Txn', { compare: [], success: [opTxn({ compare: [], success: [opPut(`bn/${i}`, value)], failure: [] })], failure: [] }),
    ),
  );
  const failed = results.map((r, i) => (r.ok ? null : `txn ${i}: ${Code[r.code]} ${r.details}`)).filter((x) => x);
  assert.deepEqual(failed, []);
  await ok(viaA, 'DeleteRange', { key: b('bn/'), range_end: prefixEnd('bn/') });
});

test('stale key-state hints in one proxy after writes through the other', { timeout: T }, async () => {
  const k = 'sh/k';
  await ok(viaB, 'Put', { key: b(k), value: b('1') });
  await ok(viaB, 'Range', { key: b(k) });
  await ok(viaA, 'DeleteRange', { key: b(k) });
  const r = await viaB.kv('Put', { key: b(k), value: Buffer.alloc(0), ignore_value: true });
  assert.deepEqual(r.ok ? 'ok' : { code: Code[r.code], details: r.details }, { code: 'INVALID_ARGUMENT', details: 'etcdserver: key not found' });
  const p1 = await ok(viaB, 'Put', { key: b(k), value: b('2'), prev_kv: true });
  assert.equal(p1.prev_kv, null, 'prev_kv of a key deleted through the other proxy');
  const a2 = await ok(viaA, 'Put', { key: b(k), value: b('3'), prev_kv: true });
  assert.equal(a2.prev_kv?.value.toString(), '2');
  const t = await ok(viaB, 'Txn', { compare: [cmp('VALUE', 'EQUAL', k, '3'), cmp('VERSION', 'EQUAL', k, '2')], success: [opPut(k, '4', { prev_kv: true })], failure: [opGet(k)] });
  assert.equal(t.succeeded, true, 'compare on the value written through the other proxy');
  assert.equal(t.responses[0].response_put.prev_kv.value.toString(), '3');
  const iv = await ok(viaA, 'Put', { key: b(k), value: Buffer.alloc(0), ignore_value: true, prev_kv: true });
  assert.equal(iv.prev_kv?.value.toString(), '4');
  const now = await ok(viaB, 'Range', { key: b(k) });
  assert.equal(now.kvs[0].value.toString(), '4');
  assert.equal(now.kvs[0].version, '4');
  assert.equal(now.kvs[0].create_revision, p1.header.revision);
});

test('Put sizes around --max-request-bytes: same accept/reject as etcd', { timeout: T }, async () => {
  const LIMIT = 1572864;
  const outcomes: string[] = [];
  for (let size = LIMIT - 48; size <= LIMIT - 4; size += 4) {
    const req = { key: b('lim/k'), value: Buffer.alloc(size - 5, 0x61) };
    const o = await oracle.kv('Put', req);
    const p = await viaA.kv('Put', req);
    const show = (r: CallResult) => (r.ok ? 'ok' : r.details);
    if (show(o) !== show(p)) outcomes.push(`value ${size - 5}: etcd ${show(o)}, proxy ${show(p)}`);
  }
  assert.deepEqual(outcomes, []);
});

// ------------------------------------------------------------------------------------------------
// Compaction.

test('compaction through proxy A is seen by proxy B: reads below it fail as in etcd', { timeout: T }, async () => {
  // Two keys on different shards: a's shard takes no write between a's revision and the compaction.
  const a = 'cpa/a';
  await ok(viaA, 'Put', { key: b(a), value: b('0') });
  const shardA = await meta.shardOf(a);
  let other = '';
  for (let i = 0; i < 50 && !other; i++) {
    const k = `cpb${i}/k`;
    await ok(viaA, 'Put', { key: b(k), value: b('x') });
    if ((await meta.shardOf(k)) !== shardA) other = k;
  }
  assert.ok(other, 'no key on another shard');
  const r1 = await ok(viaA, 'Put', { key: b(a), value: b('1') });
  const r2 = await ok(viaA, 'Put', { key: b(other), value: b('y') });
  await ok(viaA, 'Compact', { revision: r2.header.revision });
  const below = String(BigInt(r1.header.revision));
  assert.ok(BigInt(below) < BigInt(r2.header.revision));
  const COMPACTED = { code: 'OUT_OF_RANGE', details: 'etcdserver: mvcc: required revision has been compacted' };
  const show = (r: CallResult, f: (res: Msg) => unknown = (res) => res.kvs.map((kv: Msg) => kv.value.toString())) =>
    r.ok ? { ok: f(r.res) } : { code: Code[r.code], details: r.details };
  const problems: string[] = [];
  const expect = (what: string, got: unknown, want: unknown) => {
    if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  };
  for (const [name, c] of [['A', viaA], ['B', viaB]] as const) {
    expect(`${name}: Range below the compaction`, show(await c.kv('Range', { key: b(a), revision: below })), COMPACTED);
    expect(`${name}: serializable Range below the compaction`, show(await c.kv('Range', { key: b(a), revision: below, serializable: true })), COMPACTED);
    expect(
      `${name}: Txn Range below the compaction`,
      show(await c.kv('Txn', { compare: [], success: [opGet(a, { revision: below })], failure: [] }), () => 'ok'),
      COMPACTED,
    );
    expect(`${name}: Range at the compaction revision`, show(await c.kv('Range', { key: b(other), revision: r2.header.revision })), { ok: ['y'] });
    expect(`${name}: Range of a at the compaction revision`, show(await c.kv('Range', { key: b(a), revision: r2.header.revision })), { ok: ['1'] });
    expect(`${name}: current Range`, show(await c.kv('Range', { key: b(a) })), { ok: ['1'] });
  }
  assert.deepEqual(problems, []);
  // prev_kv after compaction
  const p = await ok(viaB, 'Put', { key: b(a), value: b('2'), prev_kv: true });
  assert.equal(p.prev_kv?.value.toString(), '1');
  assert.equal(p.prev_kv?.mod_revision, r1.header.revision);
  const d = await ok(viaB, 'DeleteRange', { key: b(a), prev_kv: true });
  assert.equal(d.prev_kvs[0]?.value.toString(), '2');
  assert.equal(d.prev_kvs[0]?.mod_revision, p.header.revision);
  const again = await viaB.kv('Compact', { revision: r2.header.revision });
  assert.deepEqual(again.ok ? 'ok' : { code: Code[again.code], details: again.details }, {
    code: 'OUT_OF_RANGE',
    details: 'etcdserver: mvcc: required revision has been compacted',
  });
});

// ------------------------------------------------------------------------------------------------
// Robustness.

test('clients cancelling mid-request do not hurt the proxy', { timeout: T }, async () => {
  for (let i = 0; i < 30; i++) await ok(viaA, 'Put', { key: b(`cx/${i}`), value: Buffer.alloc(10_000, 0x61) });
  const c = new RawClient(meta.addresses[0]!);
  try {
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2
          ? c.kv('Range', { key: b('cx/'), range_end: prefixEnd('cx/') }, { deadlineMs: 1 })
          : c.kv('Put', { key: b(`cx/w${i}`), value: b('v') }, { deadlineMs: 1 }),
      ),
    );
  } finally {
    c.close();
  }
  // Hard disconnects: close the channel right after sending.
  for (let i = 0; i < 10; i++) {
    const d = new RawClient(meta.addresses[1]!);
    void d.kv('Txn', { compare: [], success: [opPut(`cx/d${i}`, 'v'), opGetPrefix('cx/')], failure: [] });
    await sleep(2);
    d.close();
  }
  await sleep(200);
  const r = await ok(viaA, 'Range', { key: b('cx/'), range_end: prefixEnd('cx/'), count_only: true });
  assert.ok(Number(r.count) >= 30);
  await ok(viaB, 'Put', { key: b('cx/alive'), value: b('yes') });
});

test('Maintenance.Snapshot streams to a clean end; a client that cancels after the first message leaves the proxy serving', { timeout: T }, async () => {
  const client = viaA.service('Maintenance') as unknown as { Snapshot: (req: object, opts: object) => grpc.ClientReadableStream<{ blob: Buffer; remaining_bytes: string }> };
  const whole = await new Promise<{ bytes: Buffer; last: string; status: string }>((resolve) => {
    const parts: Buffer[] = [];
    let last = '';
    const call = client.Snapshot({}, { deadline: new Date(Date.now() + 20_000) });
    call.on('data', (m) => {
      parts.push(m.blob);
      last = m.remaining_bytes;
    });
    call.on('error', (e: grpc.ServiceError) => resolve({ bytes: Buffer.concat(parts), last, status: `${Code[e.code]}: ${e.details}` }));
    call.on('end', () => resolve({ bytes: Buffer.concat(parts), last, status: 'OK' }));
  });
  assert.equal(whole.status, 'OK');
  assert.equal(whole.bytes.subarray(0, 26).toString('latin1'), 'ETCD-METAPROXY SNAPSHOT 1\n');
  assert.equal(whole.bytes.length % 512, 32);
  assert.equal(whole.last, '0');

  const cancelled = await new Promise<string>((resolve) => {
    const call = client.Snapshot({}, { deadline: new Date(Date.now() + 20_000) });
    call.on('data', () => call.cancel());
    call.on('error', (e: grpc.ServiceError) => resolve(Code[e.code] ?? String(e.code)));
    call.on('end', () => resolve('end'));
  });
  assert.ok(cancelled === 'CANCELLED' || cancelled === 'end', cancelled);
  await ok(viaA, 'Range', { key: b('x') });
});

test('a message above 64 MiB gets etcd\'s "received message larger than max" error', { timeout: T }, async () => {
  const value = Buffer.alloc(65 * 1024 * 1024, 0x61);
  // A client allowed to send it (RawClient stops at 64 MiB on its own side).
  const KV = etcdService('KV');
  const put = (address: string) =>
    new Promise<Msg>((resolve) => {
      const c = new KV(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 }) as unknown as {
        Put: (req: object, opts: object, cb: (err: grpc.ServiceError | null) => void) => void;
        close: () => void;
      };
      c.Put({ key: b('huge'), value }, { deadline: new Date(Date.now() + 20_000) }, (err) => {
        c.close();
        resolve(err ? { code: Code[err.code], details: err.details } : { ok: true });
      });
    });
  const o = await put(oracle.address);
  const p = await put(viaA.address);
  assert.deepEqual(p, o);
});

// ------------------------------------------------------------------------------------------------
// Last: hidden system keys under "delete everything".

test('DeleteRange over all keys neither deletes nor returns system keys; writes still work', { timeout: T }, async () => {
  await ok(viaA, 'Put', { key: b('zz/a'), value: b('1') });
  const all = await ok(viaB, 'DeleteRange', { key: ZERO, range_end: ZERO, prev_kv: true });
  const hidden = (all.prev_kvs as Msg[]).filter((kv) => kv.key[0] === 0xff && kv.key[1] === 0xff && kv.key[2] === 0xff);
  assert.deepEqual(hidden.map((kv) => kv.key.toString('latin1')), []);
  assert.equal(Number(all.deleted), all.prev_kvs.length);
  const after = await ok(viaA, 'Range', { key: ZERO, range_end: ZERO, count_only: true });
  assert.equal(after.count, '0');
  const cmpAll = await ok(viaA, 'Txn', { compare: [{ target: 0, result: 0, key: ZERO, range_end: ZERO, version: '0' }], success: [], failure: [] });
  assert.equal(cmpAll.succeeded, true, 'a version compare over every key sees no system key');
  const w = await ok(viaA, 'Put', { key: b('zz/b'), value: b('2') });
  const w2 = await ok(viaB, 'Put', { key: b('zy/c'), value: b('3') });
  assert.ok(BigInt(w2.header.revision) > BigInt(w.header.revision));
  const final = await ok(viaB, 'Range', { key: ZERO, range_end: ZERO });
  assert.deepEqual((final.kvs as Msg[]).map((kv) => kv.key.toString()), ['zy/c', 'zz/b']);
  const sys = await viaA.kv('Range', { key: Buffer.from([0xff, 0xff, 0xff]), range_end: ZERO });
  assert.ok(sys.ok && sys.res.kvs.length === 0 && sys.res.count === '0');
  const clockKey = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), b('metaproxy/clock')]);
  const sysCmp = await ok(viaB, 'Txn', { compare: [{ target: 0, result: 0, key: clockKey, version: '0' }], success: [opGet(clockKey)], failure: [] });
  assert.equal(sysCmp.succeeded, true, 'a compare on the clock key sees no key');
  assert.equal(sysCmp.responses[0].response_range.kvs.length, 0);
  const sysDel = await ok(viaB, 'DeleteRange', { key: Buffer.from([0xff, 0xff]), range_end: ZERO, prev_kv: true });
  assert.equal(sysDel.deleted, '0');
  await ok(viaA, 'Put', { key: b('zz/c'), value: b('4') });
});

test('a writing txn with a Range at a past revision: history as etcd has it, errors as etcd gives them, nothing written on error', { timeout: T }, async () => {
  const revs: { o: bigint; p: bigint }[] = [];
  for (const v of ['v1', 'v2']) {
    const o = await ok(oracle, 'Put', { key: b('hw/k'), value: b(v) });
    const p = await ok(viaA, 'Put', { key: b('hw/k'), value: b(v) });
    revs.push({ o: BigInt(o.header.revision), p: BigInt(p.header.revision) });
  }
  const at = (side: 'o' | 'p', rev: bigint) => ({
    compare: [],
    success: [opPut('hw/x', 'w'), opGet('hw/k', { revision: String(rev) }), opGet('hw/k')],
    failure: [],
  });
  const o = await oracle.kv('Txn', at('o', revs[0]!.o));
  const p = await viaA.kv('Txn', at('p', revs[0]!.p));
  assert.deepEqual(outcome(p), outcome(o), 'past revision inside a writing txn');
  assert.ok(p.ok);
  assert.equal(p.res.responses[1].response_range.kvs[0].value.toString(), 'v1');
  assert.equal(BigInt(p.res.responses[1].response_range.kvs[0].mod_revision), revs[0]!.p);
  assert.equal(p.res.responses[2].response_range.kvs[0].value.toString(), 'v2');

  // A future revision fails the whole txn and writes nothing.
  const fo = await oracle.kv('Txn', { compare: [], success: [opPut('hw/y', 'w'), opGet('hw/k', { revision: '99999999' })], failure: [] });
  const fp = await viaA.kv('Txn', { compare: [], success: [opPut('hw/y', 'w'), opGet('hw/k', { revision: '99999999' })], failure: [] });
  assert.deepEqual(outcome(fp), outcome(fo), 'future revision inside a writing txn');
  await same('Range', { key: b('hw/y') }, 'nothing written by the failed txn');
});
