/**
 * Fills one shard's tree from its member: the whole user keyspace read page by page at one
 * member revision (the merged stream's start point), so the pages together are the shard's
 * state at the stream's first revision and the stream's batches apply on top of it. Pages are
 * large (etcd 3.4 walks the rest of the range's index for every page, so few pages load much
 * faster), but shrink when values are large. A page's bytes are charged to the memory budget
 * (`load`) while it is decoded, and a page holds at most a 32nd of the budget (32 MiB at most):
 * the first page is small until the keys' size is known.
 */
import { fromMemberView } from '../shard/meta-kv.js';
import type { Keyspace } from '../shard/keyspace.js';
import type { Upstream } from '../upstream/upstream.js';
import type { KeyTree } from './key-tree.js';
import { emptyTree } from './key-tree.js';
import { encodeKeyValue } from '../wire/encoded-kv.js';
import type { MemoryBudget } from '../budget/memory-budget.js';

const ALL = Buffer.from([0]);
/** Bytes of keys and values one page should hold at most. */
const MAX_PAGE_BYTES = 32 * 1024 * 1024;
const MIN_PAGE = 16;
/** Keys of the first page, read before the keys' size is known. */
const FIRST_PAGE = 1000;
/** Assumed bytes per key of the first page, charged before it is read. */
const FIRST_KEY_BYTES = 1024;

/** The bytes one load page may hold under `budget` (null: no budget). */
export function loadPageBytes(budget: number | null): number {
  return budget === null ? MAX_PAGE_BYTES : Math.max(256 * 1024, Math.min(MAX_PAGE_BYTES, Math.floor(budget / 32)));
}

export interface Loaded {
  tree: KeyTree;
  bytes: number;
}

export async function loadShard(
  upstream: Upstream,
  ks: Keyspace,
  memberRev: bigint,
  pageKeys: number,
  cancelled: () => boolean,
  budget: MemoryBudget | null = null,
): Promise<Loaded> {
  const tree = emptyTree();
  let bytes = 0;
  const range = ks.toMemberRange(ALL, ALL);
  if (!range) return { tree, bytes };
  const maxPage = loadPageBytes(budget?.limit ?? null);
  let from = range.start;
  let limit = Math.min(pageKeys, FIRST_PAGE);
  let charged = Math.min(maxPage, limit * FIRST_KEY_BYTES);
  for (;;) {
    if (cancelled()) return { tree, bytes };
    // Charged before the read (what the last page's keys suggest), then at its real size.
    budget?.charge('load', charged);
    let pageBytes = 0;
    let res;
    try {
      res = await upstream.range({ key: from, range_end: range.end, revision: memberRev.toString(), limit: String(limit) });
      for (const kv of res.kvs) pageBytes += kv.key.length + kv.value.length;
      budget?.charge('load', pageBytes - charged);
      charged = pageBytes;
      for (const kv of res.kvs) {
        const meta = fromMemberView(kv, ks);
        const key = meta.key.toString('latin1');
        const enc = encodeKeyValue(meta);
        tree.set(key, enc, true);
        bytes += key.length + enc.length;
      }
    } finally {
      budget?.release('load', charged);
    }
    if (!res.more || res.kvs.length === 0) return { tree, bytes };
    // Large values: fewer keys per page, so one page stays near maxPage in memory.
    limit = Math.max(MIN_PAGE, Math.min(pageKeys, Math.floor((maxPage * res.kvs.length) / Math.max(1, pageBytes))));
    charged = Math.min(maxPage, Math.ceil((pageBytes / res.kvs.length) * limit));
    from = Buffer.concat([res.kvs[res.kvs.length - 1].key, ALL]);
    // Decoding a page is one synchronous step: let requests in between pages.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
