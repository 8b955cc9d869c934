/** Pins (member compares) chained over nested txn levels, within etcd's per-level op limit. */
import type { Compare, RequestOp, TxnRequest, TxnResponse } from '../etcd/types.js';

/**
 * Pins beyond one txn level's worth are chained in nested txns: etcd evaluates every compare
 * on the path before applying anything, so the chain holds exactly when all pins do.
 */
export const PINS_PER_LEVEL = 100;

export function pinned(pins: Compare[], ops: RequestOp[], elseOps: RequestOp[]): TxnRequest {
  if (pins.length <= PINS_PER_LEVEL) return { compare: pins, success: ops, failure: elseOps };
  return {
    compare: pins.slice(0, PINS_PER_LEVEL),
    success: [{ request_txn: pinned(pins.slice(PINS_PER_LEVEL), ops, []) }],
    failure: elseOps,
  };
}

/** The response of the innermost txn of a pin chain (the one holding the job's ops and marker). */
export function innermost(t: TxnResponse | undefined): TxnResponse | undefined {
  let cur = t;
  // A chain link's success branch is exactly one nested txn; the innermost also has the marker.
  while (cur?.succeeded && cur.responses.length === 1 && cur.responses[0]?.response_txn) cur = cur.responses[0].response_txn;
  return cur;
}

/** Ops a txn needs under etcd's --max-txn-ops: its widest part plus what its nested txns need. */
export function txnNeed(t: TxnRequest): number {
  let nested = 0;
  for (const op of [...t.success, ...t.failure]) if (op.request_txn) nested = Math.max(nested, txnNeed(op.request_txn));
  return Math.max(t.compare.length, t.success.length, t.failure.length) + nested;
}

