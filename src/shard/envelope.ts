/**
 * The envelope wrapped around every user value stored in a member: the meta-cluster fields a
 * member cannot know (its revisions are its own). Format 1, 25 bytes:
 *   [0]      format = 1
 *   [1..9)   meta mod revision, int64 big-endian
 *   [9..17)  meta create revision, int64 big-endian
 *   [17..25) lease id, int64 big-endian
 *   [25..)   the user's value
 * The key's version is then the member's: one member put per meta put.
 *
 * Format 2 also carries the puts of a chain (kv/put-chain.ts): several puts of one hot key that
 * one member put applies, each at its own meta revision. The member then counts one version for
 * all of them, so the envelope says by how much the meta version is ahead, and it keeps every
 * put of the chain but the last (which is the value) so that the watch decoder emits one event
 * per put and a read at a revision inside the chain finds its value:
 *   [0]      format = 2
 *   [1..25)  as format 1 (the last put's revision; the chain's puts share create and lease)
 *   [25..33) version delta: meta version - member version, int64 big-endian
 *   [33..35) n, the earlier puts, uint16 big-endian
 *   n times: revision int64, value length uint32, value (oldest first)
 *   the last put's value
 * A key whose delta is not 0 keeps format 2 (n = 0) in every later put, until it is deleted.
 */
export const ENVELOPE_FORMAT = 1;
export const ENVELOPE_SIZE = 25;
export const CHAIN_FORMAT = 2;
const CHAIN_HEADER = 35;
const ENTRY_HEADER = 12;
/** The earlier puts one envelope may carry (uint16). */
export const MAX_CHAIN_ENTRIES = 0xffff;

/** An earlier put of a chain: its revision and value (create and lease are the key's). */
export interface ChainEntry {
  rev: bigint;
  value: Buffer;
}

export interface Envelope {
  mod: bigint;
  create: bigint;
  lease: bigint;
  value: Buffer;
  /** Meta version - member version (0 in format 1). */
  delta: bigint;
  /** Earlier puts of the chain this member put applied, oldest first (format 2 only). */
  chain?: ChainEntry[];
}

export function encodeEnvelope(mod: bigint, create: bigint, lease: bigint, value: Buffer, delta = 0n, chain: readonly ChainEntry[] = []): Buffer {
  if (delta === 0n && chain.length === 0) {
    const out = Buffer.allocUnsafe(ENVELOPE_SIZE + value.length);
    out[0] = ENVELOPE_FORMAT;
    writeCommon(out, mod, create, lease);
    value.copy(out, ENVELOPE_SIZE);
    return out;
  }
  if (chain.length > MAX_CHAIN_ENTRIES) throw new RangeError(`a chain of ${chain.length} puts does not fit one envelope`);
  const size = CHAIN_HEADER + chain.reduce((n, e) => n + ENTRY_HEADER + e.value.length, 0) + value.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = CHAIN_FORMAT;
  writeCommon(out, mod, create, lease);
  out.writeBigInt64BE(delta, 25);
  out.writeUInt16BE(chain.length, 33);
  let at = CHAIN_HEADER;
  for (const e of chain) {
    out.writeBigInt64BE(e.rev, at);
    out.writeUInt32BE(e.value.length, at + 8);
    e.value.copy(out, at + ENTRY_HEADER);
    at += ENTRY_HEADER + e.value.length;
  }
  value.copy(out, at);
  return out;
}

function writeCommon(out: Buffer, mod: bigint, create: bigint, lease: bigint): void {
  out.writeBigInt64BE(mod, 1);
  out.writeBigInt64BE(create, 9);
  out.writeBigInt64BE(lease, 17);
}

/**
 * Decodes a member value. A value not written by the proxy (no envelope, or one cut short) is
 * returned as-is with zero meta revisions rather than failing the whole read.
 */
export function decodeEnvelope(raw: Buffer, copy = true): Envelope {
  // Copy: a slice would pin the whole gRPC message buffer (unless the caller copies it at once).
  const take = (from: number, to = raw.length) => (copy ? Buffer.from(raw.subarray(from, to)) : raw.subarray(from, to));
  const common = () => ({ mod: raw.readBigInt64BE(1), create: raw.readBigInt64BE(9), lease: raw.readBigInt64BE(17) });
  if (raw.length >= ENVELOPE_SIZE && raw[0] === ENVELOPE_FORMAT) return { ...common(), value: take(ENVELOPE_SIZE), delta: 0n };
  if (raw.length >= CHAIN_HEADER && raw[0] === CHAIN_FORMAT) {
    const n = raw.readUInt16BE(33);
    const chain: ChainEntry[] = [];
    let at = CHAIN_HEADER;
    for (let i = 0; i < n; i++) {
      if (at + ENTRY_HEADER > raw.length) return foreign(raw);
      const len = raw.readUInt32BE(at + 8);
      if (at + ENTRY_HEADER + len > raw.length) return foreign(raw);
      chain.push({ rev: raw.readBigInt64BE(at), value: take(at + ENTRY_HEADER, at + ENTRY_HEADER + len) });
      at += ENTRY_HEADER + len;
    }
    return { ...common(), value: take(at), delta: raw.readBigInt64BE(25), ...(n ? { chain } : {}) };
  }
  return foreign(raw);
}

function foreign(raw: Buffer): Envelope {
  return { mod: 0n, create: 0n, lease: 0n, value: raw, delta: 0n };
}

/** The lowest meta revision a member value holds (its chain's first put), 0n without an envelope. */
export function firstRevision(env: Envelope): bigint {
  return env.chain?.[0]?.rev ?? env.mod;
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
