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

/** Nested levels `pinned` adds above the ops for this many pins. */
export function chainDepth(pins: number): number {
  return pins <= PINS_PER_LEVEL ? 0 : Math.ceil(pins / PINS_PER_LEVEL) - 1;
}

/**
 * The response of the innermost txn of a pin chain of `depth` links (the one holding the
 * job's ops), or the first link whose pins failed. The depth is given, not guessed: a job's own
 * ops may be a single nested txn, which looks like a chain link.
 */
export function innermost(t: TxnResponse | undefined, depth: number): TxnResponse | undefined {
  let cur = t;
  for (let d = 0; d < depth && cur?.succeeded; d++) cur = cur.responses[0]?.response_txn;
  return cur;
}

/** Ops a txn needs under etcd's --max-txn-ops: its widest part plus what its nested txns need. */
export function txnNeed(t: TxnRequest): number {
  let nested = 0;
  for (const op of [...t.success, ...t.failure]) if (op.request_txn) nested = Math.max(nested, txnNeed(op.request_txn));
  return Math.max(t.compare.length, t.success.length, t.failure.length) + nested;
}

