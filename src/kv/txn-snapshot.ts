/**
 * A read-only txn that one shard cannot answer alone (its keys span shards, or it reads at a
 * past revision): every compare and range is read at one meta revision M, fixed for all the
 * shards involved (kv/range.ts consistentRevision), so the answer is one consistent snapshot.
 */
import type { Compare, KeyValue, RangeRequest, RequestOp, ResponseOp, TxnRequest } from '../etcd/types.js';
import { fromWire, type MetaKV } from '../shard/meta-kv.js';
import { rangeRequest } from '../etcd/defaults.js';
import { evalCompare } from './compare.js';
import { consistentRevision, rangeInTxn } from './range.js';
import { txnShards } from './route-txn.js';
import type { MetaStore } from './store.js';
import type { TxnOutcome } from './txn-outcome.js';
import { revHeader } from '../etcd/header.js';

export function txnWrites(t: TxnRequest): boolean {
  return [...t.success, ...t.failure].some((op) => !!op.request_put || !!op.request_delete_range || (!!op.request_txn && txnWrites(op.request_txn)));
}

export function readsHistory(t: TxnRequest): boolean {
  return [...t.success, ...t.failure].some(
    (op) => (!!op.request_range && BigInt(op.request_range.revision) > 0n) || (!!op.request_txn && readsHistory(op.request_txn)),
  );
}

function rangeAt(key: Buffer, rangeEnd: Buffer, rev: bigint): RangeRequest {
  return rangeRequest(key, rangeEnd, { revision: rev.toString() });
}

function toMeta(kv: KeyValue): MetaKV {
  return { ...fromWire(kv), memberMod: 0n };
}

export async function snapshotTxn(store: MetaStore, req: TxnRequest): Promise<TxnOutcome> {
  // A txn reading history answers, as etcd does, with the current revision: at least the
  // coordinator clock (the shards involved are fenced up to it).
  const floor = readsHistory(req) ? (await store.coordinatorView()).clock : 0n;
  const rev = await consistentRevision(store, [...txnShards(req, store.router)], floor);

  const compares = async (cs: Compare[]): Promise<boolean> => {
    const results = await Promise.all(
      cs.map(async (c) => evalCompare(c, (await rangeInTxn(store, rangeAt(c.key, c.range_end, rev))).kvs.map(toMeta))),
    );
    return results.every(Boolean);
  };

  const run = async (t: TxnRequest): Promise<{ succeeded: boolean; responses: ResponseOp[] }> => {
    const succeeded = await compares(t.compare);
    const ops: RequestOp[] = succeeded ? t.success : t.failure;
    const responses = await Promise.all(
      ops.map(async (op): Promise<ResponseOp> => {
        if (op.request_range) {
          const r = op.request_range;
          const at = BigInt(r.revision) > 0n ? BigInt(r.revision) : rev;
          const res = await rangeInTxn(store, { ...r, revision: at.toString() });
          return { response: 'response_range', response_range: { ...res, header: revHeader(rev) } };
        }
        const nested = await run(op.request_txn as TxnRequest);
        return { response: 'response_txn', response_txn: { header: revHeader(0n), ...nested } };
      }),
    );
    return { succeeded, responses };
  };

  const out = await run(req);
  return { revision: rev, succeeded: out.succeeded, responses: out.responses, wrote: false };
}
