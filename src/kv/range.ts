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
 * - Reads at a past revision R: checked against the coordinator's clock C (future) and
 *   compaction record (compacted). As in etcd, the header is the current revision, not R: at
 *   least C (so at least every write acknowledged before the read) and every involved shard's
 *   clock; shards below that header H are fenced up to H (later reads of these keys never stand
 *   below it). Each shard's part is its state at R: read in the fence when its clock was at or
 *   below R, else at its member revision for R.
 */
import { Errors, notApplied } from '../etcd/errors.js';
import type { RangeRequest, RangeResponse, RequestOp, TxnResponse } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import type { MemberRange } from '../shard/keyspace.js';
import { chainStateAt, fromMember } from '../shard/meta-kv.js';
import type { MetaKV } from '../shard/meta-kv.js';
import type { ClockRead, Shard } from '../shard/shard.js';
import { rangeOp } from '../upstream/ops.js';
import { assembleRange, memberShape } from './range-result.js';
import type { ShardRangePart } from './range-result.js';
import type { MetaStore } from './store.js';
import { revHeader } from '../etcd/header.js';

export interface ShardAnswer {
  clock: ClockRead;
  part: ShardRangePart;
  /**
   * The member revision the part was read at (the shard's state at the answer's meta
   * revision): the rest of a paged read continues there (range-pages.ts). Null when the part
   * already holds every key of the range (a state inside a batch, merged from two reads) or
   * nothing was read.
   */
  at: bigint | null;
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

/** A client Range (the KV verb): a past revision is answered with the current revision in the header. */
export function range(store: MetaStore, r: RangeRequest): Promise<RangeResponse> {
  return rangeWith(store, r, true);
}

/**
 * A Range inside a read-only txn, whose header the txn sets: a past revision is read without
 * raising the involved shards to the current revision (the txn fixed its own revision).
 */
export function rangeInTxn(store: MetaStore, r: RangeRequest): Promise<RangeResponse> {
  return rangeWith(store, r, false);
}

async function rangeWith(store: MetaStore, r: RangeRequest, currentHeader: boolean): Promise<RangeResponse> {
  const { answers, header } = await rangeParts(store, r, currentHeader);
  const out = assembleRange(r, answers.map((a) => a.part));
  return { header: revHeader(header), kvs: out.kvs, more: out.more, count: wire64(out.count) };
}

/**
 * Every involved shard's part of a client range at one meta revision (the header), each as its
 * member answered the pushed-down request (memberShape), with the member revision to read
 * more of it at.
 */
export async function rangeParts(store: MetaStore, r: RangeRequest, currentHeader: boolean): Promise<{ answers: ShardAnswer[]; header: bigint }> {
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
    ({ answers, header } = await readAt(store, shards, r, range, wanted, currentHeader ? view.clock : null));
  } else if (r.serializable) {
    ({ answers, header } = await readSerializable(store, shards, r, range));
  } else {
    ({ answers, header } = await readLinearizable(store, shards, r, range));
  }
  return { answers, header };
}

/** The member ops of a client range: none when it selects nothing a client may see. */
function memberOps(r: RangeRequest, range: MemberRange | null): RequestOp[] {
  return range ? [memberRangeOp(r, range)] : [];
}

async function readCurrent(store: MetaStore, shard: Shard, ops: RequestOp[], serializable: boolean): Promise<ShardAnswer> {
  const res = await shard.read(ops, serializable);
  return { clock: res.clock, part: partOf(store, res.responses), at: res.clock.memberRev };
}

/**
 * Every shard read at once, with the coordinator's clock; M = the highest of them (so M is at
 * least every revision acknowledged before the read: shards whose owners vouch for idle
 * watermarks are not fenced, so a shard's own clock may lag the global clock). A shard behind
 * M is fenced up to M; if a write moved it past M first, its clock still fixes its state at M,
 * which is then read at the member revision for M (so the target never has to move while
 * writes go on).
 */
async function readLinearizable(store: MetaStore, shards: Shard[], r: RangeRequest | null, range: MemberRange | null, floor = 0n) {
  const ops = r ? memberOps(r, range) : [];
  const [answers, global] = await Promise.all([Promise.all(shards.map((s) => readCurrent(store, s, ops, false))), store.clock.current()]);
  let target = maxClock(answers);
  if (global > target) target = global;
  if (floor > target) target = floor;
  await Promise.all(
    answers.map(async (a, i) => {
      if (a.clock.clock >= target) return;
      answers[i] = await shardAt(store, shards[i], r, range, target, a.clock);
    }),
  );
  return { answers, header: target };
}

/** One shard's part of a linearizable range at `rev`, given a current read `head` of it. */
async function shardAt(store: MetaStore, s: Shard, r: RangeRequest | null, range: MemberRange | null, rev: bigint, head: ClockRead): Promise<ShardAnswer> {
  const ops = r ? memberOps(r, range) : [];
  if (head.clock < rev) {
    const res = await s.fenceAndRead(rev, ops).catch(async (err: unknown) => {
      // A member that refuses writes (NOSPACE) cannot be fenced: its owner vouches instead.
      const read = notApplied(err) ? await vouchedRead(store, s, ops, rev) : null;
      if (!read) throw err;
      return read;
    });
    if (res.fenced) return { clock: res.clock, part: partOf(store, res.responses), at: res.clock.memberRev };
    head = res.clock;
    if (head.clock === rev) return { clock: head, part: partOf(store, res.responses), at: head.memberRev };
  }
  if (!r || !range) return { clock: head, part: { kvs: [], count: 0n }, at: null };
  return readHistorical(store, s, r, range, rev, head);
}

