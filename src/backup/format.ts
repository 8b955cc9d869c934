/**
 * The snapshot file format (docs/SNAPSHOT.md is the specification):
 *
 *   MAGIC                          "ETCD-METAPROXY SNAPSHOT 1\n"
 *   record*                        type (1 byte) · payload length (uint32 BE) · payload
 *     'H' header (first, once)     JSON: revision, compaction revision, partition map, ...
 *     'L' lease  (reserved)        written by the lease implementation, before any key
 *     'K' key    (any number)      key length (uint32 BE) · create · mod · version · lease (int64 BE) · key · value
 *     'E' end    (last, once)      key count, lease count (uint64 BE each), zero padding
 *   SHA-256 of every byte above    32 bytes
 *
 * The trailer and the end record's counts make a truncated or altered file detectable. The
 * padding makes everything before the trailer a multiple of 512 bytes: etcdctl's `snapshot
 * save` refuses a download whose size is not 512·n + 32 ("sha256 checksum not found"), the
 * shape of etcd's own snapshots (a bolt file in whole pages, then its SHA-256).
 */
import type { PartitionMap } from '../partition/map.js';
import type { MetaFields } from '../shard/meta-kv.js';

export const MAGIC = Buffer.from('ETCD-METAPROXY SNAPSHOT 1\n', 'latin1');
export const FORMAT = 1;
export const DIGEST_BYTES = 32;
export const RECORD_HEAD = 5;
/** A record larger than this cannot be sane (etcd's request limit is far below). */
export const MAX_RECORD = 512 * 1024 * 1024;
/** Everything before the trailer is a whole number of these. */
export const ALIGN = 512;

export const RecordType = { HEADER: 0x48, LEASE: 0x4c, KEY: 0x4b, END: 0x45 } as const;

export interface SnapshotHeader {
  format: typeof FORMAT;
  /** The meta revision every key is read at (decimal). */
  revision: string;
  /** The meta compaction revision when the snapshot was taken (decimal; -1 = none). */
  compactRevision: string;
  partitionMap: PartitionMap;
  /** Leases follow as 'L' records (the lease issue defines their payload); 0 until then. */
  leases: number;
  createdAt: string;
  createdBy: string;
}

/** One key in a snapshot: its meta fields. */
export type SnapshotKey = MetaFields;

export interface SnapshotEnd {
  keys: bigint;
  leases: bigint;
}

export function record(type: number, payload: Buffer): Buffer {
  const head = Buffer.allocUnsafe(RECORD_HEAD);
  head[0] = type;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export function encodeKey(kv: SnapshotKey): Buffer {
  const fixed = Buffer.allocUnsafe(4 + 32);
  fixed.writeUInt32BE(kv.key.length, 0);
  fixed.writeBigInt64BE(kv.create, 4);
  fixed.writeBigInt64BE(kv.mod, 12);
  fixed.writeBigInt64BE(kv.version, 20);
  fixed.writeBigInt64BE(kv.lease, 28);
  return Buffer.concat([fixed, kv.key, kv.value]);
}

/** Null when the payload is not a well-formed key record. */
export function decodeKey(p: Buffer): SnapshotKey | null {
  if (p.length < 36) return null;
  const keyLen = p.readUInt32BE(0);
  if (keyLen === 0 || 36 + keyLen > p.length) return null;
  return {
    create: p.readBigInt64BE(4),
    mod: p.readBigInt64BE(12),
    version: p.readBigInt64BE(20),
    lease: p.readBigInt64BE(28),
    key: p.subarray(36, 36 + keyLen),
    value: p.subarray(36 + keyLen),
  };
}

/** The end record's payload, padded so that the file up to its trailer ends on ALIGN (`offset`: bytes before the record). */
export function encodeEnd(end: SnapshotEnd, offset: number): Buffer {
  const pad = (ALIGN - ((offset + RECORD_HEAD + 16) % ALIGN)) % ALIGN;
  const p = Buffer.alloc(16 + pad);
  p.writeBigUInt64BE(end.keys, 0);
  p.writeBigUInt64BE(end.leases, 8);
  return p;
}

export function decodeEnd(p: Buffer): SnapshotEnd | null {
  if (p.length < 16 || p.length >= 16 + ALIGN || p.subarray(16).some((b) => b !== 0)) return null;
  return { keys: p.readBigUInt64BE(0), leases: p.readBigUInt64BE(8) };
}
