import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { EtcdError } from '../src/etcd/errors.js';
import type { Compare, KeyValue, PutRequest, RangeRequest, RequestOp, ResponseOp, TxnRequest } from '../src/etcd/types.js';
import { CompareResult, CompareTarget, SortOrder, SortTarget } from '../src/etcd/types.js';
import { decodeEnvelope, encodeClock, encodeEnvelope } from '../src/shard/envelope.js';
import { Keyspace, CLOCK_KEY } from '../src/shard/keyspace.js';
import { emitsDelete, historyRanges, memberOps, planTxn } from '../src/kv/txn-plan.js';
import type { PlanContext, PlannedOp } from '../src/kv/txn-plan.js';
import { memberShape } from '../src/kv/range-result.js';
import { StateReads } from '../src/kv/txn-state.js';
import type { TxnState } from '../src/kv/txn-state.js';
import { rangeRequest } from '../src/etcd/defaults.js';

const B = (s: string) => Buffer.from(s);
const { EQUAL, GREATER, LESS } = CompareResult;
const { VERSION, CREATE, MOD, VALUE } = CompareTarget;

// ---- request builders (client side) ----

function rangeReq(key: string, end = '', f: Partial<RangeRequest> = {}): RangeRequest {
  return rangeRequest(B(key), B(end), f);
}
const get = (key: string, end = '', f: Partial<RangeRequest> = {}): RequestOp => ({ request_range: rangeReq(key, end, f) });
const put = (key: string, value = 'v', f: Partial<PutRequest> = {}): RequestOp => ({
  request_put: { key: B(key), value: B(value), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false, ...f },
});
const del = (key: string, end = ''): RequestOp => ({ request_delete_range: { key: B(key), range_end: B(end), prev_kv: false } });
const nested = (t: Partial<TxnRequest>): RequestOp => ({ request_txn: txn(t) });
const txn = (t: Partial<TxnRequest>): TxnRequest => ({ compare: [], success: [], failure: [], ...t });

function cmp(target: number, result: number, key: string, operand: bigint | string, end = ''): Compare {
  const c: Compare = { target, result, key: B(key), range_end: B(end) };
  if (target === VALUE) c.value = B(String(operand));
  else if (target === VERSION) c.version = String(operand);
  else if (target === CREATE) c.create_revision = String(operand);
  else if (target === MOD) c.mod_revision = String(operand);
  else c.lease = String(operand);
  return c;
}

// ---- a fake member: member key (latin1) → stored kv ----

interface Stored {
  value: Buffer;
  version: bigint;
  memberMod: bigint;
  memberCreate: bigint;
}
type Member = Map<string, Stored>;

function member(ks: Keyspace, rows: { key: string; mod: bigint; create: bigint; lease?: bigint; value?: string; version?: bigint; memberMod: bigint }[]): Member {
  const m: Member = new Map();
  for (const r of rows) {
    m.set(ks.toMember(B(r.key)).toString('latin1'), {
      value: encodeEnvelope(r.mod, r.create, r.lease ?? 0n, B(r.value ?? 'val-' + r.key)),
      version: r.version ?? 1n,
      memberMod: r.memberMod,
      memberCreate: r.memberMod,
    });
  }
  return m;
}

/** Answers read ops as etcd would (absent range_end = one key; "\0" = unbounded). */
function answer(m: Member, ops: RequestOp[]): ResponseOp[] {
  return ops.map((op) => {
    const r = op.request_range as RangeRequest;
    assert.ok(r, 'state reads are range ops');
    const start = r.key.toString('latin1');
    const end = r.range_end ? r.range_end.toString('latin1') : undefined;
    let keys = [...m.keys()].sort();
    if (end === undefined) keys = keys.filter((k) => k === start);
    else if (end === '\u0000') keys = keys.filter((k) => k >= start);
    else keys = keys.filter((k) => k >= start && k < end);
    if (r.max_mod_revision && r.max_mod_revision !== '0') keys = keys.filter((k) => m.get(k)!.memberMod <= BigInt(r.max_mod_revision));
    const kvs: KeyValue[] = keys.map((k) => {
      const s = m.get(k)!;
      return {
        key: Buffer.from(k, 'latin1'),
        value: s.value,
        version: s.version.toString(),
        mod_revision: s.memberMod.toString(),
        create_revision: s.memberCreate.toString(),
        lease: '0',
      };
    });
    return {
      response: 'response_range',
      response_range: { header: undefined, kvs: r.count_only ? [] : kvs, more: false, count: String(kvs.length) },
    };
  });
}

