/**
 * Why a write routed to a shard's owner was not applied, so that it may be routed again
 * (kv/shard-txn.ts runShardTxn): the ownership moved under it, or the owner was never reached.
 */
import * as grpc from '@grpc/grpc-js';
import { EtcdError } from '../etcd/errors.js';

/** The shard's ownership moved: the write was not applied; route it to the new owner. */
export class NotOwnerError extends Error {
  constructor(shard: string) {
    super(`etcd-metaproxy: this replica no longer owns shard ${shard}`);
    this.name = 'NotOwnerError';
  }
}

/** The owner could not be reached at all: the request was never sent, so it may be routed again. */
export class OwnerUnreachableError extends EtcdError {
  constructor(url: string, details: string) {
    super(grpc.status.UNAVAILABLE, `etcd-metaproxy: shard owner at ${url} unavailable: ${details}`);
  }
}
