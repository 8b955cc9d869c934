/** Which shards a client txn touches: every key it compares, reads or writes, nested txns included. */
import type { RequestOp, TxnRequest } from '../etcd/types.js';
import type { Router } from '../partition/router.js';

export function txnShards(txn: TxnRequest, router: Router): Set<number> {
  const out = new Set<number>();
  const addRange = (key: Buffer, end: Buffer) => {
    for (const s of router.shardsForRange(key, end)) out.add(s);
  };
  const visit = (t: TxnRequest) => {
    for (const c of t.compare) addRange(c.key, c.range_end);
    for (const op of [...t.success, ...t.failure]) visitOp(op);
  };
  const visitOp = (op: RequestOp) => {
    if (op.request_range) addRange(op.request_range.key, op.request_range.range_end);
    else if (op.request_put) out.add(router.shardOf(op.request_put.key));
    else if (op.request_delete_range) addRange(op.request_delete_range.key, op.request_delete_range.range_end);
    else if (op.request_txn) visit(op.request_txn);
  };
  visit(txn);
  return out;
}
