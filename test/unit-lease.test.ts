import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyValue, PutRequest, RequestOp, ResponseOp, TxnRequest } from '../src/etcd/types.js';
import { isDead } from '../src/lease/directory.js';
import { indexKey, indexPrefix, leaseHex, markerId, markerKey, parseEntry, parseLeaseHex, encodeIncarnation } from '../src/lease/keys.js';
import { leaseIndexOpCount, leaseIndexOps } from '../src/lease/index-ops.js';
import { encodeEnvelope } from '../src/shard/envelope.js';
import { Keyspace, prefixEnd } from '../src/shard/keyspace.js';
import { memberOps, planTxn } from '../src/kv/txn-plan.js';
import { assembleOps } from '../src/kv/txn-response.js';
import { StateReads } from '../src/kv/txn-state.js';

const B = (s: string) => Buffer.from(s);
const ks = new Keyspace();

describe('lease keys', () => {
  test('IDs as 16 hex digits of the two\'s complement, both ways, negatives included', () => {
    for (const id of [1n, 4096n, -7n, 9223372036854775807n, -9223372036854775808n]) {
      assert.equal(leaseHex(id).length, 16);
      assert.equal(parseLeaseHex(leaseHex(id)), id);
      assert.equal(markerId(markerKey(id)), id);
    }
    assert.equal(parseLeaseHex('xyz'), null);
    assert.equal(markerId(Buffer.concat([markerKey(5n), B('/x')])), null);
  });

  test('index entries: one prefix per lease, parsed back with key, incarnation and mod', () => {
    const k = Buffer.from([0x00, 0x2f, 0xfe, 0x41]);
    const e = parseEntry(indexKey(-7n, k), encodeIncarnation(1234n), 99n);
    assert.ok(e);
    assert.deepEqual([e.id, e.memberKey, e.incarnation, e.entryMod], [-7n, k, 1234n, 99n]);
    const p = indexPrefix(5n);
    assert.ok(indexKey(5n, B('zzz')).subarray(0, p.length).equals(p));
    assert.ok(Buffer.compare(indexKey(5n, Buffer.from([0xff, 0xff])), prefixEnd(p)) < 0);
    assert.ok(Buffer.compare(indexKey(6n, B('a')), prefixEnd(p)) >= 0, 'the next lease is outside the prefix');
    assert.equal(parseEntry(markerKey(5n), encodeIncarnation(1n), 1n), null, 'a marker is no entry');
  });

  test('a dead attachment: made before the view and not live in it', () => {
    const view = { rev: 100n, live: new Map([[1n, 50n]]), own: new Set<bigint>() };
    assert.equal(isDead(view, 1n, 50n), false, 'live incarnation');
    assert.equal(isDead(view, 1n, 40n), true, 'an older grant of the same ID');
    assert.equal(isDead(view, 2n, 60n), true, 'a lease gone from the view');
    assert.equal(isDead(view, 2n, 101n), false, 'granted after the view was read');
  });
});

describe('lease index ops', () => {
  test('attach, move, detach, keep', () => {
    const k = B('k');
    const kinds = (ops: RequestOp[]) => ops.map((o) => (o.request_put ? ['put', o.request_put.key] : ['del', o.request_delete_range!.key]));
    assert.deepEqual(kinds(leaseIndexOps(k, { prevLease: 0n, lease: 5n, incarnation: 9n })), [['put', indexKey(5n, k)]]);
    assert.deepEqual(kinds(leaseIndexOps(k, { prevLease: 4n, lease: 5n, incarnation: 9n })), [['del', indexKey(4n, k)], ['put', indexKey(5n, k)]]);
    assert.deepEqual(kinds(leaseIndexOps(k, { prevLease: 4n, lease: 0n, incarnation: 0n })), [['del', indexKey(4n, k)]]);
    assert.deepEqual(leaseIndexOps(k, { prevLease: 4n, lease: 4n, incarnation: null }), [], 'ignore_lease keeps the entry');
    for (const c of [
      { prevLease: 0n, lease: 5n, incarnation: 9n },
      { prevLease: 4n, lease: 5n, incarnation: 9n },
      { prevLease: 4n, lease: 4n, incarnation: 9n },
      { prevLease: 4n, lease: 0n, incarnation: 0n },
      { prevLease: 0n, lease: 0n, incarnation: 0n },
    ]) assert.equal(leaseIndexOpCount(c), leaseIndexOps(k, c).length);
  });
});

