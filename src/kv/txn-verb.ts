/** The Txn verb: route to the one shard holding every key, or refuse a cross-shard txn. */
import { Errors } from '../etcd/errors.js';
import type { TxnRequest } from '../etcd/types.js';
import { txnShards } from './route-txn.js';
import type { MetaStore } from './store.js';
import { runShardTxn } from './txn.js';
import type { TxnOutcome } from './txn.js';

export async function txn(store: MetaStore, req: TxnRequest): Promise<TxnOutcome> {
  const shards = [...txnShards(req, store.router)].sort((a, b) => a - b);
  if (shards.length > 1) throw Errors.crossShard(shards.map((i) => store.shards[i].name));
  // An empty txn touches no key: any shard can answer it.
  return runShardTxn(store, store.shards[shards[0] ?? 0], req);
}