/**
 * The shard's state at `rev` without a fence: its owner's word that every write at or below
 * `rev` has landed by member revision M, then a read at or past M. A clock still below `rev`
 * there means no write between it and `rev` landed or ever will: that state is the one at
 * `rev` (answered as if fenced). Null when there is no owner to ask.
 */
async function vouchedRead(store: MetaStore, s: Shard, ops: RequestOp[], rev: bigint) {
  const m = await store.routing?.settle(s.index, rev).catch(() => null);
  if (m === null || m === undefined) return null;
  const cur = await s.read(ops);
  if (cur.clock.memberRev < m) return null;
  const fenced = cur.clock.clock < rev;
  return { clock: fenced ? { clock: rev, memberRev: cur.clock.memberRev } : cur.clock, prior: cur.clock.clock, responses: cur.responses, fenced };
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
    return { clock: head, part: await at(point.rev, memberRangeOp(r, range).request_range as RangeRequest), at: point.rev };
  }
  // R falls inside a batch: its puts at or below R, over the state before the batch (revmap.ts).
  const whole = rangeOp(range.start, range.end).request_range as RangeRequest;
  const [before, after] = await Promise.all([at(point.rev, whole), at(point.partial, whole)]);
  const kvs = stateAt(before.kvs, after.kvs, rev);
  const shape = memberShape(r);
  const count = BigInt(kvs.length);
  if (shape.countOnly) return { clock: head, part: { kvs: [], count }, at: null };
  // In the pushed-down order, every key: trimming the merged parts to the pushed-down limit
  // (assembleRange) keeps the same first keys, and a paged read finds the whole part here.
  if (shape.sortDescendingByKey) kvs.reverse();
  return { clock: head, part: { kvs, count }, at: null };
}

/**
 * Merges the key-sorted states before and after a batch into the state at `rev` inside it:
 * a key's version after the batch counts if it was written at or below `rev` (or its put chain's
 * last put at or below `rev`, meta-kv.ts chainStateAt), else the one before (deletes close their
 * batch, so none of them precedes `rev`).
 */
function stateAt(before: MetaKV[], after: MetaKV[], rev: bigint): MetaKV[] {
  const out: MetaKV[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    const c = i >= before.length ? 1 : j >= after.length ? -1 : Buffer.compare(before[i].key, after[j].key);
    if (c < 0) out.push(before[i++]);
    else if (c > 0) {
      const at = chainStateAt(after[j], rev);
      if (at) out.push(at);
      j++;
    } else {
      out.push(chainStateAt(after[j], rev) ?? before[i]);
      i++;
      j++;
    }
  }
  return out;
}

/**
 * Every shard's state at `rev`. With a `current` revision (client reads): header H = the highest
 * of it and the shards' clocks, shards below H fenced up to it. Without (inside a txn): shards
 * below `rev` are fenced up to `rev`, and the header is the highest shard clock.
 */
async function readAt(store: MetaStore, shards: Shard[], r: RangeRequest, range: MemberRange | null, rev: bigint, current: bigint | null) {
  const heads = await Promise.all(shards.map((s) => s.currentClock(false)));
  const floor = current !== null && current > rev ? current : rev;
  const target = current === null ? rev : heads.reduce((m, h) => (h.clock > m ? h.clock : m), floor);
  const answers = await Promise.all(shards.map((s, i) => pastAt(store, s, r, range, rev, target, heads[i])));
  return { answers, header: answers.reduce((m, a) => (a.clock.clock > m ? a.clock.clock : m), target) };
}

/** One shard's part of the range at `rev` (<= target), the shard fenced up to `target` if below. */
async function pastAt(store: MetaStore, s: Shard, r: RangeRequest, range: MemberRange | null, rev: bigint, target: bigint, head: ClockRead): Promise<ShardAnswer> {
  if (head.clock < target) {
    const res = await s.fenceAndRead(target, memberOps(r, range));
    // Fenced from a clock at or below rev: nothing landed in between, the state read is the one at rev.
    if (res.fenced && res.prior <= rev) return { clock: res.clock, part: partOf(store, res.responses), at: res.clock.memberRev };
    if (!res.fenced && res.clock.clock === rev) return { clock: res.clock, part: partOf(store, res.responses), at: res.clock.memberRev };
    head = res.clock;
  }
  if (!range) return { clock: head, part: { kvs: [], count: 0n }, at: null };
  return readHistorical(store, s, r, range, rev, head);
}

/**
 * A meta revision at which every given shard's state is fixed and readable (linearizable):
 * the highest of their clocks and `floor`, with lagging shards fenced up to it.
 */
export async function consistentRevision(store: MetaStore, shardIdx: number[], floor = 0n): Promise<bigint> {
  const shards = shardIdx.map((i) => store.shards[i]);
  const { header } = await readLinearizable(store, shards, null, null, floor);
  return header;
}

function maxClock(answers: ShardAnswer[]): bigint {
  return answers.reduce((m, a) => (a.clock.clock > m ? a.clock.clock : m), 0n);
}
