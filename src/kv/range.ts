/**
 * Range: fan out to the shards that can hold keys of the range and merge their answers into
 * one consistent snapshot at a single meta revision M (DESIGN invariant 1, "Read path").
 *
 * - Current linearizable reads: every shard is read with its clock; M is the highest clock.
 *   A shard whose clock is below M is fenced up to M in a txn that re-reads it, so no write at
 *   or below M can land there afterwards and its answer is its state at M; if a write moved it
 *   past M first, it is read at its member revision for M.
 * - Serializable reads never write: M is the lowest clock and shards ahead of it are read at
 *   the member revision that corresponds to M.
 * - Reads at a past revision R: checked against the coordinator's clock (future) and
 *   compaction record (compacted); shards ahead of R are read at their member revision for R,
 *   shards behind it are fenced up to R.
 */
import { Errors } from '../etcd/errors.js';
import type { RangeRequest, RangeResponse, RequestOp } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import type { MemberRange } from '../shard/keyspace.js';
import { fromMember } from '../shard/meta-kv.js';
import type { MetaKV } from '../shard/meta-kv.js';
import type { ClockRead, Shard } from '../shard/shard.js';
import { rangeOp } from '../shard/shard.js';
import type { TxnResponse } from '../etcd/types.js';
import { assembleRange, memberShape } from './range-result.js';
import type { ShardRangePart } from './range-result.js';
import type { MetaStore } from './store.js';
import { revHeader } from './txn-response.js';

interface ShardAnswer {
  clock: ClockRead;
  part: ShardRangePart;
}

/** The member side of a client range: etcd's limit+1 / key-order pushdown (range-result.ts). */
function memberRangeOp(r: RangeRequest, range: MemberRange): RequestOp {
  const shape = memberShape(r);
  return rangeOp(range.start, range.end, {
    limit: shape.limit.toString(),
    sort_order: shape.sortDescendingByKey ? 2 : 0,
    count_only: shape.countOnly,
  });
}

/** The range answer in a member txn's responses (the first op after any clock op). */
function partOf(store: MetaStore, responses: TxnResponse['responses'] | undefined): ShardRangePart {
  const rr = responses?.[0]?.response_range;
  if (!rr) return { kvs: [], count: 0n };
  return { kvs: rr.kvs.map((kv) => fromMember(kv, store.ks)), count: BigInt(rr.count) };
}

export async function range(store: MetaStore, r: RangeRequest): Promise<RangeResponse> {
  const range = store.ks.toMemberRange(r.key, r.range_end);
  const shardIdx = store.router.shardsForRange(r.key, r.range_end);
  const shards = shardIdx.map((i) => store.shards[i]);
  const wanted = BigInt(r.revision);
  let answers: ShardAnswer[];
  let header: bigint;
  if (wanted > 0n) {
    if (wanted < store.compactedRevision) throw Errors.compacted();
    // etcd checks a future revision first, then a compacted one.
    const view = await store.coordinatorView();
    if (wanted > view.clock) throw Errors.futureRev();
    if (wanted < view.compacted) throw Errors.compacted();
    ({ answers, header } = await readAt(store, shards, r, range, wanted));
  } else if (r.serializable) {
    ({ answers, header } = await readSerializable(store, shards, r, range));
  } else {
    ({ answers, header } = await readLinearizable(store, shards, r, range));
  }
  const out = assembleRange(r, answers.map((a) => a.part));
  return { header: revHeader(header), kvs: out.kvs, more: out.more, count: wire64(out.count) };
}

/** The member ops of a client range: none when it selects nothing a client may see. */
function memberOps(r: RangeRequest, range: MemberRange | null): RequestOp[] {
  return range ? [memberRangeOp(r, range)] : [];
}

async function readCurrent(store: MetaStore, shard: Shard, ops: RequestOp[], serializable: boolean): Promise<ShardAnswer> {
  const res = await shard.read(ops, serializable);
  return { clock: res.clock, part: partOf(store, res.responses) };
}

/**
 * Every shard read at once, with the coordinator's clock; M = the highest of them (so M is at
 * least every revision acknowledged before the read: shards whose owners vouch for idle
 * watermarks are not fenced, so a shard's own clock may lag the global clock). A shard behind
 * M is fenced up to M; if a write moved it past M first, its clock still fixes its state at M,
 * which is then read at the member revision for M (so the target never has to move while
 * writes go on).
 */
async function readLinearizable(store: MetaStore, shards: Shard[], r: RangeRequest | null, range: MemberRange | null) {
  const ops = r ? memberOps(r, range) : [];
  const [answers, global] = await Promise.all([Promise.all(shards.map((s) => readCurrent(store, s, ops, false))), store.clock.current()]);
  const local = maxClock(answers);
  const target = global > local ? global : local;
  await Promise.all(
    answers.map(async (a, i) => {
      if (a.clock.clock >= target) return;
      answers[i] = await shardAt(store, shards[i], r, range, target, a.clock);
    }),
  );
  return { answers, header: target };
}

