/**
 * Rebuilds the client's TxnResponse from the member's flat responses, in etcd's shape: inner
 * responses carry only a revision (the txn's once it has changed something, the prior one
 * before), nested txn responses carry an empty header.
 */
import type { DeleteRangeResponse, RangeRequest, RangeResponse, ResponseOp, TxnResponse } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import type { Keyspace } from '../shard/keyspace.js';
import { fromMember, toWire } from '../shard/meta-kv.js';
import { assembleRange } from './range-result.js';
import type { PlannedOp } from './txn-plan.js';
import { emitsDelete } from './txn-plan.js';
import { leaseIndexOpCount } from '../lease/index-ops.js';
import { revHeader } from '../etcd/header.js';

export interface AssembleContext {
  ks: Keyspace;
  /** The revision of this txn when it writes. */
  rev: bigint;
  /** The revision the state stood at before it (the shard clock read in the same member txn). */
  before: bigint;
  /** The member ops were built for a read-only path (see emitsDelete). */
  readOnly: boolean;
  /** Answers of the Ranges at a past revision, read apart (shard-txn.ts). */
  history?: ReadonlyMap<RangeRequest, RangeResponse>;
}

export function assembleOps(ops: PlannedOp[], member: TxnResponse['responses'], ctx: AssembleContext): ResponseOp[] {
  let changed = false;
  const walk = (list: PlannedOp[], level: TxnResponse['responses'], cur: { i: number }): ResponseOp[] =>
    list.map((op): ResponseOp => {
      switch (op.kind) {
        case 'range': {
          const past = op.history ? ctx.history?.get(op.req) : undefined;
          if (past) return { response: 'response_range', response_range: { ...past, header: revHeader(changed ? ctx.rev : ctx.before) } };
          const rr = op.range && !op.history ? level[cur.i++]?.response_range : undefined;
          const kvs = rr ? rr.kvs.map((kv) => fromMember(kv, ctx.ks)) : [];
          const out = assembleRange(op.req, [{ kvs, count: rr ? BigInt(rr.count) : 0n }]);
          return {
            response: 'response_range',
            response_range: { header: revHeader(changed ? ctx.rev : ctx.before), kvs: out.kvs, more: out.more, count: wire64(out.count) },
          };
        }
        case 'put': {
          const pr = level[cur.i++]?.response_put;
          cur.i += leaseIndexOpCount(op.leaseChange);
          changed = true;
          const prev = pr?.prev_kv ? toWire(fromMember(pr.prev_kv, ctx.ks)) : undefined;
          return { response: 'response_put', response_put: { header: revHeader(ctx.rev), prev_kv: prev } };
        }
        case 'delete': {
          const emitted = emitsDelete(op, ctx.readOnly);
          const dr = emitted ? level[cur.i++]?.response_delete_range : undefined;
          if (emitted && op.leaseChange) cur.i += leaseIndexOpCount(op.leaseChange);
          const deleted = dr ? BigInt(dr.deleted) : 0n;
          if (deleted > 0n) changed = true;
          const res: DeleteRangeResponse = {
            header: revHeader(changed ? ctx.rev : ctx.before),
            deleted: wire64(deleted),
            prev_kvs: (dr?.prev_kvs ?? []).map((kv) => toWire(fromMember(kv, ctx.ks))),
          };
          return { response: 'response_delete_range', response_delete_range: res };
        }
        case 'txn': {
          // Read-only paths flatten nested txns into their parent; writing paths keep them (txn-plan.ts).
          const responses = ctx.readOnly ? walk(op.ops, level, cur) : walk(op.ops, level[cur.i++]?.response_txn?.responses ?? [], { i: 0 });
          return { response: 'response_txn', response_txn: { header: revHeader(0n), succeeded: op.succeeded, responses } };
        }
      }
    });
  return walk(ops, member, { i: 0 });
}
