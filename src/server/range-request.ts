/**
 * A hand-written decoder for etcdserverpb.RangeRequest, the proxy's hottest request: the
 * generic decoder builds every field through reflection, this one reads the bytes once. Field
 * numbers (rpc.proto): key 1, range_end 2, limit 3, revision 4, sort_order 5, sort_target 6,
 * serializable 7, keys_only 8, count_only 9, min_mod_revision 10, max_mod_revision 11,
 * min_create_revision 12, max_create_revision 13. Unknown fields are skipped, as protobuf does;
 * anything malformed returns null so the generic decoder reports it as before.
 */
import { rangeRequest } from '../etcd/defaults.js';
import type { RangeRequest } from '../etcd/types.js';

const INT64_FIELDS: Record<number, keyof RangeRequest> = {
  3: 'limit',
  4: 'revision',
  10: 'min_mod_revision',
  11: 'max_mod_revision',
  12: 'min_create_revision',
  13: 'max_create_revision',
};

class Malformed extends Error {}

/** A read position in one message (module-level helpers, no closures per call). */
interface Cursor {
  buf: Buffer;
  at: number;
}

function varint(c: Cursor): bigint {
  const { buf } = c;
  let lo = 0;
  let shift = 0;
  // Up to 4 bytes fit a number exactly; longer varints go through bigint.
  for (let i = 0; i < 4; i++) {
    if (c.at >= buf.length) throw new Malformed();
    const b = buf[c.at++];
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) return BigInt(lo >>> 0);
    shift += 7;
  }
  let v = BigInt(lo >>> 0);
  let s = 28n;
  for (let i = 4; i < 10; i++) {
    if (c.at >= buf.length) throw new Malformed();
    const b = buf[c.at++];
    v |= BigInt(b & 0x7f) << s;
    if (b < 0x80) return BigInt.asUintN(64, v);
    s += 7n;
  }
  throw new Malformed();
}

function bytes(c: Cursor): Buffer {
  const len = Number(varint(c));
  if (c.at + len > c.buf.length) throw new Malformed();
  const out = Buffer.from(c.buf.subarray(c.at, c.at + len));
  c.at += len;
  return out;
}

export function decodeRangeRequest(buf: Buffer): RangeRequest | null {
  const c: Cursor = { buf, at: 0 };
  try {
    const r = rangeRequest(Buffer.alloc(0));
    const out = r as unknown as Record<string, unknown>;
    while (c.at < buf.length) {
      const tag = Number(varint(c));
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === 0) return null;
      // A known field with another wire type: the generic decoder decides what that means.
      if (field <= 13 && wire !== (field <= 2 ? 2 : 0)) return null;
      if (wire === 2) {
        const b = bytes(c);
        if (field === 1) r.key = b;
        else if (field === 2) r.range_end = b;
        continue;
      }
      if (wire === 0) {
        const v = varint(c);
        const int64 = INT64_FIELDS[field];
        if (int64) out[int64] = BigInt.asIntN(64, v).toString();
        else if (field === 5) r.sort_order = Number(BigInt.asIntN(32, v));
        else if (field === 6) r.sort_target = Number(BigInt.asIntN(32, v));
        else if (field === 7) r.serializable = v !== 0n;
        else if (field === 8) r.keys_only = v !== 0n;
        else if (field === 9) r.count_only = v !== 0n;
        continue;
      }
      // Unknown fixed64 / fixed32 fields are skipped.
      if (wire === 1) c.at += 8;
      else if (wire === 5) c.at += 4;
      else return null;
      if (c.at > buf.length) return null;
    }
    return r;
  } catch (err) {
    if (err instanceof Malformed) return null;
    throw err;
  }
}
