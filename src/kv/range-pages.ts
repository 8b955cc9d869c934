/**
 * A Range read from the members in pages, for answers that may be big (the member read path:
 * cache off or still loading). The first page of every involved shard fixes one meta revision
 * and each shard's member revision (range.ts rangeParts); the rest of each shard's part is read
 * at that member revision, a page at a time, and merged in key order. Each key is kept only in
 * its encoded form (cache/wire.ts), written into chunks of about a page, once it passed the
 * request's filters, so what the read holds
 * is the answer so far (counted twice: the caller builds one response buffer from it, which
 * grpc-js copies once more to frame it) plus one page per shard, and `hold` is asked for room
 * before every page:
 * a read that does not fit stops with etcd's "too many requests" (memory-budget.ts) instead of
 * holding member messages, their decoded copies and the response at once.
 *
 * etcd's post-processing (range-result.ts assembleRange) is kept: count is the range's key count,
 * revision filters drop keys, the first limit+1 keys in key order are what etcd sorts when the
 * limit is pushed down, then sort and limit.
 */
import { Errors } from '../etcd/errors.js';
import type { RangeRequest } from '../etcd/types.js';
import { SortOrder, SortTarget } from '../etcd/types.js';
import { kvEntrySize, writeKvEntry } from '../cache/wire.js';
import { fromMemberView, type MetaKV } from '../shard/meta-kv.js';
import { filtered, memberShape } from './range-result.js';
import { rangeParts } from './range.js';
import type { MetaStore } from './store.js';

/** The answer of a paged read: its KeyValues encoded as RangeResponse entries, in the answer's order. */
export interface PagedRange {
  header: bigint;
  /** Views into a few large buffers (memory outside the JS heap: no GC copies them). */
  entries: Buffer[];
  /** Bytes of `entries`. */
  bytes: number;
  more: boolean;
  count: bigint;
}

export interface PageOptions {
  /** Bytes one member page should hold at most (keys are sized from the pages before). */
  pageBytes: number;
  /**
   * Asked before each page with everything the read will hold meanwhile (the answer so far, the
   * pages buffered, the next page); throws (etcd's "too many requests") when it does not fit.
   */
  hold: (bytes: number) => void;
  /** Told once, after the first pages: about how much the whole read will hold. */
  expected?: (bytes: number) => void;
  signal?: AbortSignal;
}

/** Keys per shard in the first page, before any size is known. */
const FIRST_PAGE_KEYS = 256;
const MIN_PAGE_KEYS = 16;
const MAX_PAGE_KEYS = 10_000;
/** A decoded member KeyValue's objects beyond its key and value bytes (response-size.ts). */
const KV_OBJECTS = 160;
/** An encoded KeyValue's revisions, version and framing beyond its key and value. */
const ENTRY_FIELDS = 24;
/** Bytes of one chunk the answer's entries are written into. */
const CHUNK_BYTES = 1024 * 1024;

/** One shard's part of the range, read page by page at one member revision. */
interface Cursor {
  shard: number;
  kvs: MetaKV[];
  pos: number;
  /** Bytes of the page in `kvs` (key, value and objects). */
  pageBytes: number;
  /** Keys per page for this shard, from the sizes seen so far. */
  pageKeys: number;
  more: boolean;
  at: bigint | null;
}

const ascendingByKey = (a: MetaKV, b: MetaKV): number => Buffer.compare(a.key, b.key);

/** The sort key of an answer entry for a non-key sort target (bigint, or the value's bytes). */
type SortKey = bigint | Buffer;

