import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { EtcdError } from '../src/etcd/errors.js';
import { checkDelete, checkPut, checkRange, checkTxn } from '../src/etcd/validate.js';
import type { Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../src/etcd/types.js';
import { CompareResult, CompareTarget, SortOrder, SortTarget } from '../src/etcd/types.js';
import { rangeRequest } from '../src/etcd/defaults.js';

const LIMITS = { maxTxnOps: 128 };

const MSG = {
  emptyKey: 'etcdserver: key is not provided',
  keyNotFound: 'etcdserver: key not found',
  valueProvided: 'etcdserver: value is provided',
  leaseProvided: 'etcdserver: lease is provided',
  tooManyOps: 'etcdserver: too many operations in txn request',
  duplicateKey: 'etcdserver: duplicate key given in txn request',
  invalidSort: 'etcdserver: invalid sort option',
};

function rangeReq(key: string, end = '', f: Partial<RangeRequest> = {}): RangeRequest {
  return rangeRequest(Buffer.from(key), Buffer.from(end), f);
}

function putReq(key: string, f: Partial<PutRequest> = {}): PutRequest {
  return { key: Buffer.from(key), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false, ...f };
}

function delReq(key: string, end = ''): DeleteRangeRequest {
  return { key: Buffer.from(key), range_end: Buffer.from(end), prev_kv: false };
}

const get = (key: string, end = ''): RequestOp => ({ request: 'request_range', request_range: rangeReq(key, end) });
const put = (key: string, f: Partial<PutRequest> = {}): RequestOp => ({ request: 'request_put', request_put: putReq(key, f) });
const del = (key: string, end = ''): RequestOp => ({ request: 'request_delete_range', request_delete_range: delReq(key, end) });
const txnOp = (t: Partial<TxnRequest>): RequestOp => ({ request: 'request_txn', request_txn: txn(t) });

function txn(t: Partial<TxnRequest>): TxnRequest {
  return { compare: [], success: [], failure: [], ...t };
}

function cmp(key: string): Compare {
  return { target: CompareTarget.MOD, result: CompareResult.EQUAL, key: Buffer.from(key), mod_revision: '0', range_end: Buffer.alloc(0) };
}

function rejects(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof EtcdError, `EtcdError expected, got ${String(err)}`);
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.message, message);
    return true;
  });
}

const n = <T>(count: number, f: (i: number) => T): T[] => Array.from({ length: count }, (_, i) => f(i));

describe('single requests', () => {
  test('empty keys', () => {
    rejects(() => checkRange(rangeReq('')), MSG.emptyKey);
    rejects(() => checkRange(rangeReq('', 'z')), MSG.emptyKey);
    rejects(() => checkPut(putReq('')), MSG.emptyKey);
    rejects(() => checkDelete(delReq('')), MSG.emptyKey);
    rejects(() => checkDelete(delReq('', 'z')), MSG.emptyKey);
    checkRange(rangeReq('a'));
    checkPut(putReq('a'));
    checkDelete(delReq('a'));
    checkRange(rangeReq('\0', '\0'));
  });

  test('ignore_value with a value, ignore_lease with a lease', () => {
    rejects(() => checkPut(putReq('a', { ignore_value: true, value: Buffer.from('x') })), MSG.valueProvided);
    checkPut(putReq('a', { ignore_value: true, value: Buffer.alloc(0) }));
    rejects(() => checkPut(putReq('a', { ignore_lease: true, lease: '5' })), MSG.leaseProvided);
    rejects(() => checkPut(putReq('a', { ignore_lease: true, lease: '-1' })), MSG.leaseProvided);
    checkPut(putReq('a', { ignore_lease: true, lease: '0' }));
    // Empty key is checked first.
    rejects(() => checkPut(putReq('', { ignore_value: true, value: Buffer.from('x') })), MSG.emptyKey);
    // ignore_value is checked before ignore_lease.
    rejects(
      () => checkPut(putReq('a', { ignore_value: true, value: Buffer.from('x'), ignore_lease: true, lease: '5' })),
      MSG.valueProvided,
    );
  });

  test('invalid sort options', () => {
    rejects(() => checkRange(rangeReq('a', '', { sort_order: 3 as RangeRequest['sort_order'] })), MSG.invalidSort);
    rejects(() => checkRange(rangeReq('a', '', { sort_target: 5 as RangeRequest['sort_target'] })), MSG.invalidSort);
    checkRange(rangeReq('a', '', { sort_order: SortOrder.DESCEND, sort_target: SortTarget.VALUE }));
  });
});

