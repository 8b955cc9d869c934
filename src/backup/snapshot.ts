/**
 * Produces a snapshot of the whole meta-cluster at one meta revision as a byte stream in the
 * format of format.ts: the revision is fixed first (every shard fenced up to it), then every
 * user key is read at it page by page (kv/scan.ts), so the snapshot is consistent however long
 * it takes and while writes go on.
 */
import { parsePartitionMap } from '../partition/map.js';
import { PARTITION_MAP_KEY } from '../partition/map-record.js';
import type { KeyspaceScan } from '../kv/backend.js';
import type { Upstream } from '../upstream/upstream.js';
import { SnapshotEncoder } from './encoder.js';
import { ALIGN, DIGEST_BYTES, RECORD_HEAD, type SnapshotHeader } from './format.js';

/** Bytes per stream message (etcd sends 32 KiB; a little more costs nothing). */
export const SNAPSHOT_CHUNK = 64 * 1024;

export interface SnapshotChunk {
  blob: Buffer;
  /**
   * Bytes still to come after this chunk. The total is only known at the end, so before the
   * last chunk this is an estimate from the key count and the average key size so far (never
   * 0); on the last chunk it is exactly 0.
   */
  remaining: bigint;
  /** The meta revision the snapshot stands at. */
  revision: bigint;
}

const END_BYTES = RECORD_HEAD + 16 + ALIGN / 2 + DIGEST_BYTES;

export async function* snapshotStream(
  scan: KeyspaceScan,
  coordinator: Pick<Upstream, 'range'>,
  createdBy: string,
): AsyncGenerator<SnapshotChunk> {
  const view = await scan.coordinatorView();
  const revision = await scan.currentRevision();
  const mapRes = await coordinator.range({ key: PARTITION_MAP_KEY });
  const rawMap = mapRes.kvs[0]?.value;
  if (!rawMap) throw new Error('the coordinator holds no partition map');
  const keyCount = await scan.countAt(revision);
  const header: SnapshotHeader = {
    format: 1,
    revision: revision.toString(),
    compactRevision: view.compacted.toString(),
    partitionMap: parsePartitionMap(rawMap),
    leases: 0,
    createdAt: new Date().toISOString(),
    createdBy,
  };

  const enc = new SnapshotEncoder();
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let keys = 0n;
  let keyBytes = 0n;
  const add = (b: Buffer) => {
    pending.push(b);
    pendingBytes += b.length;
  };
  const estimate = (): bigint => {
    const left = keyCount > keys ? keyCount - keys : 0n;
    const avg = keys > 0n ? keyBytes / keys : 64n;
    return avg * left + BigInt(END_BYTES + pendingBytes);
  };
  /** Whole chunks out of the pending bytes; the rest stays pending. */
  function* full(): Generator<SnapshotChunk> {
    if (pendingBytes < SNAPSHOT_CHUNK) return;
    const all = Buffer.concat(pending);
    let at = 0;
    while (all.length - at >= SNAPSHOT_CHUNK) {
      const blob = all.subarray(at, at + SNAPSHOT_CHUNK);
      at += SNAPSHOT_CHUNK;
      pending = [all.subarray(at)];
      pendingBytes = all.length - at;
      yield { blob, remaining: estimate(), revision };
    }
  }

  add(enc.start(header));
  // Lease records ('L') go here, before any key, once meta leases exist (docs/SNAPSHOT.md).
  for await (const page of scan.pagesAt(revision)) {
    for (const kv of page) {
      const rec = enc.key(kv);
      keys++;
      keyBytes += BigInt(rec.length);
      add(rec);
    }
    yield* full();
  }
  add(enc.finish());
  const tail = Buffer.concat(pending);
  for (let at = 0; at < tail.length; at += SNAPSHOT_CHUNK) {
    const blob = tail.subarray(at, at + SNAPSHOT_CHUNK);
    yield { blob, remaining: BigInt(tail.length - at - blob.length), revision };
  }
}
