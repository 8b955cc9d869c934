/**
 * The DeleteRange verb. A range that spans shards is deleted shard by shard, each part under
 * its own revision (documented in the README until cross-shard atomic writes exist).
 */
import type { DeleteRangeRequest, DeleteRangeResponse, KeyValue } from '../etcd/types.js';
import type { MetaStore } from './store.js';
import { runShardTxn } from './shard-txn.js';
import { revHeader } from '../etcd/header.js';

export async function deleteRange(store: MetaStore, req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
  const shardIdx = store.router.shardsForRange(req.key, req.range_end);
  const parts = await Promise.all(
    shardIdx.map((i) => runShardTxn(store, store.shards[i], { compare: [], success: [{ request_delete_range: req }], failure: [] })),
  );
  let deleted = 0n;
  let header = 0n;
  const prev: KeyValue[] = [];
  for (const p of parts) {
    const dr = p.responses[0]?.response_delete_range;
    deleted += BigInt(dr?.deleted ?? '0');
    if (p.revision > header) header = p.revision;
    if (dr) prev.push(...dr.prev_kvs);
  }
  prev.sort((a, b) => Buffer.compare(a.key, b.key));
  return { header: revHeader(header), deleted: deleted.toString(), prev_kvs: req.prev_kv ? prev : [] };
}