const NS = new Keyspace();
const noLeases: PlanContext = { ks: NS, leaseIncarnation: () => null };

/** Reads a txn's state from a fake member the way the proxy does. */
function stateFor(t: TxnRequest, m: Member, ks = NS, clock = 500n, memberRev = 90n): { reads: StateReads; state: TxnState } {
  const reads = StateReads.forTxn(t, ks);
  const state = reads.parse(answer(m, reads.memberOps()), clock, memberRev, true);
  return { reads, state };
}

function plan(t: TxnRequest, m: Member, ctx: PlanContext = noLeases) {
  const { state } = stateFor(t, m, ctx.ks);
  return planTxn(t, state, ctx);
}

function rejects(fn: () => unknown, code: status, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof EtcdError, `EtcdError expected, got ${String(err)}`);
    assert.equal(err.code, code);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

const kinds = (ops: PlannedOp[]): unknown[] => ops.map((o) => (o.kind === 'txn' ? { txn: o.succeeded, ops: kinds(o.ops) } : o.kind));

/** Every range_end of member ops/compares is absent or non-empty. */
function assertNoEmptyRangeEnd(ops: RequestOp[], compares: Compare[] = []): void {
  const check = (what: string, o: { range_end?: Buffer | null } | null | undefined) => {
    if (!o) return;
    if ('range_end' in o && o.range_end != null) assert.ok(o.range_end.length > 0, `${what} carries an explicitly empty range_end`);
  };
  for (const op of ops) {
    check('range op', op.request_range);
    check('delete op', op.request_delete_range);
    if (op.request_txn) assertNoEmptyRangeEnd([...op.request_txn.success, ...op.request_txn.failure], op.request_txn.compare);
  }
  for (const c of compares) check('compare', c);
}

// a: meta mod 40, create 10, lease 7, member mod 31; b: meta mod 55, create 55, member mod 44
const rows = () =>
  member(NS, [
    { key: 'a', mod: 40n, create: 10n, lease: 7n, value: 'old-a', version: 3n, memberMod: 31n },
    { key: 'b', mod: 55n, create: 55n, value: 'old-b', version: 1n, memberMod: 44n },
    { key: 'r/1', mod: 60n, create: 60n, memberMod: 50n },
    { key: 'r/2', mod: 61n, create: 61n, memberMod: 51n },
  ]);

