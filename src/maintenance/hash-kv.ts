/**
 * HashKV for the meta-cluster: a CRC-32C over the user keyspace as it stands at a meta
 * revision (every key with its value and meta create/mod revision, version and lease, in key
 * order; the proxy's system keys are never part of a client range). It depends only on the data
 * at that revision, so every proxy replica computes the same hash, and it changes when the data
 * does.
 *
 * etcd hashes its whole stored history since the last compaction rather than the state at one
 * revision; the meta-cluster's history is spread over members with unrelated revisions, so the
 * state is what is hashed (README "Differences from etcd"). Errors follow etcd 3.5: a revision
 * below the compaction revision is compacted (checked first), one above the current revision is
 * a future revision; 0 means the current revision.
 */
import { Errors } from '../etcd/errors.js';
import type { HashKVRequest, HashKVResponse, ResponseHeader } from '../etcd/types.js';
import type { KeyspaceScan } from '../kv/backend.js';
import type { ScannedKV } from '../kv/scan.js';
import { Crc32c } from './crc32c.js';

export interface MetaHash {
  hash: number;
  /** The revision the hash stands at. */
  hashRevision: bigint;
  /** The meta compaction revision (-1: nothing compacted, as etcd reports it). */
  compactRevision: bigint;
  /** The current meta revision (the response header's). */
  currentRevision: bigint;
}

/** One key's bytes in the hash: lengths first, so no two keyspaces feed the same bytes. */
export function hashKeyBytes(kv: ScannedKV): Buffer {
  const fixed = Buffer.allocUnsafe(4 + 4 + 32);
  fixed.writeUInt32BE(kv.key.length, 0);
  fixed.writeUInt32BE(kv.value.length, 4);
  fixed.writeBigInt64BE(kv.create, 8);
  fixed.writeBigInt64BE(kv.mod, 16);
  fixed.writeBigInt64BE(kv.version, 24);
  fixed.writeBigInt64BE(kv.lease, 32);
  return Buffer.concat([fixed, kv.key, kv.value]);
}

export async function hashKV(scan: KeyspaceScan, req: HashKVRequest): Promise<MetaHash> {
  const wanted = BigInt(req.revision);
  const view = await scan.coordinatorView();
  if (wanted > 0n && wanted < view.compacted) throw Errors.compacted();
  if (wanted > 0n && wanted > view.clock) throw Errors.futureRev();
  const crc = new Crc32c();
  // A negative revision hashes nothing in etcd (no revision is below it); the same here.
  if (wanted < 0n) return { hash: crc.digest(), hashRevision: wanted, compactRevision: view.compacted, currentRevision: view.clock };
  const at = wanted === 0n ? await scan.currentRevision() : wanted;
  for await (const page of scan.pagesAt(at)) {
    for (const kv of page) crc.update(hashKeyBytes(kv));
  }
  const current = at > view.clock ? at : view.clock;
  return { hash: crc.digest(), hashRevision: at, compactRevision: scan.compactedRevision, currentRevision: current };
}

export function hashKVResponse(h: MetaHash, header: ResponseHeader): HashKVResponse {
  return {
    header,
    hash: h.hash,
    compact_revision: h.compactRevision.toString(),
    hash_revision: h.hashRevision.toString(),
  };
}
