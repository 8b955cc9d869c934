/**
 * Fills one shard's tree from its member: the whole user keyspace read page by page at one
 * member revision (the merged stream's start point), so the pages together are the shard's
 * state at the stream's first revision and the stream's batches apply on top of it. Pages are
 * large (etcd 3.4 walks the rest of the range's index for every page, so few pages load much
 * faster), but shrink when values are large.
 */
import { fromMember } from '../shard/meta-kv.js';
import type { Keyspace } from '../shard/keyspace.js';
import type { Upstream } from '../upstream/upstream.js';
import type { KeyTree } from './key-tree.js';
import { emptyTree } from './key-tree.js';
import { encodeKeyValue } from './wire.js';

const ALL = Buffer.from([0]);
/** Bytes of keys and values one page should hold at most (after the first page). */
const PAGE_BYTES = 32 * 1024 * 1024;
const MIN_PAGE = 16;

export interface Loaded {
  tree: KeyTree;
  bytes: number;
}

export async function loadShard(upstream: Upstream, ks: Keyspace, memberRev: bigint, pageKeys: number, cancelled: () => boolean): Promise<Loaded> {
  const tree = emptyTree();
  let bytes = 0;
  const range = ks.toMemberRange(ALL, ALL);
  if (!range) return { tree, bytes };
  let from = range.start;
  let limit = pageKeys;
  for (;;) {
    if (cancelled()) return { tree, bytes };
    const res = await upstream.range({ key: from, range_end: range.end, revision: memberRev.toString(), limit: String(limit) });
    let pageBytes = 0;
    for (const kv of res.kvs) {
      pageBytes += kv.key.length + kv.value.length;
      const meta = fromMember(kv, ks);
      const key = meta.key.toString('latin1');
      const enc = encodeKeyValue(meta);
      tree.set(key, enc, true);
      bytes += key.length + enc.length;
    }
    if (!res.more || res.kvs.length === 0) return { tree, bytes };
    // Large values: fewer keys per page, so one page stays near PAGE_BYTES in memory.
    limit = Math.max(MIN_PAGE, Math.min(pageKeys, Math.floor((PAGE_BYTES * res.kvs.length) / Math.max(1, pageBytes))));
    from = Buffer.concat([res.kvs[res.kvs.length - 1].key, ALL]);
  }
}
