/**
 * A source watch event as member ops: the key in its envelope (the source's mod and create
 * revisions and lease, and the version delta of the key's incarnation: the member's own version
 * counts up with the source's, both adding one per put and restarting after a delete; a key the
 * copy wrote once at a higher version keeps the delta it was copied with, version-deltas.ts),
 * and the lease index entries the proxy keeps beside leased keys (lease/keys.ts).
 */
import type { DeleteRangeRequest, KeyValue, RequestOp } from '../etcd/types.js';
import { indexKey, encodeIncarnation } from '../lease/keys.js';
import { encodeEnvelope } from '../shard/envelope.js';
import type { Keyspace } from '../shard/keyspace.js';
import { putOp } from '../upstream/ops.js';

export const EVENT_PUT = 0;
export const EVENT_DELETE = 1;

/** A watch event as proto-loader decodes it. */
export interface SourceEvent {
  type: number | string;
  kv: KeyValue | null;
  prev_kv: KeyValue | null;
}

/** The member ops of one source event, with the member keys they touch (etcd allows one op per key per txn). */
export interface MemberWrite {
  ops: RequestOp[];
  keys: string[];
  bytes: number;
  deletes: boolean;
}

/** A member delete of one key (no range_end: an explicitly empty one means "from key on"). */
export function deleteOp(key: Buffer): RequestOp {
  // range_end left out on purpose; the generated type lists every field.
  return { request_delete_range: { key, prev_kv: false } as DeleteRangeRequest };
}

export function deleteRangeOp(key: Buffer, rangeEnd: Buffer): RequestOp {
  return { request_delete_range: { key, range_end: rangeEnd, prev_kv: false } };
}

const OP_OVERHEAD = 16;

export function isDelete(ev: SourceEvent): boolean {
  return ev.type === EVENT_DELETE || ev.type === 'DELETE';
}

/**
 * `incarnation`: of the event's lease (0n for none). `ks`: the configured namespace. `delta`: the
 * key's version delta (a put's).
 */
export function memberWrite(ev: SourceEvent, ks: Keyspace, incarnation: bigint, delta = 0n): MemberWrite {
  const kv = ev.kv;
  if (!kv) throw new Error('watch event without a key');
  const mk = ks.toMember(kv.key);
  const ops: RequestOp[] = [];
  const keys: string[] = [mk.toString('latin1')];
  let bytes = 0;
  const prevLease = ev.prev_kv ? BigInt(ev.prev_kv.lease) : 0n;
  const add = (op: RequestOp, key: Buffer, size: number) => {
    ops.push(op);
    bytes += size + OP_OVERHEAD;
    if (key !== mk) keys.push(key.toString('latin1'));
  };
  if (isDelete(ev)) {
    add(deleteOp(mk), mk, mk.length);
    if (prevLease !== 0n) {
      const ik = indexKey(prevLease, mk);
      add(deleteOp(ik), ik, ik.length);
    }
    return { ops, keys, bytes, deletes: true };
  }
  const lease = BigInt(kv.lease);
  const value = encodeEnvelope(BigInt(kv.mod_revision), BigInt(kv.create_revision), lease, kv.value, delta);
  add(putOp(mk, value), mk, mk.length + value.length);
  if (lease !== 0n) {
    const ik = indexKey(lease, mk);
    add(putOp(ik, encodeIncarnation(incarnation)), ik, ik.length + 8);
  }
  if (prevLease !== 0n && prevLease !== lease) {
    const ik = indexKey(prevLease, mk);
    add(deleteOp(ik), ik, ik.length);
  }
  return { ops, keys, bytes, deletes: false };
}
