/**
 * A Range read from the members in pages, for answers that may be big (the member read path:
 * cache off or still loading). The first page of every involved shard fixes one meta revision
 * and each shard's member revision (range.ts rangeParts); the rest of each shard's part is read
 * at that member revision, a page at a time, and merged in key order. Each key is kept only in
 * its encoded form (wire/encoded-kv.ts), written straight into the response (allocated at the size
 * the first pages suggest) once it passed the request's filters, so what the read holds is the
 * response (counted twice: grpc-js copies it once more to frame it) plus one page per shard,
 * and `hold` is asked for room before every page:
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
import { encodeRangeResponseEntries, kvEntrySize } from '../wire/encoded-kv.js';
import { AnswerWriter, TRAILER } from './answer-writer.js';
import { fromMemberView, type MetaKV } from '../shard/meta-kv.js';
import { memberShape, revisionFilter } from './range-result.js';
import { rangeParts } from './range.js';
import type { MetaStore } from './store.js';

/** The answer of a paged read, encoded. */
export interface PagedRange {
  header: bigint;
  /** The encoded RangeResponse (memory outside the JS heap: no GC copies it). */
  response: Buffer;
  /** Bytes the answer holds until it was written (the response, and grpc-js's framed copy). */
  held: number;
}

export interface PageOptions {
  /** Bytes one member page should hold at most (keys are sized from the pages before). */
  pageBytes: number;
  /** The encoded response header (field 1) at a revision. */
  header: (rev: bigint) => Buffer;
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

  const sortKeys: SortKey[] = [];
  const pass = revisionFilter(r);
  const buffered = () => cursors.reduce((a, c) => a + c.pageBytes, 0);
  // The answer's size from the first pages' key sizes: the response is allocated at about that
  // size, and a read that cannot fit is refused before it reads more.
  let expected = 0;
  for (const c of cursors) {
    const keys = c.kvs.length;
    if (keys === 0) continue;
    const total = first.answers[c.shard].part.count;
    const wanted = stopAt > 0n && stopAt < total ? stopAt : total;
    let entryBytes = 0;
    for (const kv of c.kvs) entryBytes += kvEntrySize(kv, !r.keys_only);
    expected += Math.ceil((entryBytes / keys) * Number(wanted));
  }
  const head = opts.header(first.header);
  const direct = sortTarget === null;
  const capacity = direct ? Math.ceil(expected * 1.03) : 0;
  // Charged before the response is allocated: it, its framed copy, the pages buffered (for a
  // sort on another field: the entries' chunks, the response and its framed copy).
  const planned = (direct ? 2 * (head.length + capacity + TRAILER) : 3 * expected) + buffered();
  opts.expected?.(planned);
  opts.hold(planned);
  const out = new AnswerWriter(head, direct, capacity, opts.pageBytes);
  const held = () => out.held + buffered();

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
    // charged before the reads: the answer, the pages buffered, the new pages.
    const empty = cursors.filter((c) => c.pos >= c.kvs.length && c.more);
    if (empty.length) {
      opts.hold(held() + empty.length * opts.pageBytes);
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
    if (pass && !pass(kv)) continue;
    const size = kvEntrySize(kv, !r.keys_only);
    // A response larger than the first pages suggested grows (charged first).
    if (!out.fits(size)) opts.hold(out.heldAfterGrowth(size) + buffered());
    out.add(kv, size, !r.keys_only);
    if (sortTarget !== null) sortKeys.push(sortKeyOf(kv, sortTarget));
    if (stopAt > 0n && BigInt(out.entries) >= stopAt) break;
  }
  for (const c of cursors) c.kvs = [];

  let order: number[] | null = null;
  if (sortTarget !== null) {
    // Stable sort over key-ascending entries (ties stay in key order, as etcd's sort keeps them).
    const direction = r.sort_order === SortOrder.DESCEND ? -1 : 1;
    order = sortKeys.map((_, i) => i);
    order.sort((a, b) => direction * compareSortKeys(sortKeys[a], sortKeys[b]) || a - b);
  }
  let more = false;
  let keep = out.entries;
  if (limit > 0n && BigInt(keep) > limit) {
    keep = Number(limit);
    more = true;
  }
  if (order === null) return { header, response: out.finish(keep, more, count), held: out.held };
  opts.hold(out.held + out.bytes);
  const response = await encodeRangeResponseEntries(head, out.sorted(order.slice(0, keep)), more, count);
  return { header, response, held: 2 * response.length };
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
