/**
 * A txn whose chosen path writes nothing (the losers of a compare-and-swap, a read in a
 * branch), answered on the shard's owner from its own state, without a member read (DESIGN
 * "Authoritative state").
 *
 * Why the answer is linearizable. The state comes from hints that the owner's own applied
 * writes left (kv/hints.ts, exact for the writer's current generation), read while the txn
 * holds its key turns, so every earlier write of this replica to those keys was answered and
 * none is in flight; no write without turns (range writes, reaps) is in flight on the shard
 * either (Shard.withoutTurns). Let W be the last of those writes the member applied:
 * - W applied after the txn arrived: the answer holds just after W applied, inside the txn's
 *   time (W's pins and epoch held as it applied, so the state is exactly what W left). Known
 *   without a proof when the answer's revision R (the last batch the member applied, or a newer
 *   key's) is above what the writer had sent when the txn arrived (batches go one at a time, in
 *   revision order): R's batch was sent, so applied, after the arrival, and the answer holds
 *   just after it;
 * - W applied before: the answer holds when the txn arrived, provided no other replica wrote
 *   in between. The txn's arrival proof (clock/allocator.ts proof(), a coordinator read begun
 *   after it arrived) found this replica's revision block intact, and no other replica writes
 *   without first allocating past that block.
 * The proof is read only when needed (Arrival.proof). Without one (this replica does not own
 * every shard), the member is read as before.
 */
import type { RangeRequest, RangeResponse, ResponseOp } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import { revHeader } from '../etcd/header.js';
import { ownerAnswerProofWait, ownerStateAnswers } from '../metrics/registry.js';
import type { MetaKV } from '../shard/meta-kv.js';
import type { Shard } from '../shard/shard.js';
import type { StateHints } from './hints.js';
import { assembleRange } from './range-result.js';
import type { TxnOutcome } from './txn-outcome.js';
import type { Plan, PlannedOp } from './txn-plan.js';
import type { StateReads, TxnState } from './txn-state.js';

/**
 * The header revision the answer stands at, when the state is the owner's exact one (else
 * null). Called while the txn holds its key turns: after it leaves them, later writes to its
 * keys may land.
 */
export function exactRevision(hints: StateHints, shard: Shard, epoch: bigint, reads: StateReads, state: TxnState): bigint | null {
  if (shard.writer.ownerEpoch !== epoch) return null;
  const keys: ExactKey[] = [];
  for (const r of reads.reads) {
    if (r.kind !== 'key') return null;
    keys.push({ memberKey: shard.keyspace.toMember(r.key).toString('latin1'), kv: state.keys.get(r.id) ?? null });
  }
  return exactKeysRevision(hints, shard, keys);
}

/** A key's state as a txn read it (null: absent), under its latin1 member key. */
export interface ExactKey {
  memberKey: string;
  kv: MetaKV | null;
}

/**
 * The revision R at which `keys` stand exactly as given, on a shard this replica owns, or null:
 * each is the hint the owner's own applied write left (the writer's current generation) and
 * no write without turns runs on the shard. R is the last batch the member applied, or a newer
 * key's mod revision. Shared by the answers of owner-answer.ts and owner-reads.ts.
 */
export function exactKeysRevision(hints: StateHints, shard: Shard, keys: readonly ExactKey[]): bigint | null {
  const writer = shard.writer;
  if (writer.ownerEpoch === null || shard.unturnedWrites) return null;
  let rev = writer.applied;
  for (const { memberKey, kv } of keys) {
    if (!hints.isExact(memberKey, kv, writer.generation)) return null;
    if (kv && kv.mod > rev) rev = kv.mod;
  }
  return rev;
}

/** What a txn on a shard's owner notes when it arrives, for an answer from the owner's state. */
export interface Arrival {
  /** The last revision the shard's writer had sent (ShardWriter.sent). */
  sent: bigint;
  /** A clock read begun after the arrival (clock/allocator.ts proof), started on first call. */
  proof: () => Promise<bigint | null>;
}

export function arrivalOf(store: { clock: { proof(): Promise<bigint | null> } }, shard: Shard): Arrival {
  let read: Promise<bigint | null> | null = null;
  return { sent: shard.writer.sent, proof: () => (read ??= store.clock.proof()) };
}

/**
 * The answer from the state at `rev`: at once when `rev`'s batch was sent after the txn arrived,
 * else once its arrival proof held; null when the proof did not hold or the path reads what the
 * state does not hold (the member is read then).
 */
export async function answerFromOwnerState(
  plan: Plan,
  state: TxnState,
  rev: bigint,
  arrival: Arrival,
  history: ReadonlyMap<RangeRequest, RangeResponse>,
): Promise<TxnOutcome | null> {
  const responses = fromState(plan.ops, state, rev, history);
  if (!responses) return null;
  if (rev <= arrival.sent) {
    const started = performance.now();
    const proved = await arrival.proof();
    ownerAnswerProofWait.observe((performance.now() - started) / 1000);
    if (proved === null) return null;
  }
  ownerStateAnswers.inc();
  return { revision: rev, succeeded: plan.succeeded, responses, wrote: false };
}

/** The responses of a path that writes nothing, as assembleOps builds them from a member read. */
function fromState(ops: PlannedOp[], state: TxnState, rev: bigint, history: ReadonlyMap<RangeRequest, RangeResponse>): ResponseOp[] | null {
  const out: ResponseOp[] = [];
  for (const op of ops) {
    switch (op.kind) {
      case 'range': {
        const past = op.history ? history.get(op.req) : undefined;
        if (past) {
          out.push({ response: 'response_range', response_range: { ...past, header: revHeader(rev) } });
          continue;
        }
        // Only a single key the state holds; a range selecting nothing (op.range null) is empty.
        if (op.history || (op.range && (op.req.range_end.length > 0 || !state.keys.has(op.req.key.toString('latin1'))))) return null;
        const kv = op.range ? state.key(op.req.key) : null;
        const res = assembleRange(op.req, [{ kvs: kv ? [kv] : [], count: kv ? 1n : 0n }]);
        out.push({ response: 'response_range', response_range: { header: revHeader(rev), kvs: res.kvs, more: res.more, count: wire64(res.count) } });
        continue;
      }
      case 'delete':
        // A delete on this path hits nothing (else the path would write).
        if (op.hits) return null;
        out.push({ response: 'response_delete_range', response_delete_range: { header: revHeader(rev), deleted: wire64(0n), prev_kvs: [] } });
        continue;
      case 'txn': {
        const responses = fromState(op.ops, state, rev, history);
        if (!responses) return null;
        out.push({ response: 'response_txn', response_txn: { header: revHeader(0n), succeeded: op.succeeded, responses } });
        continue;
      }
      case 'put':
        return null;
    }
  }
  return out;
}
