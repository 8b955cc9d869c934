/**
 * Clears what an import interrupted during its copy left behind, so that it can start over.
 * Only called when the coordinator's import record says phase `copy` for the same source and
 * routing: the clusters were verified empty when that import claimed them, and its marker kept
 * every proxy out since, so everything in them is the import's own partial copy.
 */
import { MARKER_END, MARKER_PREFIX, markerId } from '../lease/keys.js';
import { PARTITION_MAP_KEY } from '../partition/store.js';
import type { Upstream } from '../shard/upstream.js';
import { IMPORT_KEY } from './record.js';
import { deleteRangeOp } from './member-writes.js';

const ALL = Buffer.from([0]);

function after(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}

/** Deletes every key of every shard, and every coordinator key but the marker and the record (its leases revoked). */
export async function wipePartialCopy(coordinator: Upstream, shards: Upstream[]): Promise<void> {
  await Promise.all(shards.map((s) => s.txn({ compare: [], success: [deleteRangeOp(ALL, ALL)], failure: [] }, false)));
  const markers = await coordinator.range({ key: MARKER_PREFIX, range_end: MARKER_END, keys_only: true });
  for (const kv of markers.kvs) {
    const id = markerId(kv.key);
    if (id !== null) await coordinator.leaseRevoke(id).catch(() => undefined);
  }
  // Everything around the two keys the import keeps (sorted: the record, then the partition map, or the other way round).
  const keep = [IMPORT_KEY, PARTITION_MAP_KEY].sort(Buffer.compare);
  const ranges: Array<[Buffer, Buffer]> = [
    [ALL, keep[0]],
    [after(keep[0]), keep[1]],
    [after(keep[1]), ALL],
  ];
  await coordinator.txn({ compare: [], success: ranges.map(([k, e]) => deleteRangeOp(k, e)), failure: [] }, false);
}
