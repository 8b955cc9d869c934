/**
 * Turns per-shard key lists into one etcd RangeResponse: merge in key order, then etcd's own
 * post-processing (revision filters, sort, limit, keys_only/count_only) on meta values.
 */
import type { KeyValue, RangeRequest } from '../etcd/types.js';
import { SortOrder, SortTarget } from '../etcd/types.js';
import type { MetaKV } from '../shard/meta-kv.js';
import { toWire } from '../shard/meta-kv.js';

export interface ShardRangePart {
  kvs: MetaKV[];
  /** Keys in the shard's part of the range, before any limit (etcd's count). */
  count: bigint;
}

/** What the members are asked for: limit and order only when the proxy need not see everything. */
export interface MemberRangeShape {
  limit: bigint;
  sortDescendingByKey: boolean;
  countOnly: boolean;
}

/** A request with a revision filter (etcd then fetches every key of the range). */
export function filtered(r: RangeRequest): boolean {
  return r.min_mod_revision !== '0' || r.max_mod_revision !== '0' || r.min_create_revision !== '0' || r.max_create_revision !== '0';
}

/**
 * etcd fetches limit+1 keys in key order unless the request has a sort order or a revision
 * filter (then it fetches everything). So with sort_order NONE and a non-key target, etcd
 * sorts only the first limit+1 keys: the proxy asks each member for limit+1 keys in key order
 * and does the same. A key sort in either direction is pushed down as such.
 */
/** The request's revision filters (min/max mod and create revision) as one test; null: none. */
export function revisionFilter(r: RangeRequest): ((kv: MetaKV) => boolean) | null {
  if (!filtered(r)) return null;
  const maxMod = BigInt(r.max_mod_revision);
  const minMod = BigInt(r.min_mod_revision);
  const maxCreate = BigInt(r.max_create_revision);
  const minCreate = BigInt(r.min_create_revision);
  return (kv) =>
    (maxMod === 0n || kv.mod <= maxMod) &&
    (minMod === 0n || kv.mod >= minMod) &&
    (maxCreate === 0n || kv.create <= maxCreate) &&
    (minCreate === 0n || kv.create >= minCreate);
}

export function memberShape(r: RangeRequest): MemberRangeShape {
  if (r.count_only) return { limit: 0n, sortDescendingByKey: false, countOnly: true };
  const limit = BigInt(r.limit);
  if (limit <= 0n || filtered(r)) return { limit: 0n, sortDescendingByKey: false, countOnly: false };
  if (r.sort_order === SortOrder.NONE) return { limit: limit + 1n, sortDescendingByKey: false, countOnly: false };
  if (r.sort_target === SortTarget.KEY) {
    return { limit: limit + 1n, sortDescendingByKey: r.sort_order === SortOrder.DESCEND, countOnly: false };
  }
  return { limit: 0n, sortDescendingByKey: false, countOnly: false };
}

/**
 * K-way merge of lists each sorted by `compare` (ascending, or descending when `descending`):
 * the shards' parts of one key range.
 */
export function mergeSorted<T>(parts: T[][], compare: (a: T, b: T) => number, descending: boolean): T[] {
  const lists = parts.filter((p) => p.length > 0);
  if (lists.length <= 1) return lists[0] ?? [];
  const out: T[] = [];
  const idx = lists.map(() => 0);
  for (;;) {
    let best = -1;
    for (let i = 0; i < lists.length; i++) {
      if (idx[i] >= lists[i].length) continue;
      if (best < 0) {
        best = i;
        continue;
      }
      const c = compare(lists[i][idx[i]], lists[best][idx[best]]);
      if (descending ? c > 0 : c < 0) best = i;
    }
    if (best < 0) return out;
    out.push(lists[best][idx[best]++]);
  }
}

const byKey = (a: MetaKV, b: MetaKV): number => Buffer.compare(a.key, b.key);

function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortKey(target: number): (a: MetaKV, b: MetaKV) => number {
  switch (target) {
    case SortTarget.VERSION:
      return (a, b) => compareBig(a.version, b.version);
    case SortTarget.CREATE:
      return (a, b) => compareBig(a.create, b.create);
    case SortTarget.MOD:
      return (a, b) => compareBig(a.mod, b.mod);
    case SortTarget.VALUE:
      return (a, b) => Buffer.compare(a.value, b.value);
    default:
      return (a, b) => Buffer.compare(a.key, b.key);
  }
}

export interface RangeOutcome {
  kvs: KeyValue[];
  more: boolean;
  count: bigint;
}

export function assembleRange(r: RangeRequest, parts: ShardRangePart[]): RangeOutcome {
  const shape = memberShape(r);
  const count = parts.reduce((a, p) => a + p.count, 0n);
  if (r.count_only) return { kvs: [], more: false, count };
  let kvs = mergeSorted(
    parts.map((p) => p.kvs),
    byKey,
    shape.sortDescendingByKey,
  );
  const pass = revisionFilter(r);
  if (pass) kvs = kvs.filter(pass);

  // What etcd fetched: at most limit+1 keys when it pushes the limit down.
  if (shape.limit > 0n && BigInt(kvs.length) > shape.limit) kvs = kvs.slice(0, Number(shape.limit));

  let order = r.sort_order;
  if (r.sort_target !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
  const keyOrderDone = r.sort_target === SortTarget.KEY && (order === SortOrder.NONE || order === SortOrder.ASCEND || shape.sortDescendingByKey);
  if (order !== SortOrder.NONE && !keyOrderDone) {
    // Stable sort over key-ascending input: ties stay in key order, as etcd's sort does for them.
    const byTarget = sortKey(r.sort_target);
    kvs = [...kvs].sort(order === SortOrder.DESCEND ? (a, b) => byTarget(b, a) : byTarget);
  }
  const limit = BigInt(r.limit);
  let more = false;
  if (limit > 0n && BigInt(kvs.length) > limit) {
    kvs = kvs.slice(0, Number(limit));
    more = true;
  }
  return { kvs: kvs.map((kv) => toWire(kv, r.keys_only)), more, count };
}
