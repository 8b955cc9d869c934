/**
 * A Range answered from the shards' trees at one revision: each shard's part of the key range
 * is read (etcd's limit+1 key-order fetch, see kv/range-result.ts memberShape), the parts are
 * merged in key order, and etcd's post-processing runs. The common shapes (key order, no
 * revision filters) stay on encoded strings; the others decode and reuse assembleRange.
 */
import type { RangeRequest } from '../etcd/types.js';
import { SortOrder, SortTarget } from '../etcd/types.js';
import { assembleRange, filtered, memberShape, mergeSorted } from '../kv/range-result.js';
import { fromWire } from '../shard/meta-kv.js';
import type { KeyTree } from './key-tree.js';
import { TOP } from './key-tree.js';
import { decodeKeyValue, encodeKeyValue } from '../wire/encoded-kv.js';

/** The per-shard trees of the cache at one meta revision. */
export interface CacheView {
  rev: bigint;
  trees: readonly KeyTree[];
}

export interface CachedRange {
  rev: bigint;
  /** Encoded KeyValues, in answer order. */
  kvs: string[];
  more: boolean;
  count: bigint;
}

type Pair = [string, string];

interface Bounds {
  lo: string;
  hi: string;
  includeHi: boolean;
}

/** etcd's key/range_end convention as tree bounds; null when the range selects nothing. */
function bounds(r: RangeRequest): Bounds | null {
  const lo = r.key.toString('latin1');
  if (r.range_end.length === 0) return { lo, hi: lo, includeHi: true };
  if (r.range_end.length === 1 && r.range_end[0] === 0) return { lo, hi: TOP, includeHi: false };
  const hi = r.range_end.toString('latin1');
  return hi > lo ? { lo, hi, includeHi: false } : null;
}

function descending(tree: KeyTree, b: Bounds, max: number): Pair[] {
  const out: Pair[] = [];
  for (const pair of tree.entriesReversed(b.hi, undefined, !b.includeHi)) {
    if (pair[0] < b.lo || out.length >= max) break;
    out.push(pair);
  }
  return out;
}

const byKey = (a: Pair, b: Pair): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

function stripValue(enc: string): string {
  return encodeKeyValue(decodeKeyValue(enc), false);
}

/** Serves `r` from the trees of the shards that may hold its keys (`shardIdx`). */
export function rangeFromView(view: CacheView, r: RangeRequest, shardIdx: readonly number[]): CachedRange {
  const b = bounds(r);
  if (!b) return { rev: view.rev, kvs: [], more: false, count: 0n };
  const shape = memberShape(r);
  const trees = shardIdx.map((i) => view.trees[i]);
  let count = 0;
  for (const t of trees) count += b.includeHi && b.hi === b.lo ? (t.has(b.lo) ? 1 : 0) : t.forRange(b.lo, b.hi, b.includeHi);
  if (shape.countOnly) return { rev: view.rev, kvs: [], more: false, count: BigInt(count) };

  const fetch = shape.limit > 0n ? Number(shape.limit) : Number.MAX_SAFE_INTEGER;
  const desc = shape.sortDescendingByKey;
  const parts = trees.map((t) => (desc ? descending(t, b, fetch) : t.getRange(b.lo, b.hi, b.includeHi, fetch)));
  let pairs = mergeSorted(parts, byKey, desc);
  if (pairs.length > fetch) pairs = pairs.slice(0, fetch);

  if (filtered(r) || r.sort_target !== SortTarget.KEY) {
    const metas = pairs.map(([, enc]) => ({ ...decodeKeyValue(enc), memberMod: 0n }));
    const out = assembleRange(r, [{ kvs: metas, count: BigInt(count) }]);
    return { rev: view.rev, kvs: out.kvs.map((kv) => encodeKeyValue(fromWire(kv))), more: out.more, count: out.count };
  }
  // Key order: ascending as fetched, or descending (fetched so when the limit was pushed down).
  if (r.sort_order === SortOrder.DESCEND && !desc) pairs = pairs.reverse();
  const limit = Number(r.limit);
  let more = false;
  if (limit > 0 && pairs.length > limit) {
    pairs = pairs.slice(0, limit);
    more = true;
  }
  const kvs = r.keys_only ? pairs.map(([, enc]) => stripValue(enc)) : pairs.map(([, enc]) => enc);
  return { rev: view.rev, kvs, more, count: BigInt(count) };
}
