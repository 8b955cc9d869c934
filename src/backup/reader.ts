/**
 * Reads a snapshot file (format.ts) as a stream of records, checking its structure as it goes
 * and its SHA-256 trailer at the end: a truncated, altered or foreign file is refused with a
 * SnapshotError saying why. Memory stays bounded by the largest record.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import {
  DIGEST_BYTES,
  FORMAT,
  MAGIC,
  MAX_RECORD,
  RECORD_HEAD,
  RecordType,
  decodeEnd,
  decodeKey,
  type SnapshotEnd,
  type SnapshotHeader,
  type SnapshotKey,
} from './format.js';

export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
}

export type SnapshotRecord =
  | { type: 'header'; header: SnapshotHeader }
  | { type: 'lease'; payload: Buffer }
  | { type: 'key'; kv: SnapshotKey }
  | { type: 'end'; end: SnapshotEnd };

/** Bytes of `file` in [0, end), in pieces. */
async function* bytes(file: string, end: number): AsyncGenerator<Buffer> {
  if (end === 0) return;
  for await (const chunk of fs.createReadStream(file, { start: 0, end: end - 1, highWaterMark: 1 << 20 })) yield chunk as Buffer;
}

function parseHeader(p: Buffer): SnapshotHeader {
  let h: SnapshotHeader;
  try {
    h = JSON.parse(p.toString('utf8')) as SnapshotHeader;
  } catch {
    throw new SnapshotError('its header record is not valid JSON');
  }
  if (h.format !== FORMAT) throw new SnapshotError(`format ${String(h.format)} is not supported (this version reads format ${FORMAT})`);
  if (!/^\d+$/.test(String(h.revision)) || !/^-?\d+$/.test(String(h.compactRevision))) throw new SnapshotError('its header has no valid revision');
  const m = h.partitionMap;
  if (!m || !Array.isArray(m.shards) || !Array.isArray(m.owner) || m.owner.length !== m.partitions) {
    throw new SnapshotError('its header has no valid partition map');
  }
  return h;
}

/**
 * Every record of `file` in order. Throws SnapshotError on a damaged file; the last record is
 * only returned once the trailer has been checked, so a consumer that sees 'end' has read a
 * complete, intact file.
 */
export async function* readSnapshot(file: string): AsyncGenerator<SnapshotRecord> {
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (err) {
    throw new SnapshotError(`cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (size < MAGIC.length + DIGEST_BYTES) throw new SnapshotError(`it is truncated (${size} bytes)`);
  const body = size - DIGEST_BYTES;
  const sha = createHash('sha256');
  let buf: Buffer = Buffer.alloc(0);
  let offset = 0;
  let magicSeen = false;
  let header: SnapshotHeader | null = null;
  let end: SnapshotEnd | null = null;
  let keys = 0n;
  let leases = 0n;

  for await (const chunk of bytes(file, body)) {
    sha.update(chunk);
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (!magicSeen) {
      if (buf.length < MAGIC.length) continue;
      if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new SnapshotError('it is not an etcd-metaproxy snapshot (wrong magic)');
      buf = buf.subarray(MAGIC.length);
      offset += MAGIC.length;
      magicSeen = true;
    }
    while (buf.length >= RECORD_HEAD) {
      const len = buf.readUInt32BE(1);
      if (len > MAX_RECORD) throw new SnapshotError(`record at byte ${offset} claims ${len} bytes`);
      if (buf.length < RECORD_HEAD + len) break;
      const type = buf[0];
      const payload = buf.subarray(RECORD_HEAD, RECORD_HEAD + len);
      if (end) throw new SnapshotError(`data after the end record at byte ${offset}`);
      if (!header && type !== RecordType.HEADER) throw new SnapshotError('it does not start with a header record');
      if (header && type === RecordType.HEADER) throw new SnapshotError(`second header record at byte ${offset}`);
      if (type === RecordType.HEADER) {
        header = parseHeader(payload);
        yield { type: 'header', header };
      } else if (type === RecordType.LEASE) {
        if (keys > 0n) throw new SnapshotError(`lease record after key records at byte ${offset}`);
        leases++;
        yield { type: 'lease', payload: Buffer.from(payload) };
      } else if (type === RecordType.KEY) {
        const kv = decodeKey(payload);
        if (!kv) throw new SnapshotError(`malformed key record at byte ${offset}`);
        keys++;
        yield { type: 'key', kv: { ...kv, key: Buffer.from(kv.key), value: Buffer.from(kv.value) } };
      } else if (type === RecordType.END) {
        end = decodeEnd(payload);
        if (!end) throw new SnapshotError(`malformed end record at byte ${offset}`);
      } else {
        throw new SnapshotError(`unknown record type 0x${type.toString(16)} at byte ${offset}`);
      }
      buf = buf.subarray(RECORD_HEAD + len);
      offset += RECORD_HEAD + len;
    }
  }
  if (!magicSeen) throw new SnapshotError('it is not an etcd-metaproxy snapshot (wrong magic)');
  if (!end || buf.length > 0) throw new SnapshotError(`it is truncated: no complete end record (${size} bytes)`);
  const trailer = Buffer.alloc(DIGEST_BYTES);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, trailer, 0, DIGEST_BYTES, body);
  } finally {
    fs.closeSync(fd);
  }
  if (!sha.digest().equals(trailer)) throw new SnapshotError('its SHA-256 checksum does not match its contents (damaged or truncated)');
  if (end.keys !== keys || end.leases !== leases) {
    throw new SnapshotError(`its end record counts ${end.keys} keys and ${end.leases} leases, the file holds ${keys} and ${leases}`);
  }
  yield { type: 'end', end };
}

/** Reads the whole file once to check it; returns its header and counts. */
export async function verifySnapshot(
  file: string,
  /** Checks each key record: a reason to refuse the file, or null (e.g. a restore's reserved-range check). */
  checkKey: (key: Buffer) => string | null = () => null,
): Promise<{ header: SnapshotHeader; end: SnapshotEnd; maxVersion: bigint }> {
  let header: SnapshotHeader | null = null;
  let maxVersion = 0n;
  for await (const r of readSnapshot(file)) {
    if (r.type === 'header') header = r.header;
    else if (r.type === 'key') {
      const refused = checkKey(r.kv.key);
      if (refused !== null) throw new SnapshotError(refused);
      if (r.kv.version > maxVersion) maxVersion = r.kv.version;
    }
    else if (r.type === 'end' && header) return { header, end: r.end, maxVersion };
  }
  throw new SnapshotError('it is truncated');
}
