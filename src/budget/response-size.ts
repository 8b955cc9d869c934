/**
 * Sizes of responses before they are built, for the memory budget: a cached Range is its
 * encoded KeyValues plus framing; a member Range's decoded KeyValues cost their bytes plus the
 * objects around them.
 */
import type { KeyValue, ResponseOp, TxnRequest } from '../etcd/types.js';

/** Framing of a RangeResponse beyond its KeyValues (header, more, count). */
const RESPONSE_FRAMING = 64;
/** Tag and length prefix of one embedded KeyValue. */
const KV_FRAMING = 6;
/** A decoded KeyValue's objects (the KeyValue, two Buffers, revision strings). */
const KV_OBJECTS = 160;

export function encodedRangeSize(kvs: readonly string[]): number {
  let size = RESPONSE_FRAMING;
  for (const kv of kvs) size += kv.length + KV_FRAMING;
  return size;
}

export function decodedRangeSize(kvs: readonly KeyValue[]): number {
  let size = RESPONSE_FRAMING;
  for (const kv of kvs) size += kv.key.length + kv.value.length + KV_OBJECTS;
  return size;
}

/** The decoded KeyValues a Txn's answer holds, nested txns included. */
export function txnResponseSize(responses: readonly ResponseOp[]): number {
  let size = RESPONSE_FRAMING;
  for (const op of responses) {
    if (op.response_range) size += decodedRangeSize(op.response_range.kvs);
    if (op.response_txn) size += txnResponseSize(op.response_txn.responses);
  }
  return size;
}

/** Ranges with a limit up to this many keys count as small reads. */
const SMALL_LIMIT = 100n;

/** True when a Txn may read many keys (a Range over a range, not a count, no small limit). */
export function txnReadsRanges(t: TxnRequest): boolean {
  for (const op of [...t.success, ...t.failure]) {
    const r = op.request_range;
    const limit = r ? BigInt(r.limit || '0') : 0n;
    if (r && r.range_end.length > 0 && !r.count_only && !(limit > 0n && limit <= SMALL_LIMIT)) return true;
    if (op.request_txn && txnReadsRanges(op.request_txn)) return true;
  }
  return false;
}