describe('txn: empty keys and empty ops', () => {
  test('empty keys in compares and ops', () => {
    rejects(() => checkTxn(txn({ compare: [cmp('')] }), LIMITS), MSG.emptyKey);
    rejects(() => checkTxn(txn({ success: [get('')] }), LIMITS), MSG.emptyKey);
    rejects(() => checkTxn(txn({ failure: [put('')] }), LIMITS), MSG.emptyKey);
    rejects(() => checkTxn(txn({ success: [del('')] }), LIMITS), MSG.emptyKey);
    rejects(() => checkTxn(txn({ success: [txnOp({ compare: [cmp('')] })] }), LIMITS), MSG.emptyKey);
    rejects(() => checkTxn(txn({ failure: [txnOp({ failure: [put('', {})] })] }), LIMITS), MSG.emptyKey);
    rejects(() => checkTxn(txn({ success: [put('a', { ignore_lease: true, lease: '1' })] }), LIMITS), MSG.leaseProvided);
  });

  test('an empty RequestOp is "key not found"', () => {
    rejects(() => checkTxn(txn({ success: [{}] }), LIMITS), MSG.keyNotFound);
    rejects(() => checkTxn(txn({ failure: [{ request_put: undefined }] }), LIMITS), MSG.keyNotFound);
    rejects(() => checkTxn(txn({ success: [txnOp({ success: [{}] })] }), LIMITS), MSG.keyNotFound);
  });

  test('an empty txn is fine', () => {
    checkTxn(txn({}), LIMITS);
  });
});

describe('txn: too many ops', () => {
  test('128 of each is allowed, 129 of any is not', () => {
    checkTxn(txn({ compare: n(128, (i) => cmp(`k${i}`)), success: n(128, (i) => put(`k${i}`)), failure: n(128, (i) => get(`k${i}`)) }), LIMITS);
    rejects(() => checkTxn(txn({ compare: n(129, (i) => cmp(`k${i}`)) }), LIMITS), MSG.tooManyOps);
    rejects(() => checkTxn(txn({ success: n(129, (i) => get(`k${i}`)) }), LIMITS), MSG.tooManyOps);
    rejects(() => checkTxn(txn({ failure: n(129, (i) => put(`k${i}`)) }), LIMITS), MSG.tooManyOps);
  });

  test('the count is checked before empty keys', () => {
    rejects(() => checkTxn(txn({ compare: [cmp('')], success: n(129, (i) => get(`k${i}`)) }), LIMITS), MSG.tooManyOps);
  });

  test('a configured limit applies', () => {
    rejects(() => checkTxn(txn({ success: n(3, (i) => get(`k${i}`)) }), { maxTxnOps: 2 }), MSG.tooManyOps);
    checkTxn(txn({ success: n(2, (i) => get(`k${i}`)) }), { maxTxnOps: 2 });
  });

  test('nested txns count against what the outer txn leaves (etcd: maxTxnOps - opc)', () => {
    // Outer opc = 64 (64 success ops, one of them the nested txn): the nested txn may have 64.
    const outer = (inner: number) =>
      txn({ success: [txnOp({ success: n(inner, (i) => get(`in${i}`)) }), ...n(63, (i) => get(`out${i}`))] });
    checkTxn(outer(64), LIMITS);
    rejects(() => checkTxn(outer(65), LIMITS), MSG.tooManyOps);
    // The outer opc is the max over compare/success/failure, not their sum.
    const byCompares = (inner: number) =>
      txn({ compare: n(100, (i) => cmp(`c${i}`)), failure: [txnOp({ compare: n(inner, (i) => cmp(`d${i}`)) })] });
    checkTxn(byCompares(28), LIMITS);
    rejects(() => checkTxn(byCompares(29), LIMITS), MSG.tooManyOps);
    // Two levels: 128 - 2 = 126 for the first nested txn (opc 2), 124 for the second.
    const deep = (inner: number) =>
      txn({
        success: [get('a'), txnOp({ success: [get('b'), txnOp({ success: n(inner, (i) => get(`x${i}`)) })] })],
      });
    checkTxn(deep(124), LIMITS);
    rejects(() => checkTxn(deep(125), LIMITS), MSG.tooManyOps);
  });
});

