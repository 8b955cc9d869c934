/**
 * The envelope wrapped around every user value stored in a member: the meta-cluster fields a
 * member cannot know (its revisions are its own). 25 bytes:
 *   [0]      format = 1
 *   [1..9)   meta mod revision, int64 big-endian
 *   [9..17)  meta create revision, int64 big-endian
 *   [17..25) lease id, int64 big-endian
 *   [25..)   the user's value
 * `version` needs no room: a key lives in one member, so the member's version is exact.
 */
export const ENVELOPE_FORMAT = 1;
export const ENVELOPE_SIZE = 25;

export interface Envelope {
  mod: bigint;
  create: bigint;
  lease: bigint;
  value: Buffer;
}

export function encodeEnvelope(mod: bigint, create: bigint, lease: bigint, value: Buffer): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_SIZE + value.length);
  out[0] = ENVELOPE_FORMAT;
  out.writeBigInt64BE(mod, 1);
  out.writeBigInt64BE(create, 9);
  out.writeBigInt64BE(lease, 17);
  value.copy(out, ENVELOPE_SIZE);
  return out;
}

/**
 * Decodes a member value. A value not written by the proxy (no envelope) is returned as-is
 * with zero meta revisions rather than failing the whole read.
 */
export function decodeEnvelope(raw: Buffer, copy = true): Envelope {
  if (raw.length < ENVELOPE_SIZE || raw[0] !== ENVELOPE_FORMAT) {
    return { mod: 0n, create: 0n, lease: 0n, value: raw };
  }
  return {
    mod: raw.readBigInt64BE(1),
    create: raw.readBigInt64BE(9),
    lease: raw.readBigInt64BE(17),
    // Copy: a slice would pin the whole gRPC message buffer (unless the caller copies it at once).
    value: copy ? Buffer.from(raw.subarray(ENVELOPE_SIZE)) : raw.subarray(ENVELOPE_SIZE),
  };
}

/** Clock values are fixed-width big-endian so etcd's byte comparison is numeric comparison. */
export function encodeClock(rev: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(rev);
  return b;
}

export function decodeClock(raw: Buffer | undefined): bigint {
  if (!raw || raw.length !== 8) return 0n;
  return raw.readBigInt64BE();
}