describe('planTxn: branch and writes', () => {
  test('chooses success when every compare holds, failure otherwise', () => {
    const t = (mod: bigint) => txn({ compare: [cmp(MOD, EQUAL, 'a', mod), cmp(CREATE, EQUAL, 'zz', 0n)], success: [put('a')], failure: [get('a')] });
    const ok = plan(t(40n), rows());
    assert.equal(ok.succeeded, true);
    assert.deepEqual(kinds(ok.ops), ['put']);
    assert.equal(ok.writes, true);
    const ko = plan(t(41n), rows());
    assert.equal(ko.succeeded, false);
    assert.deepEqual(kinds(ko.ops), ['range']);
    assert.equal(ko.writes, false);
  });

  test('compares use meta fields from the envelope, not member revisions', () => {
    // Member mod of a is 31, meta mod 40.
    assert.equal(plan(txn({ compare: [cmp(MOD, EQUAL, 'a', 31n)] }), rows()).succeeded, false);
    assert.equal(plan(txn({ compare: [cmp(MOD, EQUAL, 'a', 40n)] }), rows()).succeeded, true);
    assert.equal(plan(txn({ compare: [cmp(CREATE, EQUAL, 'a', 10n)] }), rows()).succeeded, true);
    assert.equal(plan(txn({ compare: [cmp(VERSION, EQUAL, 'a', 3n)] }), rows()).succeeded, true);
    assert.equal(plan(txn({ compare: [cmp(VALUE, EQUAL, 'a', 'old-a')] }), rows()).succeeded, true);
    assert.equal(plan(txn({ compare: [cmp(CompareTarget.LEASE, EQUAL, 'a', 7n)] }), rows()).succeeded, true);
  });

  test('range compares see every key of the range', () => {
    assert.equal(plan(txn({ compare: [cmp(MOD, GREATER, 'r/', 59n, 'r0')] }), rows()).succeeded, true);
    assert.equal(plan(txn({ compare: [cmp(MOD, GREATER, 'r/', 60n, 'r0')] }), rows()).succeeded, false);
    assert.equal(plan(txn({ compare: [cmp(CREATE, EQUAL, 'q/', 0n, 'q0')] }), rows()).succeeded, true, 'empty range');
  });

  test('writes: put → true; delete of a missing key, or a range only → false', () => {
    assert.equal(plan(txn({ success: [put('new')] }), rows()).writes, true);
    assert.equal(plan(txn({ success: [del('missing')] }), rows()).writes, false);
    assert.equal(plan(txn({ success: [del('a')] }), rows()).writes, true);
    assert.equal(plan(txn({ success: [del('x/', 'x0')] }), rows()).writes, false, 'empty delete range');
    assert.equal(plan(txn({ success: [del('r/', 'r0')] }), rows()).writes, true);
    assert.equal(plan(txn({ success: [get('a'), get('r/', 'r0')] }), rows()).writes, false);
    assert.equal(plan(txn({}), rows()).writes, false);
    // Only the chosen branch counts.
    assert.equal(plan(txn({ compare: [cmp(MOD, EQUAL, 'a', 1n)], success: [put('a')], failure: [get('a')] }), rows()).writes, false);
    // Nested: a write in the chosen nested branch counts, one in the other branch does not.
    assert.equal(plan(txn({ success: [nested({ success: [put('n')] })] }), rows()).writes, true);
    assert.equal(plan(txn({ success: [nested({ compare: [cmp(VERSION, EQUAL, 'a', 9n)], success: [put('n')], failure: [get('n')] })] }), rows()).writes, false);
  });

  test('nested compares are evaluated on the initial state, before any op runs', () => {
    const t = txn({
      success: [
        put('c'),
        del('a'),
        // Both compares see the state before the txn: c missing, a present.
        nested({ compare: [cmp(CREATE, EQUAL, 'c', 0n), cmp(VERSION, EQUAL, 'a', 3n)], success: [put('then')], failure: [put('else')] }),
      ],
    });
    const p = plan(t, rows());
    assert.deepEqual(kinds(p.ops), ['put', 'delete', { txn: true, ops: ['put'] }]);
    const inner = p.ops[2];
    assert.ok(inner.kind === 'txn' && inner.ops[0].kind === 'put');
    assert.equal((inner.ops[0] as Extract<PlannedOp, { kind: 'put' }>).req.key.toString(), 'then');
  });

  test('the nested txn takes its failure branch when its compare fails', () => {
    const t = txn({ success: [nested({ compare: [cmp(MOD, LESS, 'b', 55n)], success: [put('x')], failure: [get('b'), del('b')] })] });
    const p = plan(t, rows());
    assert.deepEqual(kinds(p.ops), [{ txn: false, ops: ['range', 'delete'] }]);
    assert.equal(p.writes, true);
  });
});

