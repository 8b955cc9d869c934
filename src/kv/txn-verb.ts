/**
 * The Txn verb: route to the one shard holding every key; a read-only txn across shards or
 * into history is read from one snapshot; a writing txn across shards is refused.
 */
import { Errors } from '../etcd/errors.js';
import type { TxnRequest } from '../etcd/types.js';
import { txnShards } from './route-txn.js';
import { readsHistory, snapshotTxn, txnWrites } from './txn-snapshot.js';
import type { MetaStore } from './store.js';
import { runShardTxn } from './shard-txn.js';
import type { TxnOutcome } from './txn-outcome.js';

export async function txn(store: MetaStore, req: TxnRequest): Promise<TxnOutcome> {
  const shards = [...txnShards(req, store.router)].sort((a, b) => a - b);
  if (!txnWrites(req) && (shards.length > 1 || readsHistory(req))) return snapshotTxn(store, req);
  if (shards.length > 1) throw Errors.crossShard(shards.map((i) => store.shards[i].name));
  // An empty txn touches no key: any shard can answer it.
  return runShardTxn(store, store.shards[shards[0] ?? 0], req);
}