/** A member holding `a` (lease 4) and `b` (no lease). */
function state(t: TxnRequest) {
  const rows: Record<string, KeyValue> = {
    a: { key: B('a'), value: encodeEnvelope(10n, 10n, 4n, B('va')), create_revision: '3', mod_revision: '3', version: '1', lease: '0' },
    b: { key: B('b'), value: encodeEnvelope(11n, 11n, 0n, B('vb')), create_revision: '4', mod_revision: '4', version: '1', lease: '0' },
  };
  const reads = StateReads.forTxn(t, ks);
  const answers: ResponseOp[] = reads.memberOps().map((op) => {
    const kv = rows[op.request_range!.key.toString('latin1')];
    return { response: 'response_range', response_range: { header: undefined, kvs: kv ? [kv] : [], more: false, count: kv ? '1' : '0' } };
  });
  return reads.parse(answers, 20n, 5n, true);
}

const put = (key: string, f: Partial<PutRequest> = {}): RequestOp => ({
  request_put: { key: B(key), value: B('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false, ...f },
});
const del = (key: string): RequestOp => ({ request_delete_range: { key: B(key), range_end: B(''), prev_kv: true } });

describe('planned writes carry their index ops; responses step over them', () => {
  test('a put moving a key between leases, a delete of a leased key, a put keeping its lease', () => {
    const t: TxnRequest = { compare: [], success: [put('a', { lease: '5', prev_kv: true }), del('b'), put('c', { lease: '5' })], failure: [] };
    const ctx = { ks, leaseIncarnation: (id: bigint) => (id === 5n ? 77n : null) };
    const plan = planTxn(t, state(t), ctx);
    const ops = memberOps(plan.ops, 21n, ks);
    const keys = ops.map((o) => (o.request_put ? `put:${o.request_put.key.toString('latin1')}` : `del:${o.request_delete_range!.key.toString('latin1')}`));
    assert.deepEqual(keys, ['put:a', `del:${indexKey(4n, B('a')).toString('latin1')}`, `put:${indexKey(5n, B('a')).toString('latin1')}`, 'del:b', 'put:c', `put:${indexKey(5n, B('c')).toString('latin1')}`]);
    assert.equal(ops[2]!.request_put!.value.readBigInt64BE(), 77n, 'the entry holds the incarnation');
    // The member's answers, one per op: the client sees only its own three.
    const prev: KeyValue = { key: B('a'), value: encodeEnvelope(10n, 10n, 4n, B('va')), create_revision: '3', mod_revision: '3', version: '1', lease: '0' };
    const member: ResponseOp[] = [
      { response: 'response_put', response_put: { header: undefined, prev_kv: prev } },
      { response: 'response_delete_range', response_delete_range: { header: undefined, deleted: '0', prev_kvs: [] } },
      { response: 'response_put', response_put: { header: undefined, prev_kv: undefined } },
      { response: 'response_delete_range', response_delete_range: { header: undefined, deleted: '1', prev_kvs: [] } },
      { response: 'response_put', response_put: { header: undefined, prev_kv: undefined } },
      { response: 'response_put', response_put: { header: undefined, prev_kv: undefined } },
    ];
    const out = assembleOps(plan.ops, member, { ks, rev: 21n, before: 20n, readOnly: false });
    assert.deepEqual(out.map((r) => r.response), ['response_put', 'response_delete_range', 'response_put']);
    assert.equal(String(out[0]!.response_put!.prev_kv!.lease), '4');
    assert.equal(String(out[1]!.response_delete_range!.deleted), '1');
  });

  test('ignore_lease keeps the key\'s lease and its entry; an unknown lease is refused', () => {
    const t: TxnRequest = { compare: [], success: [put('a', { ignore_lease: true })], failure: [] };
    const plan = planTxn(t, state(t), { ks, leaseIncarnation: () => null });
    const ops = memberOps(plan.ops, 21n, ks);
    assert.equal(ops.length, 1);
    const bad: TxnRequest = { compare: [], success: [put('b', { lease: '6' })], failure: [] };
    assert.throws(() => planTxn(bad, state(bad), { ks, leaseIncarnation: () => null }), /requested lease not found/);
  });
});
