/**
 * Evaluates a client txn against meta state the way etcd does (every compare on the chosen
 * path is evaluated before any op runs), and rewrites the chosen ops for the member: keys into
 * the member keyspace, values into envelopes carrying the meta revisions.
 */
import { Errors } from '../etcd/errors.js';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../etcd/types.js';
import { encodeEnvelope } from '../shard/envelope.js';
import type { Keyspace, MemberRange } from '../shard/keyspace.js';
import { putOp, rangeOp } from '../upstream/ops.js';
import { evalCompare } from './compare.js';
import { leaseIndexOps } from '../lease/index-ops.js';
import type { LeaseChange } from '../lease/index-ops.js';
import { memberShape } from './range-result.js';
import type { TxnState } from './txn-state.js';

export type PlannedOp =
  /** `history`: a Range at a past revision, read apart from the member txn (history is immutable). */
  | { kind: 'range'; req: RangeRequest; range: MemberRange | null; history: boolean }
  /** `leaseChange`: its lease index ops (lease/index-ops.ts); `delta`: the key's version delta (envelope.ts). */
  | { kind: 'put'; req: PutRequest; create: bigint | null; lease: bigint; value: Buffer | null; leaseChange: LeaseChange; delta: bigint }
  /** `leaseChange`: a single deleted key's lease index op (null for a range). */
  | { kind: 'delete'; req: DeleteRangeRequest; range: MemberRange | null; hits: boolean; leaseChange: LeaseChange | null }
  | { kind: 'txn'; succeeded: boolean; ops: PlannedOp[] };

export interface Plan {
  succeeded: boolean;
  ops: PlannedOp[];
  /** The chosen path changes data: it needs a revision and a fenced write. */
  writes: boolean;
}

export interface PlanContext {
  ks: Keyspace;
  /** The incarnation of a live lease (lease/keys.ts), null when the lease does not exist. */
  leaseIncarnation: (id: bigint) => bigint | null;
}

export function planTxn(txn: TxnRequest, state: TxnState, ctx: PlanContext): Plan {
  const succeeded = txn.compare.every((c) => evalCompare(c, state.compared(c)));
  const ops = planOps(succeeded ? txn.success : txn.failure, state, ctx);
  return { succeeded, ops, writes: ops.some(writes) };
}

function writes(op: PlannedOp): boolean {
  if (op.kind === 'put') return true;
  if (op.kind === 'delete') return op.hits;
  if (op.kind === 'txn') return op.ops.some(writes);
  return false;
}

function planOps(reqs: RequestOp[], state: TxnState, ctx: PlanContext): PlannedOp[] {
  // In op order, nested txns included: etcd reports the first apply-time error in that order.
  return reqs.map((op): PlannedOp => {
    if (op.request_range) {
      const r = op.request_range;
      return { kind: 'range', req: r, range: ctx.ks.toMemberRange(r.key, r.range_end), history: BigInt(r.revision) > 0n };
    }
    if (op.request_put) return planPut(op.request_put, state, ctx);
    if (op.request_delete_range) {
      const d = op.request_delete_range;
      const prevLease = d.range_end.length === 0 ? (state.key(d.key)?.lease ?? 0n) : 0n;
      return {
        kind: 'delete',
        req: d,
        range: ctx.ks.toMemberRange(d.key, d.range_end),
        hits: state.deletesSomething(d.key, d.range_end),
        leaseChange: prevLease !== 0n ? { prevLease, lease: 0n, incarnation: 0n } : null,
      };
    }
    if (op.request_txn) {
      const t = op.request_txn;
      const ok = t.compare.every((c) => evalCompare(c, state.compared(c)));
      return { kind: 'txn', succeeded: ok, ops: planOps(ok ? t.success : t.failure, state, ctx) };
    }
    throw Errors.keyNotFound();
  });
}

function planPut(p: PutRequest, state: TxnState, ctx: PlanContext): PlannedOp {
  if (!ctx.ks.writable(p.key)) throw Errors.reservedKey();
  const cur = state.key(p.key);
  if ((p.ignore_value || p.ignore_lease) && !cur) throw Errors.keyNotFound();
  const lease = p.ignore_lease ? (cur as NonNullable<typeof cur>).lease : BigInt(p.lease);
  let incarnation: bigint | null = null;
  if (!p.ignore_lease) {
    incarnation = lease === 0n ? 0n : ctx.leaseIncarnation(lease);
    if (incarnation === null) throw Errors.leaseNotFound();
  }
  return {
    kind: 'put',
    req: p,
    create: cur ? cur.create : null,
    lease,
    value: p.ignore_value ? (cur as NonNullable<typeof cur>).value : null,
    leaseChange: { prevLease: cur?.lease ?? 0n, lease, incarnation },
    // A key a chain wrote keeps its meta version ahead of the member's until it is deleted.
    delta: cur?.delta ?? 0n,
  };
}

/** Whether a planned delete becomes a member op: a read-only path must not send one that deletes nothing. */
export function emitsDelete(op: { range: MemberRange | null; hits: boolean }, readOnly: boolean): boolean {
  return op.range !== null && (op.hits || !readOnly);
}

/** Member ops of the chosen path in execution order (nested txns inline on a read-only path). */
export function memberOps(ops: PlannedOp[], rev: bigint, ks: Keyspace, readOnly = false): RequestOp[] {
  const out: RequestOp[] = [];
  for (const op of ops) {
    switch (op.kind) {
      case 'range': {
        if (!op.range || op.history) break;
        const shape = memberShape(op.req);
        out.push(
          rangeOp(op.range.start, op.range.end, {
            limit: shape.limit.toString(),
            sort_order: shape.sortDescendingByKey ? 2 : 0,
            count_only: shape.countOnly,
          }),
        );
        break;
      }
      case 'put': {
        const value = op.value ?? op.req.value;
        const key = ks.toMember(op.req.key);
        out.push(putOp(key, encodeEnvelope(rev, op.create ?? rev, op.lease, value, op.delta), op.req.prev_kv));
        out.push(...leaseIndexOps(key, op.leaseChange));
        break;
      }
      case 'delete':
        if (op.range && emitsDelete(op, readOnly)) {
          out.push({ request_delete_range: { key: op.range.start, range_end: op.range.end, prev_kv: op.req.prev_kv } });
          if (op.leaseChange) out.push(...leaseIndexOps(ks.toMember(op.req.key), op.leaseChange));
        }
        break;
      case 'txn':
        if (readOnly) {
          // Ranges only: flat, so that the member serves it as a read (no raft round).
          out.push(...memberOps(op.ops, rev, ks, readOnly));
        } else {
          // Kept nested (with no compare: the proxy chose the branch), so etcd's per-level limits
          // and duplicate-key rules apply to the member txn exactly as to the client's.
          out.push({ request_txn: { compare: [], success: memberOps(op.ops, rev, ks, readOnly), failure: [] } });
        }
        break;
    }
  }
  return out;
}


/** The Ranges at a past revision on the chosen path, in execution order. */
export function historyRanges(ops: PlannedOp[]): RangeRequest[] {
  return ops.flatMap((op) => (op.kind === 'range' && op.history ? [op.req] : op.kind === 'txn' ? historyRanges(op.ops) : []));
}
