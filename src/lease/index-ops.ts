/**
 * The lease index ops that ride in the same member txn as a client's put or delete (keys.ts):
 * attaching a key writes its entry, detaching (another lease, no lease, deleting the key)
 * removes the old one. A range delete leaves its keys' entries behind: an entry is only a hint
 * that the reaper and TimeToLive check against the key's own envelope.
 */
import type { RequestOp } from '../etcd/types.js';
import { putOp } from '../upstream/ops.js';
import { encodeIncarnation, indexKey } from './keys.js';

export interface LeaseChange {
  /** The lease the key held before (0: none). */
  prevLease: bigint;
  /** The lease it holds after (0: none). */
  lease: bigint;
  /** The incarnation it is attached under; null when its entry is kept as it is (ignore_lease). */
  incarnation: bigint | null;
}

export function leaseIndexOps(memberKey: Buffer, c: LeaseChange): RequestOp[] {
  if (c.incarnation === null) return [];
  const out: RequestOp[] = [];
  if (c.prevLease !== 0n && c.prevLease !== c.lease) out.push({ request_delete_range: { key: indexKey(c.prevLease, memberKey), range_end: Buffer.alloc(0), prev_kv: false } });
  if (c.lease !== 0n) out.push(putOp(indexKey(c.lease, memberKey), encodeIncarnation(c.incarnation)));
  return out;
}

/** How many ops leaseIndexOps adds (to step over their answers). */
export function leaseIndexOpCount(c: LeaseChange): number {
  if (c.incarnation === null) return 0;
  return (c.prevLease !== 0n && c.prevLease !== c.lease ? 1 : 0) + (c.lease !== 0n ? 1 : 0);
}