/** One shard's part of the range at `rev`, given a current read `head` of it (see readAt). */
async function shardAt(store: MetaStore, s: Shard, r: RangeRequest | null, range: MemberRange | null, rev: bigint, head: ClockRead): Promise<ShardAnswer> {
  const ops = r ? memberOps(r, range) : [];
  if (head.clock < rev) {
    const res = await s.fenceAndRead(rev, ops);
    if (res.fenced) return { clock: res.clock, part: partOf(store, res.responses) };
    head = res.clock;
    if (head.clock === rev) return { clock: head, part: partOf(store, res.responses) };
  }
  if (!r || !range) return { clock: head, part: { kvs: [], count: 0n } };
  return readHistorical(store, s, r, range, rev, head);
}

async function readSerializable(store: MetaStore, shards: Shard[], r: RangeRequest, range: MemberRange | null) {
  const answers = await Promise.all(shards.map((s) => readCurrent(store, s, memberOps(r, range), true)));
  const target = answers.reduce((m, a) => (a.clock.clock < m ? a.clock.clock : m), answers[0].clock.clock);
  await Promise.all(
    answers.map(async (a, i) => {
      if (a.clock.clock <= target || !range) return;
      answers[i] = await readHistorical(store, shards[i], r, range, target, a.clock);
    }),
  );
  return { answers, header: target };
}

async function readHistorical(store: MetaStore, shard: Shard, r: RangeRequest, range: MemberRange, rev: bigint, head: ClockRead): Promise<ShardAnswer> {
  const point = await store.revmaps[shard.index].memberRevAt(rev, head);
  const at = async (memberRev: bigint, req: RangeRequest) => {
    const res = await shard.upstream.range({ ...req, revision: memberRev.toString() });
    return { kvs: res.kvs.map((kv) => fromMember(kv, store.ks)), count: BigInt(res.count) };
  };
  if (point.partial === null) {
    return { clock: head, part: await at(point.rev, memberRangeOp(r, range).request_range as RangeRequest) };
  }
  // R falls inside a batch: its puts at or below R, over the state before the batch (revmap.ts).
  const whole = rangeOp(range.start, range.end).request_range as RangeRequest;
  const [before, after] = await Promise.all([at(point.rev, whole), at(point.partial, whole)]);
  let kvs = stateAt(before.kvs, after.kvs, rev);
  const shape = memberShape(r);
  const count = BigInt(kvs.length);
  if (shape.countOnly) return { clock: head, part: { kvs: [], count } };
  // What a member would have answered to the pushed-down request (range-result.ts memberShape).
  if (shape.sortDescendingByKey) kvs.reverse();
  if (shape.limit > 0n) kvs = kvs.slice(0, Number(shape.limit));
  return { clock: head, part: { kvs, count } };
}

/**
 * Merges the key-sorted states before and after a batch into the state at `rev` inside it:
 * a key's version after the batch counts if it was written at or below `rev`, else the one
 * before (deletes close their batch, so none of them precedes `rev`).
 */
function stateAt(before: MetaKV[], after: MetaKV[], rev: bigint): MetaKV[] {
  const out: MetaKV[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    const c = i >= before.length ? 1 : j >= after.length ? -1 : Buffer.compare(before[i].key, after[j].key);
    if (c < 0) out.push(before[i++]);
    else if (c > 0) {
      if (after[j].mod <= rev) out.push(after[j]);
      j++;
    } else {
      out.push(after[j].mod <= rev ? after[j] : before[i]);
      i++;
      j++;
    }
  }
  return out;
}

async function readAt(store: MetaStore, shards: Shard[], r: RangeRequest, range: MemberRange | null, rev: bigint) {
  const heads = await Promise.all(shards.map((s) => s.currentClock(false)));
  const answers = await Promise.all(shards.map((s, i) => shardAt(store, s, r, range, rev, heads[i])));
  return { answers, header: maxClock(answers) };
}

/**
 * A meta revision at which every given shard's state is fixed and readable (linearizable):
 * the highest of their clocks, with lagging shards fenced up to it.
 */
export async function consistentRevision(store: MetaStore, shardIdx: number[]): Promise<bigint> {
  const shards = shardIdx.map((i) => store.shards[i]);
  const { header } = await readLinearizable(store, shards, null, null);
  return header;
}

function maxClock(answers: ShardAnswer[]): bigint {
  return answers.reduce((m, a) => (a.clock.clock > m ? a.clock.clock : m), 0n);
}