export async function rangeInPages(store: MetaStore, r: RangeRequest, opts: PageOptions): Promise<PagedRange> {
  const descending = r.sort_target === SortTarget.KEY && r.sort_order === SortOrder.DESCEND;
  const limit = BigInt(r.limit);
  const shape = memberShape(r);
  // The final order is the key order pages come in: the first limit+1 kept keys decide.
  const keyOrderFinal = r.sort_target === SortTarget.KEY;
  const stopAt = limit > 0n && (shape.limit > 0n || keyOrderFinal) ? limit + 1n : 0n;
  const sortTarget = keyOrderFinal ? null : r.sort_target;

  const firstKeys = stopAt > 0n && stopAt < BigInt(FIRST_PAGE_KEYS) ? Number(stopAt) : FIRST_PAGE_KEYS;
  const first = await rangeParts(
    store,
    {
      ...r,
      limit: String(firstKeys),
      sort_order: descending ? SortOrder.DESCEND : SortOrder.ASCEND,
      sort_target: SortTarget.KEY,
      count_only: false,
      keys_only: false,
      min_mod_revision: '0',
      max_mod_revision: '0',
      min_create_revision: '0',
      max_create_revision: '0',
    },
    true,
  );
  const header = first.header;
  const count = first.answers.reduce((a, s) => a + s.part.count, 0n);
  const memberRange = store.ks.toMemberRange(r.key, r.range_end);
  const cursors: Cursor[] = first.answers.map((a, i) => {
    const bytes = pageSize(a.part.kvs);
    return {
      shard: i,
      kvs: a.part.kvs,
      pos: 0,
      pageBytes: bytes,
      pageKeys: nextPageKeys(opts.pageBytes, a.part.kvs.length, bytes),
      more: a.at !== null && BigInt(a.part.kvs.length) < a.part.count,
      at: a.at,
    };
  });
  const shards = store.router.shardsForRange(r.key, r.range_end).map((i) => store.shards[i]);

  const kvs: Buffer[] = [];
  const sortKeys: SortKey[] = [];
  let chunk = Buffer.alloc(0);
  let chunkAt = 0;
  let bytes = 0;
  const maxMod = BigInt(r.max_mod_revision);
  const minMod = BigInt(r.min_mod_revision);
  const maxCreate = BigInt(r.max_create_revision);
  const minCreate = BigInt(r.min_create_revision);
  const isFiltered = filtered(r);
  const buffered = () => cursors.reduce((a, c) => a + c.pageBytes, 0);
  // What the whole read will hold, from the first pages' key sizes: refused early when it cannot fit.
  let expected = buffered();
  for (const c of cursors) {
    const keys = c.kvs.length;
    if (keys === 0) continue;
    const total = first.answers[c.shard].part.count;
    const wanted = stopAt > 0n && stopAt < total ? stopAt : total;
    let entryBytes = 0;
    for (const kv of c.kvs) entryBytes += kv.key.length + (r.keys_only ? 0 : kv.value.length) + ENTRY_FIELDS;
    expected += 2 * Math.ceil((entryBytes / keys) * Number(wanted));
  }
  opts.expected?.(expected);
  opts.hold(expected);

  /** Reads the next page of a cursor whose page is used up. */
  const refill = async (c: Cursor): Promise<void> => {
    if (opts.signal?.aborted) throw Errors.cancelled();
    const last = c.kvs[c.kvs.length - 1];
    c.kvs = [];
    c.pos = 0;
    c.pageBytes = 0;
    if (!memberRange || c.at === null || !last) {
      c.more = false;
      return;
    }
    const lastMember = store.ks.toMember(last.key);
    const res = await shards[c.shard].upstream.range({
      key: descending ? memberRange.start : Buffer.concat([lastMember, Buffer.from([0])]),
      range_end: descending ? lastMember : memberRange.end,
      revision: c.at.toString(),
      limit: String(c.pageKeys),
      sort_order: descending ? SortOrder.DESCEND : SortOrder.NONE,
      serializable: r.serializable,
    });
    c.kvs = res.kvs.map((kv) => fromMemberView(kv, store.ks));
    c.pageBytes = pageSize(c.kvs);
    c.pageKeys = nextPageKeys(opts.pageBytes, c.kvs.length, c.pageBytes);
    c.more = res.more && c.kvs.length > 0;
  };

  for (;;) {
    // Every cursor that ran out of its page but has more keys reads its next one first,
    // charged before the reads: the answer so far (twice), the pages buffered, the new pages.
    const empty = cursors.filter((c) => c.pos >= c.kvs.length && c.more);
    if (empty.length) {
      opts.hold(2 * bytes + buffered() + empty.length * opts.pageBytes);
      await Promise.all(empty.map(refill));
    }
    let best: Cursor | null = null;
    for (const c of cursors) {
      if (c.pos >= c.kvs.length) continue;
      if (!best) best = c;
      else {
        const cmp = ascendingByKey(c.kvs[c.pos], best.kvs[best.pos]);
        if (descending ? cmp > 0 : cmp < 0) best = c;
      }
    }
    if (!best) break;
    const kv = best.kvs[best.pos++];
    if (isFiltered) {
      if (maxMod !== 0n && kv.mod > maxMod) continue;
      if (minMod !== 0n && kv.mod < minMod) continue;
      if (maxCreate !== 0n && kv.create > maxCreate) continue;
      if (minCreate !== 0n && kv.create < minCreate) continue;
    }
    const size = kvEntrySize(kv, !r.keys_only);
    if (chunkAt + size > chunk.length) {
      chunk = Buffer.allocUnsafe(Math.max(size, Math.min(opts.pageBytes, CHUNK_BYTES)));
      chunkAt = 0;
    }
    const end = writeKvEntry(chunk, chunkAt, kv, !r.keys_only);
    kvs.push(chunk.subarray(chunkAt, end));
    bytes += end - chunkAt;
    chunkAt = end;
    if (sortTarget !== null) sortKeys.push(sortKeyOf(kv, sortTarget));
    if (stopAt > 0n && BigInt(kvs.length) >= stopAt) break;
  }
  for (const c of cursors) c.kvs = [];

  let out = kvs;
  if (sortTarget !== null) {
    // Stable sort over key-ascending entries (ties stay in key order, as etcd's sort keeps them).
    const order = r.sort_order === SortOrder.NONE ? SortOrder.ASCEND : r.sort_order;
    const idx = out.map((_, i) => i);
    idx.sort((a, b) => {
      const c = compareSortKeys(sortKeys[a], sortKeys[b]);
      return (order === SortOrder.DESCEND ? -c : c) || a - b;
    });
    out = idx.map((i) => kvs[i]);
  }
  let more = false;
  if (limit > 0n && BigInt(out.length) > limit) {
    for (const dropped of out.slice(Number(limit))) bytes -= dropped.length;
    out = out.slice(0, Number(limit));
    more = true;
  }
  return { header, entries: out, bytes, more, count };
}

function pageSize(kvs: readonly MetaKV[]): number {
  let n = 0;
  for (const kv of kvs) n += kv.key.length + kv.value.length + KV_OBJECTS;
  return n;
}

/** Keys per page so that a page holds about `pageBytes`, given the last page's size. */
function nextPageKeys(pageBytes: number, keys: number, bytes: number): number {
  if (keys === 0 || bytes === 0) return FIRST_PAGE_KEYS;
  return Math.max(MIN_PAGE_KEYS, Math.min(MAX_PAGE_KEYS, Math.floor((pageBytes * keys) / bytes)));
}

function sortKeyOf(kv: MetaKV, target: number): SortKey {
  switch (target) {
    case SortTarget.VERSION:
      return kv.version;
    case SortTarget.CREATE:
      return kv.create;
    case SortTarget.MOD:
      return kv.mod;
    default:
      return Buffer.from(kv.value);
  }
}

function compareSortKeys(a: SortKey, b: SortKey): number {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(a as Buffer, b as Buffer);
}