describe('txn: duplicate keys', () => {
  const ok = (ops: RequestOp[]) => {
    checkTxn(txn({ success: ops }), LIMITS);
    checkTxn(txn({ failure: ops }), LIMITS);
  };
  const dup = (ops: RequestOp[]) => {
    rejects(() => checkTxn(txn({ success: ops }), LIMITS), MSG.duplicateKey);
    rejects(() => checkTxn(txn({ failure: ops }), LIMITS), MSG.duplicateKey);
  };

  test('two puts of one key', () => {
    dup([put('a'), put('a')]);
    dup([put('a'), get('b'), put('b'), put('a')]);
    ok([put('a'), put('b')]);
    ok([put('a'), get('a'), get('a')]);
    // Keys are compared as bytes: non-UTF-8 keys that decode to the same string differ.
    ok([
      { request_put: { ...putReq('x'), key: Buffer.from([0xff]) } },
      { request_put: { ...putReq('x'), key: Buffer.from([0xfe]) } },
    ]);
  });

  test('a put and a delete covering it', () => {
    dup([put('a'), del('a')]);
    dup([del('a'), put('a')]);
    dup([put('b'), del('a', 'c')]);
    dup([put('a'), del('a', 'c')]);
    ok([put('c'), del('a', 'c')]);
    ok([put('a'), del('b')]);
    ok([put('a'), del('b', 'z')]);
    ok([del('a'), del('a'), del('a', 'z')]);
    // etcd quirk (checked against etcd 3.4): a from-key delete (range_end "\0") is not
    // checked against puts, because etcd builds the interval ["a", "\0") literally.
    ok([put('b'), del('a', '\0')]);
    ok([put('a'), del('a', '\0')]);
  });

  test('nested txn put duplicating an outer put or delete', () => {
    dup([put('a'), txnOp({ success: [put('a')] })]);
    dup([put('a'), txnOp({ failure: [put('a')] })]);
    dup([txnOp({ success: [put('a')] }), put('a')]);
    dup([del('a', 'b'), txnOp({ success: [put('a')] })]);
    dup([del('a', 'b'), txnOp({ failure: [put('a')] })]);
    // A delete inside a nested txn against a put of the outer level.
    dup([put('a'), txnOp({ success: [del('a')] })]);
    dup([put('b'), txnOp({ failure: [del('a', 'c')] })]);
    // Two nested txns putting the same key.
    dup([txnOp({ success: [put('a')] }), txnOp({ success: [put('a')] })]);
    dup([txnOp({ success: [put('a')] }), txnOp({ failure: [put('a')] })]);
    ok([put('a'), txnOp({ success: [put('b')], failure: [del('c')] })]);
    ok([put('a'), txnOp({ success: [get('a')] })]);
  });

  test('then and else of one nested txn may put the same key', () => {
    ok([txnOp({ success: [put('a')], failure: [put('a')] })]);
    ok([txnOp({ success: [put('a'), put('b')], failure: [put('b'), put('a')] })]);
    // A nested txn's deletes are merged only after its own puts were checked (as etcd does).
    ok([txnOp({ success: [del('a')], failure: [put('a')] })]);
    dup([txnOp({ success: [del('a')], failure: [put('b')] }), txnOp({ success: [put('a')] })]);
    // ... but each branch on its own may not.
    dup([txnOp({ success: [put('a'), put('a')] })]);
    dup([txnOp({ success: [put('a')], failure: [put('a'), put('a')] })]);
  });

  test('then/else put in one nested txn does not excuse a clash with another nested txn', () => {
    dup([txnOp({ success: [put('a')] }), txnOp({ success: [put('a')], failure: [put('a')] })]);
    dup([txnOp({ success: [put('a')], failure: [put('a')] }), txnOp({ failure: [put('a')] })]);
  });

  test('success and failure branches are checked separately', () => {
    checkTxn(txn({ success: [put('a')], failure: [put('a')] }), LIMITS);
    checkTxn(txn({ success: [put('a')], failure: [del('a')] }), LIMITS);
  });
});
