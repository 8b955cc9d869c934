/**
 * The protobuf encoding of the messages the cache answers with, written by hand: a cached key is
 * kept as its encoded mvccpb.KeyValue (a latin1 string: one compact heap object, no pinned
 * Buffer), so a Range response is those strings copied behind a few bytes of framing.
 *
 * Field numbers (etcd's kv.proto / rpc.proto): KeyValue{key 1, create_revision 2,
 * mod_revision 3, version 4, value 5, lease 6}; RangeResponse{header 1, kvs 2, more 3, count 4};
 * ResponseHeader{cluster_id 1, member_id 2, revision 3, raft_term 4}. proto3 leaves out zero
 * and empty fields, as etcd's encoder does.
 *
 * Kept beside the generated codecs (etcd/gen/) because it pays (bench/codec.ts, 2-core machine
 * shared with other jobs, best of 7 rounds): a 100-key answer of 281-byte KeyValues from the
 * stored strings took 81-90 µs, against 590 µs to turn them into KeyValue objects and encode
 * those with the generated code (~7x); a one-key answer 0.3-0.7 µs against 1.7-6.2 µs for the
 * generated encoder even from ready objects (5-8x). It also keeps the cache's memory form.
 */
import type { ResponseHeader } from '../etcd/types.js';
import type { MetaFields } from '../shard/meta-kv.js';

const TWO64 = 1n << 64n;

/** Bytes of a varint: int64s are sent as their two's complement, so negatives take 10. */
function varintSize(v: bigint): number {
  let u = v < 0n ? v + TWO64 : v;
  let n = 1;
  while (u >= 0x80n) {
    u >>= 7n;
    n++;
  }
  return n;
}

function smallVarintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, v: bigint): number {
  if (v >= 0n && v <= 0xffffffffn) return writeSmall(buf, at, Number(v));
  let u = v < 0n ? v + TWO64 : v;
  while (u >= 0x80n) {
    buf[at++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  buf[at++] = Number(u);
  return at;
}

function writeSmall(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

function intField(v: bigint): number {
  return v === 0n ? 0 : 1 + varintSize(v);
}

function bytesField(len: number): number {
  return len === 0 ? 0 : 1 + smallVarintSize(len) + len;
}

let scratch = Buffer.allocUnsafe(64 * 1024);

/** A key's state as its encoded KeyValue (latin1), optionally without the value (keys_only). */
export function encodeKeyValue(kv: MetaFields, withValue = true): string {
  const at = encodeKeyValueScratch(kv, withValue);
  return scratch.toString('latin1', 0, at);
}

/**
 * A key's state as a RangeResponse `kvs` entry (field tag, length, encoded KeyValue) written
 * into `buf` at `at` (which must have room: entrySize); returns the offset after it.
 */
export function writeKvEntry(buf: Buffer, at: number, kv: MetaFields, withValue: boolean): number {
  const len = encodeKeyValueScratch(kv, withValue);
  buf[at++] = 0x12;
  at = writeSmall(buf, at, len);
  return at + scratch.copy(buf, at, 0, len);
}

/** Bytes of a RangeResponse `kvs` entry for this key (an upper bound: writeKvEntry). */
export function kvEntrySize(kv: MetaFields, withValue: boolean): number {
  const len =
    bytesField(kv.key.length) + intField(kv.create) + intField(kv.mod) + intField(kv.version) + bytesField(withValue ? kv.value.length : 0) + intField(kv.lease);
  return 1 + smallVarintSize(len) + len;
}

/** Encodes into the scratch buffer; returns the encoded length. */
function encodeKeyValueScratch(kv: MetaFields, withValue: boolean): number {
  const valueLen = withValue ? kv.value.length : 0;
  const size =
    bytesField(kv.key.length) + intField(kv.create) + intField(kv.mod) + intField(kv.version) + bytesField(valueLen) + intField(kv.lease);
  if (size > scratch.length) scratch = Buffer.allocUnsafe(size * 2);
  let at = 0;
  if (kv.key.length) {
    scratch[at++] = 0x0a;
    at = writeSmall(scratch, at, kv.key.length);
    at += kv.key.copy(scratch, at);
  }
  if (kv.create !== 0n) {
    scratch[at++] = 0x10;
    at = writeVarint(scratch, at, kv.create);
  }
  if (kv.mod !== 0n) {
    scratch[at++] = 0x18;
    at = writeVarint(scratch, at, kv.mod);
  }
  if (kv.version !== 0n) {
    scratch[at++] = 0x20;
    at = writeVarint(scratch, at, kv.version);
  }
  if (valueLen) {
    scratch[at++] = 0x2a;
    at = writeSmall(scratch, at, valueLen);
    at += kv.value.copy(scratch, at);
  }
  if (kv.lease !== 0n) {
    scratch[at++] = 0x30;
    at = writeVarint(scratch, at, kv.lease);
  }
  return at;
}

/** Reads the fields back from an encoded KeyValue (for filters, sorts, compares, keys_only). */
export function decodeKeyValue(enc: string): MetaFields {
  const buf = Buffer.from(enc, 'latin1');
  const out: MetaFields = { key: EMPTY, create: 0n, mod: 0n, version: 0n, lease: 0n, value: EMPTY };
  let at = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[at++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asIntN(64, v);
      shift += 7n;
    }
  };
  while (at < buf.length) {
    const tag = buf[at++];
    if (tag === 0x0a || tag === 0x2a) {
      const len = Number(varint());
      const bytes = buf.subarray(at, at + len);
      at += len;
      if (tag === 0x0a) out.key = bytes;
      else out.value = bytes;
      continue;
    }
    const v = varint();
    if (tag === 0x10) out.create = v;
    else if (tag === 0x18) out.mod = v;
    else if (tag === 0x20) out.version = v;
    else if (tag === 0x30) out.lease = v;
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

function headerSize(h: ResponseHeader): number {
  return (
    intField(BigInt(h.cluster_id)) + intField(BigInt(h.member_id)) + intField(BigInt(h.revision)) + intField(BigInt(h.raft_term))
  );
}

function writeHeader(buf: Buffer, at: number, h: ResponseHeader): number {
  const fields: Array<[number, bigint]> = [
    [0x08, BigInt(h.cluster_id)],
    [0x10, BigInt(h.member_id)],
    [0x18, BigInt(h.revision)],
    [0x20, BigInt(h.raft_term)],
  ];
  for (const [tag, v] of fields) {
    if (v === 0n) continue;
    buf[at++] = tag;
    at = writeVarint(buf, at, v);
  }
  return at;
}

/** The last header encoded (field 1 with its length): consecutive answers mostly share it. */
let lastHeader: { cluster: unknown; member: unknown; rev: unknown; term: unknown; bytes: Buffer } | null = null;

/** A response's header field (1), encoded. */
export function encodedHeader(h: ResponseHeader): Buffer {
  const l = lastHeader;
  if (l && l.rev === h.revision && l.cluster === h.cluster_id && l.member === h.member_id && l.term === h.raft_term) return l.bytes;
  const hSize = headerSize(h);
  const bytes = Buffer.allocUnsafe(1 + smallVarintSize(hSize) + hSize);
  bytes[0] = 0x0a;
  writeHeader(bytes, writeSmall(bytes, 1, hSize), h);
  lastHeader = { cluster: h.cluster_id, member: h.member_id, rev: h.revision, term: h.raft_term, bytes };
  return bytes;
}

/** Bytes of an encoded RangeResponse: the encoded header, the kvs framed as field 2, more, count. */
function rangeResponseSize(head: Buffer, kvs: readonly string[], more: boolean, count: bigint): number {
  let size = head.length + (more ? 2 : 0) + intField(count);
  for (const kv of kvs) size += 1 + smallVarintSize(kv.length) + kv.length;
  return size;
}

/** One already-encoded KeyValue as RangeResponse field 2. */
function writeEncodedKv(buf: Buffer, at: number, kv: string): number {
  buf[at++] = 0x12;
  at = writeSmall(buf, at, kv.length);
  return at + buf.write(kv, at, kv.length, 'latin1');
}

/** An encoded etcdserverpb.RangeResponse whose kvs are already-encoded KeyValues. */
export function encodeRangeResponse(header: ResponseHeader, kvs: readonly string[], more: boolean, count: bigint): Buffer {
  const head = encodedHeader(header);
  const buf = Buffer.allocUnsafe(rangeResponseSize(head, kvs, more, count));
  let at = head.copy(buf, 0);
  for (const kv of kvs) at = writeEncodedKv(buf, at, kv);
  writeTrailer(buf, at, more, count);
  return buf;
}

/**
 * Big answers are built a few MiB at a time, yielding to the event loop in between: copying
 * hundreds of MiB (page faults on fresh memory included) takes seconds on a busy machine, and
 * small requests, keepalives and signals must not wait for it.
 */
export const YIELD_BYTES = 4 * 1024 * 1024;
const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * encodeRangeResponse for answers of any size: above YIELD_BYTES, built in steps (a promise);
 * smaller ones at once (a Buffer: no promise on the path of every cached read).
 */
export function encodeRangeResponseInSteps(header: ResponseHeader, kvs: readonly string[], more: boolean, count: bigint): Buffer | Promise<Buffer> {
  let data = 0;
  for (const kv of kvs) data += kv.length;
  if (data <= YIELD_BYTES) return encodeRangeResponse(header, kvs, more, count);
  return buildInSteps(encodedHeader(header), kvs, more, count);
}

async function buildInSteps(head: Buffer, kvs: readonly string[], more: boolean, count: bigint): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(rangeResponseSize(head, kvs, more, count));
  let at = head.copy(buf, 0);
  let step = at;
  for (const kv of kvs) {
    at = writeEncodedKv(buf, at, kv);
    if (at - step >= YIELD_BYTES) {
      step = at;
      await nextTick();
    }
  }
  writeTrailer(buf, at, more, count);
  return buf;
}

/** An answer's `more` and `count` fields. */
export function writeTrailer(buf: Buffer, at: number, more: boolean, count: bigint): number {
  if (more) {
    buf[at++] = 0x18;
    buf[at++] = 1;
  }
  if (count !== 0n) {
    buf[at++] = 0x20;
    at = writeVarint(buf, at, count);
  }
  return at;
}

/**
 * An encoded etcdserverpb.RangeResponse from `kvs` entries already framed (writeKvEntry):
 * one copy of each behind the encoded header (encodedHeader), in steps (YIELD_BYTES).
 */
export async function encodeRangeResponseEntries(head: Buffer, entries: readonly Buffer[], more: boolean, count: bigint): Promise<Buffer> {
  let size = head.length + (more ? 2 : 0) + intField(count);
  for (const e of entries) size += e.length;
  const buf = Buffer.allocUnsafe(size);
  let at = head.copy(buf, 0);
  let step = at;
  for (const e of entries) {
    at += e.copy(buf, at);
    if (at - step >= YIELD_BYTES) {
      step = at;
      await nextTick();
    }
  }
  writeTrailer(buf, at, more, count);
  return buf;
}