describe('planTxn: puts', () => {
  const putOf = (p: { ops: PlannedOp[] }, i = 0) => {
    const op = p.ops[i];
    assert.equal(op.kind, 'put');
    return op as Extract<PlannedOp, { kind: 'put' }>;
  };

  test('a put of an existing key keeps its create revision; a new key has none yet', () => {
    assert.equal(putOf(plan(txn({ success: [put('a')] }), rows())).create, 10n);
    assert.equal(putOf(plan(txn({ success: [put('new')] }), rows())).create, null);
  });

  test('a plain put sets lease 0 and its own value (value: null = the request value)', () => {
    const p = putOf(plan(txn({ success: [put('a', 'fresh')] }), rows()));
    assert.equal(p.lease, 0n);
    assert.equal(p.value, null);
  });

  test('ignore_value keeps the old value, ignore_lease keeps the old lease', () => {
    const iv = putOf(plan(txn({ success: [put('a', '', { ignore_value: true })] }), rows()));
    assert.deepEqual(iv.value, B('old-a'));
    assert.equal(iv.lease, 0n);
    const il = putOf(plan(txn({ success: [put('a', 'new-a', { ignore_lease: true })] }), rows()));
    assert.equal(il.lease, 7n);
    assert.equal(il.value, null);
    const both = putOf(plan(txn({ success: [put('a', '', { ignore_value: true, ignore_lease: true })] }), rows()));
    assert.deepEqual([both.value, both.lease], [B('old-a'), 7n]);
  });

  test('ignore_value / ignore_lease on a missing key → "etcdserver: key not found"', () => {
    rejects(() => plan(txn({ success: [put('missing', '', { ignore_value: true })] }), rows()), status.INVALID_ARGUMENT, 'etcdserver: key not found');
    rejects(() => plan(txn({ success: [put('missing', 'x', { ignore_lease: true })] }), rows()), status.INVALID_ARGUMENT, 'etcdserver: key not found');
    // Only on the chosen path.
    const other = plan(txn({ compare: [cmp(VERSION, EQUAL, 'a', 0n)], success: [put('missing', '', { ignore_value: true })], failure: [get('a')] }), rows());
    assert.equal(other.succeeded, false);
  });

  test('a non-zero lease that does not exist → NOT_FOUND "etcdserver: requested lease not found"', () => {
    rejects(() => plan(txn({ success: [put('a', 'v', { lease: '123' })] }), rows()), status.NOT_FOUND, 'etcdserver: requested lease not found');
    rejects(() => plan(txn({ success: [nested({ success: [put('k', 'v', { lease: '-5' })] })] }), rows()), status.NOT_FOUND, 'etcdserver: requested lease not found');
    const withLease = putOf(plan(txn({ success: [put('a', 'v', { lease: '123' })] }), rows(), { ks: NS, leaseIncarnation: (id) => (id === 123n ? 7n : null) }));
    assert.equal(withLease.lease, 123n);
  });

  test('a put of a reserved key is refused', () => {
    const k = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), B('x')]).toString('latin1');
    const t = txn({ success: [{ request_put: { key: Buffer.from(k, 'latin1'), value: B('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } }] });
    rejects(() => plan(t, rows()), status.INVALID_ARGUMENT, /reserved/);
  });

  test('a Range at a past revision is planned as history: read apart, never sent in the member txn', () => {
    const ks = new Keyspace();
    const p = plan(txn({ success: [put('a', 'x'), get('a', '', { revision: '5' }), nested({ success: [get('b', '', { revision: '3' })] })] }), rows());
    assert.deepEqual(historyRanges(p.ops).map((r) => [r.key.toString(), r.revision]), [['a', '5'], ['b', '3']]);
    const ops = memberOps(p.ops, 10n, ks);
    assert.equal(JSON.stringify(ops).includes('"request_range"'), false, 'no historical range in the member txn');
  });
});

describe('memberOps', () => {
  test('puts carry envelopes at the txn revision; nested txns stay nested on a write path, flat on a read path', () => {
    const ks = new Keyspace(B('/ns/'));
    const m = member(ks, [{ key: 'a', mod: 40n, create: 10n, lease: 7n, value: 'old-a', memberMod: 31n }]);
    const t = txn({
      success: [
        put('a', '', { ignore_value: true, ignore_lease: true, prev_kv: true }),
        nested({ success: [put('b', 'vb'), nested({ success: [put('c', 'vc')] }), get('a')] }),
        del('x'),
        put('d', 'vd'),
      ],
    });
    const { state } = stateFor(t, m, ks);
    const p = planTxn(t, state, { ks, leaseIncarnation: () => null });
    const ops = memberOps(p.ops, 1234n, ks);
    const shape = (list: RequestOp[]): unknown[] =>
      list.map((o) =>
        o.request_put
          ? `put ${o.request_put.key}`
          : o.request_range
            ? `range ${o.request_range.key}`
            : o.request_txn
              ? { txn: shape(o.request_txn.success), compare: o.request_txn.compare.length }
              : `delete ${o.request_delete_range?.key}`,
      );
    // Nested txns keep their level (no compare: the proxy chose the branch), so etcd's per-level
    // limits and duplicate-key rules apply to the member as to the client. The delete of the
    // missing x is still sent on a write path.
    assert.deepEqual(shape(ops), [
      'put /ns/a',
      { txn: ['put /ns/b', { txn: ['put /ns/c'], compare: 0 }, 'range /ns/a'], compare: 0 },
      'delete /ns/x',
      'put /ns/d',
    ]);
    const inner = ops[1].request_txn!.success;
    const env = (op: RequestOp) => decodeEnvelope(op.request_put!.value);
    assert.deepEqual(env(ops[0]), { mod: 1234n, create: 10n, lease: 7n, value: B('old-a'), delta: 0n });
    assert.equal(ops[0].request_put!.prev_kv, true);
    assert.deepEqual(env(inner[0]), { mod: 1234n, create: 1234n, lease: 0n, value: B('vb'), delta: 0n });
    assert.deepEqual(env(inner[1].request_txn!.success[0]), { mod: 1234n, create: 1234n, lease: 0n, value: B('vc'), delta: 0n });
    assert.deepEqual(env(ops[3]), { mod: 1234n, create: 1234n, lease: 0n, value: B('vd'), delta: 0n });
    // Single-key range and delete as member ranges [k, k\0).
    assert.deepEqual(inner[2].request_range!.range_end, B('/ns/a\0'));
    assert.deepEqual(ops[2].request_delete_range!.range_end, B('/ns/x\0'));
    // A read-only path flattens (a member txn with a nested txn would go through raft).
    const ro = planTxn(txn({ success: [get('a'), nested({ success: [get('b')] })] }), state, { ks, leaseIncarnation: () => null });
    assert.deepEqual(shape(memberOps(ro.ops, 0n, ks, true)), ['range /ns/a', 'range /ns/b']);
  });

  test('a read-only path leaves out deletes that hit nothing', () => {
    const t = txn({ success: [get('a'), del('missing'), del('y/', 'y0')] });
    const { state } = stateFor(t, rows());
    const p = planTxn(t, state, noLeases);
    assert.equal(p.writes, false);
    const ro = memberOps(p.ops, 500n, NS, true);
    assert.deepEqual(ro.map((o) => Object.keys(o)[0]), ['request_range']);
    const rw = memberOps(p.ops, 500n, NS, false);
    assert.deepEqual(rw.map((o) => Object.keys(o)[0]), ['request_range', 'request_delete_range', 'request_delete_range']);
    assert.equal(emitsDelete({ range: null, hits: true }, false), false);
    assert.equal(emitsDelete({ range: { start: B('a'), end: B('b') }, hits: false }, true), false);
    assert.equal(emitsDelete({ range: { start: B('a'), end: B('b') }, hits: true }, true), true);
  });

  test('range ops: shaped by memberShape; from-key clipped below the reserved area', () => {
    const reqs = [
      rangeReq('r/', 'r0', { limit: '1' }),
      rangeReq('r/', 'r0', { limit: '1', sort_target: SortTarget.MOD, sort_order: SortOrder.ASCEND }),
      rangeReq('r/', 'r0', { limit: '2', sort_order: SortOrder.DESCEND }),
      rangeReq('a', '\0'),
      rangeReq('\0', '\0', { count_only: true, limit: '3' }),
    ];
    const p = plan(txn({ success: reqs.map((r) => ({ request_range: r })) }), rows());
    const ops = memberOps(p.ops, 1n, NS).map((o) => o.request_range as unknown as Record<string, unknown>);
    assert.equal(ops.length, 5);
    ops.forEach((o, i) => {
      const shape = memberShape(reqs[i]);
      assert.equal(o.limit, shape.limit.toString(), `op ${i} limit`);
      assert.equal(o.sort_order, shape.sortDescendingByKey ? SortOrder.DESCEND : SortOrder.NONE, `op ${i} order`);
      assert.equal(!!o.count_only, shape.countOnly, `op ${i} count_only`);
    });
    // Concretely: an explicit sort on another target fetches everything; a key DESCEND is pushed.
    assert.equal(ops[1].limit, '0');
    assert.equal(ops[2].sort_order, SortOrder.DESCEND);
    assert.ok(BigInt(ops[2].limit as string) >= 2n);
    assert.equal(ops[4].count_only, true);
    assert.deepEqual(ops[3].key, B('a'));
    assert.deepEqual(ops[3].range_end, Buffer.from([0xff, 0xff, 0xff]));
    assert.deepEqual(ops[4].key, Buffer.from([0]));
    assert.deepEqual(ops[4].range_end, Buffer.from([0xff, 0xff, 0xff]));
  });
});

describe('StateReads', () => {
  test('reads every compared, put and deleted key of both branches, nested included, once', () => {
    const t = txn({
      compare: [cmp(MOD, EQUAL, 'a', 1n), cmp(MOD, GREATER, 'r/', 0n, 'r0')],
      success: [put('a'), get('g'), del('d'), nested({ compare: [cmp(VERSION, EQUAL, 'n', 0n)], success: [put('p')], failure: [del('x/', 'x0')] })],
      failure: [put('b'), put('a', 'again')],
    });
    const reads = StateReads.forTxn(t, NS);
    const ops = reads.memberOps();
    const desc = ops.map((o) => {
      const r = o.request_range!;
      return `${r.key}${r.range_end ? '..' + r.range_end : ''}${r.count_only ? ' count' : ''}`;
    });
    assert.deepEqual(desc, ['a', 'r/..r0', 'd', 'n', 'p', 'x/..x0 count', 'b']);
    assertNoEmptyRangeEnd(ops);
  });

  test('parse decodes envelopes into meta state', () => {
    const t = txn({ compare: [cmp(MOD, EQUAL, 'a', 1n), cmp(MOD, EQUAL, 'missing', 0n), cmp(MOD, GREATER, 'r/', 0n, 'r0')], success: [del('r/', 'r0')] });
    const { state } = stateFor(t, rows(), NS, 777n, 91n);
    assert.equal(state.clock, 777n);
    const a = state.key(B('a'));
    assert.ok(a);
    assert.deepEqual(
      { mod: a.mod, create: a.create, lease: a.lease, version: a.version, memberMod: a.memberMod, value: a.value.toString() },
      { mod: 40n, create: 10n, lease: 7n, version: 3n, memberMod: 31n, value: 'old-a' },
    );
    assert.equal(state.key(B('missing')), null);
    assert.deepEqual(
      state.compared(cmp(MOD, GREATER, 'r/', 0n, 'r0')).map((kv) => [kv.key.toString(), kv.mod]),
      [
        ['r/1', 60n],
        ['r/2', 61n],
      ],
    );
    assert.equal(state.deletesSomething(B('r/'), B('r0')), true);
    assert.equal(state.deletesSomething(B('a'), Buffer.alloc(0)), true);
    assert.equal(state.deletesSomething(B('missing'), Buffer.alloc(0)), false);
  });

  test('pins: MOD(key) == member mod for every key read, 0 for a missing key', () => {
    const t = txn({ compare: [cmp(MOD, EQUAL, 'a', 40n)], success: [put('b'), put('new')], failure: [del('gone')] });
    const { reads, state } = stateFor(t, rows());
    const pins = reads.pins(state);
    assert.deepEqual(
      pins.map((c) => [c.target, c.result, c.key.toString(), c.mod_revision]),
      [
        [MOD, EQUAL, 'a', '31'],
        [MOD, EQUAL, 'b', '44'],
        [MOD, EQUAL, 'new', '0'],
        [MOD, EQUAL, 'gone', '0'],
      ],
    );
    assertNoEmptyRangeEnd([], pins);
  });

  test('pins use member keys (namespace) and skip reserved keys', () => {
    const ks = new Keyspace(B('/ns/'));
    const m = member(ks, [{ key: 'a', mod: 40n, create: 10n, memberMod: 31n }]);
    const { reads, state } = stateFor(txn({ compare: [cmp(MOD, EQUAL, 'a', 40n)] }), m, ks);
    assert.deepEqual(reads.pins(state).map((c) => [c.key.toString(), c.mod_revision]), [['/ns/a', '31']]);

    const reserved = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), B('metaproxy/clock')]);
    const t = txn({ compare: [{ ...cmp(MOD, EQUAL, 'x', 0n), key: reserved }] });
    const s2 = stateFor(t, rows());
    assert.deepEqual(s2.reads.pins(s2.state), []);
    assert.equal(s2.state.key(reserved), null, 'a reserved key reads as missing');
    // Its read is a harmless count of the clock key, not a read of the clock itself.
    const r = s2.reads.memberOps()[0].request_range!;
    assert.equal(r.count_only, true);
  });

  test('a compared range is pinned: nothing new in it and every key read unchanged', () => {
    const t = txn({ compare: [cmp(MOD, GREATER, 'r/', 0n, 'r0')], success: [put('r/3')] });
    const { reads, state } = stateFor(t, rows(), NS, 500n, 90n);
    const pins = reads.pins(state);
    assertNoEmptyRangeEnd([], pins);
    // r/3 (missing) is pinned as a key; the range needs more than key pins.
    assert.ok(pins.some((c) => c.key.toString() === 'r/3' && c.mod_revision === '0'));
    const rangePins = pins.filter((c) => c.key.toString() !== 'r/3');
    assert.ok(rangePins.length > 0, 'a compared range must add a pin');
    const clockPin = rangePins.find((c) => c.key.equals(CLOCK_KEY));
    if (clockPin) {
      assert.deepEqual([clockPin.target, clockPin.result, clockPin.value], [VALUE, EQUAL, encodeClock(500n)]);
    } else {
      // Per-range pin: no key in [r/, r0) modified after the read, and r/1, r/2 unchanged.
      assert.deepEqual(
        rangePins.map((c) => [c.target, c.result, c.key.toString(), c.range_end?.toString() ?? '', c.mod_revision]),
        [
          [MOD, LESS, 'r/', 'r0', '91'],
          [MOD, EQUAL, 'r/1', '', '50'],
          [MOD, EQUAL, 'r/2', '', '51'],
        ],
      );
    }
  });

  test('a compared range with many keys is pinned key by key, or by the shard clock past maxPins', () => {
    const many = member(
      NS,
      Array.from({ length: 40 }, (_, i) => ({ key: `m/${String(i).padStart(2, '0')}`, mod: 100n + BigInt(i), create: 100n, memberMod: 200n + BigInt(i) })),
    );
    const { reads, state } = stateFor(txn({ compare: [cmp(MOD, GREATER, 'm/', 0n, 'm0')], success: [put('m/00')] }), many, NS, 4242n);
    const perKey = reads.pins(state);
    assert.equal(perKey.filter((c) => c.key.equals(CLOCK_KEY)).length, 0);
    assert.ok(perKey.length >= 41, `every key of the range and the range itself are pinned (${perKey.length} pins)`);
    const bounded = reads.pins(state, 32);
    assert.equal(bounded.length, 1);
    assert.deepEqual([bounded[0].key, bounded[0].target, bounded[0].result, bounded[0].value], [CLOCK_KEY, VALUE, EQUAL, encodeClock(4242n)]);
    assertNoEmptyRangeEnd([], perKey);
  });

  test('an empty compared range is still pinned (a key created in it must fail the txn)', () => {
    const { reads, state } = stateFor(txn({ compare: [cmp(CREATE, EQUAL, 'e/', 0n, 'e0')], success: [put('z')] }), rows());
    const pins = reads.pins(state).filter((c) => c.key.toString() !== 'z');
    assert.ok(pins.length >= 1);
    assertNoEmptyRangeEnd([], pins);
  });
});
