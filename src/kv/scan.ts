/**
 * Every user key of the meta-cluster at one meta revision, in key order, page by page. Each page
 * is an ordinary Range at that revision (range.ts), so the pages together are one consistent
 * state however long the scan takes, as long as no compaction passes the revision meanwhile
 * (then the scan fails with etcd's compacted error).
 */
import { rangeRequest } from '../etcd/defaults.js';
import { SortOrder, SortTarget } from '../etcd/types.js';
import { fromWire, type MetaFields } from '../shard/meta-kv.js';
import type { MetaStore } from './store.js';
import { range, consistentRevision } from './range.js';

/** A key as the meta-cluster reports it at the scanned revision. */
export type ScannedKV = MetaFields;

/** Keys per page: a page holds every member's limit+1 answer in memory at once. */
export const SCAN_PAGE = 500;

const ALL = Buffer.from([0]);

/** The current revision at which every shard is fixed (lagging shards are fenced up to it). */
export function currentScanRevision(store: MetaStore): Promise<bigint> {
  return consistentRevision(store, store.shards.map((s) => s.index));
}

/** How many user keys exist at `rev`. */
export async function countAt(store: MetaStore, rev: bigint): Promise<bigint> {
  const res = await range(store, rangeRequest(ALL, ALL, { revision: rev.toString(), count_only: true }));
  return BigInt(res.count);
}

export async function* scanAt(store: MetaStore, rev: bigint, pageSize = SCAN_PAGE): AsyncGenerator<ScannedKV[]> {
  let from = ALL;
  for (;;) {
    const res = await range(
      store,
      rangeRequest(from, ALL, {
        revision: rev.toString(),
        limit: pageSize.toString(),
        sort_order: SortOrder.ASCEND,
        sort_target: SortTarget.KEY,
      }),
    );
    const page = res.kvs.map(fromWire);
    if (page.length) yield page;
    if (!res.more || page.length === 0) return;
    from = Buffer.concat([page[page.length - 1].key, ALL]);
  }
}
