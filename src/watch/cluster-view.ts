/**
 * The part of the meta-cluster the watch path works on: the shards and their key layout, key
 * routing, the meta -> member revision maps (replays from the members), the compaction record,
 * and the owners' word for a lagging shard's watermark. kv/store.ts's MetaStore has this shape;
 * watch/ takes only this.
 */
import type { Router } from '../partition/router.js';
import type { Keyspace } from '../shard/keyspace.js';
import type { RevisionMap } from '../shard/revmap.js';
import type { Shard } from '../shard/shard.js';

export interface WatchCluster {
  readonly shards: readonly Shard[];
  readonly ks: Keyspace;
  readonly router: Router;
  readonly revmaps: readonly RevisionMap[];
  /** The meta compaction revision last seen, and a fresh read of it from the coordinator. */
  readonly compactedRevision: bigint;
  refreshCompacted(): Promise<bigint>;
  /**
   * Null: no owners (every replica writes every shard). `settle`: the owner's word that every
   * write to the shard at or below `target` landed by the returned member revision.
   */
  readonly routing: { settle(shard: number, target: bigint): Promise<bigint | null> } | null;
}
