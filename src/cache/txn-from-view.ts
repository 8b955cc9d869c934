/**
 * A read-only Txn answered from the cache at one revision: compares and ranges all read the
 * same trees, synchronously, so the answer is one consistent state (as kv/txn-snapshot.ts
 * gives from the members, with the same response shape).
 */
import type { Compare, RequestOp, ResponseOp, TxnRequest } from '../etcd/types.js';
import { rangeRequest } from '../etcd/defaults.js';
import { evalCompare } from '../kv/compare.js';
import { revHeader } from '../etcd/header.js';
import type { Router } from '../partition/router.js';
import { toWire } from '../shard/meta-kv.js';
import { rangeFromView, type CacheView } from './range-from-view.js';
import { decodeKeyValue } from '../wire/encoded-kv.js';

export interface CachedTxn {
  succeeded: boolean;
  responses: ResponseOp[];
}

/** True when etcd would serve the txn serializably: every op of both branches is a serializable range. */
export function txnSerializable(t: TxnRequest): boolean {
  return [...t.success, ...t.failure].every((op) => !!op.request_range?.serializable);
}

export function txnFromView(view: CacheView, t: TxnRequest, router: Router): CachedTxn {
  const read = (key: Buffer, end: Buffer) => {
    const r = rangeRequest(key, end);
    return rangeFromView(view, r, router.shardsForRange(r.key, r.range_end)).kvs.map((e) => ({ ...decodeKeyValue(e), memberMod: 0n }));
  };
  const holds = (cs: Compare[]) => cs.every((c) => evalCompare(c, read(c.key, c.range_end)));
  const run = (txn: TxnRequest): CachedTxn => {
    const succeeded = holds(txn.compare);
    const ops: RequestOp[] = succeeded ? txn.success : txn.failure;
    const responses = ops.map((op): ResponseOp => {
      if (op.request_range) {
        const r = op.request_range;
        const out = rangeFromView(view, r, router.shardsForRange(r.key, r.range_end));
        const kvs = out.kvs.map((e) => toWire({ ...decodeKeyValue(e), memberMod: 0n }));
        return { response: 'response_range', response_range: { header: revHeader(view.rev), kvs, more: out.more, count: out.count.toString() } };
      }
      const nested = run(op.request_txn as TxnRequest);
      return { response: 'response_txn', response_txn: { header: revHeader(0n), ...nested } };
    });
    return { succeeded, responses };
  };
  return run(t);
}
