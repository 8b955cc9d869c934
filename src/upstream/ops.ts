/**
 * Builders for the etcd requests the proxy sends to any upstream cluster (a member shard or the
 * coordinator), and the create-once record write built from them.
 */
import type { Compare, RangeRequest, RequestOp } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import type { Upstream } from './upstream.js';

/**
 * A range op. An empty range_end is left out rather than sent empty: etcd (gogoproto)
 * decodes an explicitly empty range_end as a non-nil empty slice, which means "every key from
 * `key` on", not "the key alone".
 */
export function rangeOp(key: Buffer, rangeEnd: Buffer = Buffer.alloc(0), extra: Partial<RangeRequest> = {}): RequestOp {
  const req: Partial<RangeRequest> = { key, ...extra };
  if (rangeEnd.length) req.range_end = rangeEnd;
  // Fields left out are proto3 defaults to the encoder; the generated type lists every field.
  return { request_range: req as RangeRequest };
}

export function putOp(key: Buffer, value: Buffer, prevKv = false): RequestOp {
  return { request_put: { key, value, prev_kv: prevKv } as RequestOp['request_put'] };
}

/** A compare. No range_end: an empty one sent explicitly made etcd 3.4 misjudge the compare. */
export function cmp(target: number, result: number, key: Buffer, field: Partial<Compare>): Compare {
  return { target, result, key, ...field } as Compare;
}

/**
 * Puts `value` at `key` unless the key exists (one txn): null when it was created, else the
 * value already there. Used for the records the proxy creates once (clocks, names, maps).
 */
export async function createIfAbsent(upstream: Upstream, key: Buffer, value: Buffer): Promise<Buffer | null> {
  const res = await upstream.txn(
    {
      compare: [cmp(CompareTarget.CREATE, CompareResult.EQUAL, key, { create_revision: '0' })],
      success: [putOp(key, value)],
      failure: [rangeOp(key)],
    },
    false,
  );
  return res.succeeded ? null : (res.responses[0]?.response_range?.kvs[0]?.value ?? Buffer.alloc(0));
}
