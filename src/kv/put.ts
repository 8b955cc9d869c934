/** The Put verb: a one-op txn on the key's shard (same fence, pins and envelope). */
import type { PutRequest, PutResponse } from '../etcd/types.js';
import type { MetaStore } from './store.js';
import { runShardTxn } from './shard-txn.js';
import { revHeader } from '../etcd/header.js';

export async function put(store: MetaStore, req: PutRequest): Promise<PutResponse> {
  const shard = store.shards[store.router.shardOf(req.key)];
  const out = await runShardTxn(store, shard, { compare: [], success: [{ request_put: req }], failure: [] });
  const pr = out.responses[0]?.response_put;
  return { header: revHeader(out.revision), prev_kv: req.prev_kv ? pr?.prev_kv : undefined };
}
