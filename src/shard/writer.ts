/**
 * Group commit per shard. Concurrent writes to one shard are combined into one member txn, one
 * batch in flight at a time, so the member applies them in revision order (separate member
 * txns sent concurrently can be applied out of order, and the fence would then reject every
 * one that lost the race: etcd 3.4 here, 4 txns at a time on one connection, each fenced on the
 * clock the one before it set, applied 3002 of 7840):
 *
 *   If(clock < R1)
 *   Then(Range clock, Put clock=Rk,
 *        Txn{If(pins1) Then(ops1 at R1) Else(reads1)}, ...,
 *        Txn{If(pinsk) Then(opsk at Rk) Else(readsk)})
 *   Else(Range clock)
 *
 * Each write keeps its own meta revision (R1 < ... < Rk; consecutive unless the batch took in
 * writes when it went, see extend()). The member's watch stream tells
 * them apart without any marker: a put's envelope carries its revision, and a write that deletes
 * closes its batch, so every delete is at Rk, the clock's value (watch/decoder.ts). The clock put
 * is the only system write per batch. A write whose pins fail gets its fresh state back to
 * re-plan; a batch whose fence fails (another proxy wrote first) is re-sent with new revisions.
 */
import { notApplied } from '../etcd/errors.js';
import type { Compare, RequestOp, ResponseOp } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { memberWrites, writeLinger, writeRetries } from '../metrics/registry.js';
import { tally, type Tally } from '../metrics/tally.js';
import { decodeClock, encodeClock } from './envelope.js';
import { epochHolds } from './epoch.js';
import { CLOCK_KEY } from './keyspace.js';
import { clockOf } from './clock-read.js';
import { cmp, putOp, rangeOp } from '../upstream/ops.js';
import { chainDepth, innermost, pinned, txnNeed } from './pin-chain.js';
import type { Upstream } from '../upstream/upstream.js';
import { NotOwnerError } from './routing-errors.js';

export { NotOwnerError };

export interface MemberLimits {
  maxTxnOps: number;
  maxRequestBytes: number;
}

/** One client write, ready to be placed in a batch at any revision. */
export interface WriteJob {
  /** Member ops for revision `rev` (envelopes carry it). */
  ops(rev: bigint): RequestOp[];
  pins: Compare[];
  /** Reads returned when a pin fails, to re-plan on. */
  elseOps: RequestOp[];
  /**
   * Member keys the write's plan read or writes (latin1). Compares are evaluated on the state
   * before the batch, so a write may not join a batch in which an earlier write touches a key
   * it depends on. Null when it reads or writes a whole range: it is batched alone.
   */
  keys: string[] | null;
  /**
   * It deletes. Such a write closes its batch: then every key a batch deletes was deleted at
   * the batch's last revision, which lets a read at a revision inside a batch be exact from the
   * member states before and after it (see revmap.ts).
   */
  deletes: boolean;
  /** Rough encoded size, for the member's request size limit. */
  bytes: number;
  /**
   * Revisions it takes (default 1): a put chain (kv/put-chain.ts) applies several puts of one
   * key in one member put, each at its own revision. `ops` gets the first; they are consecutive.
   */
  width?: number;
  /**
   * The owner epoch the write was routed under (ownership/): it is applied only while this
   * writer still holds that epoch, else it fails with NotOwnerError (nothing applied) and is
   * routed again. Undefined: any writer may apply it (lease reaping, fences' callers).
   */
  epoch?: bigint;
}

export type WriteResult =
  | { applied: true; rev: bigint; before: bigint; memberRev: bigint; responses: ResponseOp[] }
  /** `responses` are the job's else reads, or empty when a deeper pin failed (read the state anew). */
  | { applied: false; clock: bigint; memberRev: bigint; responses: ResponseOp[] };

interface Pending {
  job: WriteJob;
  /** Arrival order of the client write (kept across its retries). */
  ticket: number;
  /** txnNeed of its sub-txn in a batch. */
  need: number;
  resolve: (r: WriteResult) => void;
  reject: (err: unknown) => void;
}

interface Allocated {
  batch: Pending[];
  /** The first revision of each write of `batch` (it takes width() of them), increasing. */
  revs: bigint[];
  error?: unknown;
}

const width = (p: Pending) => p.job.width ?? 1;
const widths = (ps: Pending[]) => ps.reduce((n, p) => n + width(p), 0);

/** First revisions of writes taking `ps`' widths from `first` on. */
function firstRevs(ps: Pending[], first: bigint): bigint[] {
  let at = first;
  return ps.map((p) => {
    const r = at;
    at += BigInt(width(p));
    return r;
  });
}

/** What a batch holds so far, to tell whether one more write may join it (see take()). */
class BatchShape {
  private readonly keys = new Set<string>();
  private bytes = 0;
  private widest = 0;
  private closed = false;
  private size = 0;

  constructor(private readonly limits: MemberLimits) {}

  /** Whether `p` may join: disjoint keys, within the member's limits, the batch not closed. */
  admits(p: Pending): boolean {
    if (this.size === 0) return true;
    const j = p.job;
    if (this.closed || j.keys === null) return false;
    if (j.keys.some((k) => this.keys.has(k))) return false;
    if (TOP_FIXED_OPS + this.size + 1 + Math.max(this.widest, p.need) > this.limits.maxTxnOps) return false;
    return this.bytes + j.bytes <= this.limits.maxRequestBytes - BYTES_MARGIN;
  }

  add(p: Pending): void {
    const j = p.job;
    this.size++;
    // A write that deletes closes its batch; one that reads or writes a whole range goes alone.
    if (j.deletes || j.keys === null) this.closed = true;
    for (const k of j.keys ?? []) this.keys.add(k);
    this.bytes += j.bytes;
    this.widest = Math.max(this.widest, p.need);
  }
}

/** Generations are unique across writers, so a hint cannot be taken for another shard's. */
let generations = 0;

/**
 * A member round trip this long means the member (its disk, or a CPU quota) sets the pace:
 * batches then wait a little for more writes (see linger()).
 */
const SLOW_MEMBER_MS = 5;
/** The member counts as slow when all of its last this many round trips were that long (not one stall). */
const ROUND_TRIPS_KEPT = 3;
/** The longest a batch waits for more writes. */
const MAX_LINGER_MS = 10;

/** Top-level Then holds Range clock + Put clock + one nested txn per write. */
const TOP_FIXED_OPS = 2;
const BYTES_MARGIN = 16 * 1024;

export class ShardWriter {
  private queue: Pending[] = [];
  private running = false;
  private tickets = 0;
  /**
   * The owner epoch this replica holds for the shard, or null. While set, every batch is
   * applied only if the member's epoch key still holds it (a deposed owner applies nothing).
   */
  private epoch: bigint | null = null;
  private readonly deposedListeners: Array<(epoch: bigint) => void> = [];
  /** The member revision of the last batch answered (or of the epoch claim). */
  private lastMemberRev = 0n;
  /** Revision allocations requested and not yet returned. */
  private readonly allocating = new Set<Promise<Allocated>>();
  /** First revisions of batches allocated and not yet answered by the member. */
  private readonly outstanding = new Set<bigint>();
  private answerWaiters: Array<() => void> = [];
  /**
   * The last revision of batches whose outcome is unknown (the member call failed after it was
   * sent: it may still be applied). Until a later batch is answered (then the clock is past it
   * and it can never land), this writer cannot vouch: 0n when nothing is uncertain.
   */
  private uncertainUpTo = 0n;
  /**
   * Changes whenever the owner's hints may stop being exact (kv/hints.ts): the epoch changed, or
   * a batch's outcome is unknown (it may have applied writes the hints do not show).
   */
  private gen = ++generations;
  /** The last meta revision of the batches the member applied (0n before the first). */
  private appliedThrough = 0n;
  /** The last meta revision of the latest batch sent (`sent`). */
  private sentThrough = 0n;
  private readonly memberWrites: Tally;
  /** The member round trips of the last batches answered, ms (the newest last). */
  private readonly roundTrips: number[] = [];
  /** The batch last answered, and when: its callers may come back with more writes (linger()). */
  private returning: { batch: Pending[]; at: number } | null = null;
  /** A batch waiting for `need` queued writes (linger()). */
  private lingering: { need: number; end: () => void } | null = null;

  constructor(
    private readonly shardName: string,
    private readonly upstream: Upstream,
    private readonly allocate: (count: number) => Promise<bigint>,
    private readonly limits: MemberLimits,
    /** The member key holding the owner epoch of this proxy's keyspace (shard/epoch.ts). */
    private readonly epochKey: Buffer,
    /** Later revisions must be above this one (clock/allocator.ts skipPast: revision blocks). */
    private readonly skipPast: (rev: bigint) => void = () => undefined,
    /** Revisions from the block with no proof (clock/allocator.ts takeFenced), or null. */
    private readonly takeFenced: (count: number) => bigint | null = () => null,
  ) {
    this.memberWrites = tally(memberWrites, { shard: shardName });
  }

  get ownerEpoch(): bigint | null {
    return this.epoch;
  }

  /** The current generation of exact hints (see `gen`). */
  get generation(): number {
    return this.gen;
  }

  /** Hints stamped with the generation so far stop counting as exact. */
  private newGeneration(): void {
    this.gen = ++generations;
  }

  /**
   * The last meta revision of the latest batch sent to the member (batches go one at a time, in
   * revision order): a batch with a higher revision was sent, and so applied, after this was read.
   */
  get sent(): bigint {
    return this.sentThrough;
  }

  /** The last meta revision of an applied batch: the shard stands at or past it. */
  get applied(): bigint {
    return this.appliedThrough;
  }

  /**
   * Set once the member's epoch was raised to `epoch` (at member revision `memberRev`); null
   * when the ownership is given up.
   */
  setEpoch(epoch: bigint | null, memberRev = 0n): void {
    if (epoch !== this.epoch) this.newGeneration();
    this.epoch = epoch;
    if (memberRev > this.lastMemberRev) this.lastMemberRev = memberRev;
    if (epoch === null) this.failOwned();
  }

  /**
   * For the shard's owner: resolves with a member revision M such that every write to the shard
   * with a revision at or below `target` (an allocated revision) has landed at or below M, or
   * null when this replica does not own the shard. Only the work in flight now is waited for:
   * allocations requested from now on return revisions above `target`. Lets a merged stream
   * advance a lagging shard's watermark without a fence write (DESIGN "Watermarks without
   * writes").
   */
  async settle(target: bigint): Promise<bigint | null> {
    if (this.epoch === null) return null;
    // A block could still hand out revisions at or below the target: not any more.
    this.skipPast(target);
    await Promise.all([...this.allocating]);
    while ([...this.outstanding].some((first) => first <= target)) {
      await new Promise<void>((resolve) => this.answerWaiters.push(resolve));
    }
    return this.epoch === null || this.uncertainUpTo > 0n ? null : this.lastMemberRev;
  }

  /** Called when a batch finds the member's epoch moved past ours (another replica took over). */
  onDeposed(fn: (epoch: bigint) => void): void {
    this.deposedListeners.push(fn);
  }

  /** Writes that queue for an epoch this writer no longer holds fail (nothing applied). */
  private failOwned(): void {
    this.queue = this.queue.filter((p) => this.mayApply(p));
    this.lingering?.end();
  }

  /** False (and the write failed with NotOwnerError) when it was routed under another epoch. */
  private mayApply(p: Pending): boolean {
    if (p.job.epoch === undefined || p.job.epoch === this.epoch) return true;
    p.reject(new NotOwnerError(this.shardName));
    return false;
  }

  /** Resolves once nothing is queued or in flight (or after `maxMs`). */
  async drained(maxMs: number): Promise<void> {
    const deadline = Date.now() + maxMs;
    while ((this.running || this.queue.length) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }

  /** A place in line for a client write, kept across its retries. */
  ticket(): number {
    return ++this.tickets;
  }

  /**
   * `sample` is job.ops at any revision (only its shape counts), to size the job's sub-txn.
   * Writes queue in ticket order: a write retried after a failed pin keeps its place ahead of
   * later ones, so writes contending for one hot key are served oldest first (none starves).
   */
  submit(job: WriteJob, sample: RequestOp[], ticket = this.ticket()): Promise<WriteResult> {
    return new Promise((resolve, reject) => {
      const need = txnNeed(pinned(job.pins, sample, job.elseOps));
      if (job.epoch !== undefined && job.epoch !== this.epoch) return reject(new NotOwnerError(this.shardName));
      const p: Pending = { job, ticket, need, resolve, reject };
      let i = this.queue.length;
      while (i > 0 && this.queue[i - 1].ticket > ticket) i--;
      this.queue.splice(i, 0, p);
      if (this.lingering && this.queue.length >= this.lingering.need) this.lingering.end();
      if (!this.running) void this.run();
    });
  }

  /**
   * One batch in flight at a time; the next batch's revisions are allocated while it flies
   * (allocated later, so they are higher), which hides the coordinator round trip. This overlap
   * (two batches at different stages) is why the writer keeps its own loop rather than
   * batching/batcher.ts, which runs one batch from start to answer at a time.
   */
  private async run(): Promise<void> {
    this.running = true;
    let next: Promise<Allocated> | null = null;
    while (next || this.queue.length) {
      const cur: Allocated = await (next ?? this.allocateFor(this.take()));
      next = null;
      const first = cur.revs[0] ?? 0n;
      if (cur.error !== undefined) {
        for (const p of cur.batch) p.reject(cur.error);
        this.answered(first);
        continue;
      }
      const lingering = this.linger(cur.batch);
      if (lingering) await lingering;
      this.extend(cur);
      const sending = this.send(cur.batch, cur.revs);
      if (this.queue.length) next = this.allocateFor(this.take());
      try {
        const sent = await sending;
        if (sent === false) {
          // Another proxy's write or a fence moved the clock past R1: same plans, new revisions.
          writeRetries.inc({ reason: 'fence' }, cur.batch.length);
          this.queue.unshift(...cur.batch.filter((p) => this.mayApply(p)));
        }
        // Answered: the clock now stands at or past R1, so no earlier batch can still land.
        if (sent !== null && this.uncertainUpTo > 0n && first > this.uncertainUpTo) this.uncertainUpTo = 0n;
        if (sent === true) this.returning = { batch: cur.batch, at: performance.now() };
      } catch (err) {
        const last = lastRev(cur.batch, cur.revs);
        if (!notApplied(err)) {
          // Its writes may have landed: hints of their keys can no longer be trusted as exact.
          this.newGeneration();
          if (last > this.uncertainUpTo) this.uncertainUpTo = last;
        }
        for (const p of cur.batch) p.reject(err);
      }
      this.answered(first);
    }
    this.running = false;
  }

  /**
   * With a slow member (its last round trips took 5 ms or more: a disk that syncs slowly, a CPU
   * quota), the next batch waits, up to half a member round trip, for the callers of the batch just
   * answered to come back with their next writes: concurrent writers then share member txns instead
   * of alternating between two batches that each carry half of them. Each member txn costs the
   * member a raft proposal and a clock put (which also costs backend pages: bigger batches store
   * more keys per MiB, bench/bbolt-pages.ts), so with the member as the bottleneck, fewer and
   * fuller txns carry more writes. No wait with a fast member, nor for callers that have not come
   * back within a round trip, nor for writes that could not join the batch (the next write to a key
   * already in it goes in the batch after: a hot key's, say). Ends early once those writes are
   * queued, or when the ownership ends. Null when there is nothing to wait for (no await: the batch
   * goes in the same turn).
   */
  private linger(batch: Pending[]): Promise<void> | null {
    const answered = this.returning;
    this.returning = null;
    // The shortest of the last round trips: one stall (a GC pause) makes no member slow.
    const roundTripMs = this.roundTrips.length < ROUND_TRIPS_KEPT ? 0 : Math.min(...this.roundTrips);
    if (!answered || roundTripMs < SLOW_MEMBER_MS || performance.now() - answered.at > roundTripMs) return null;
    const inHand = new Set<string>();
    for (const p of batch) for (const k of p.job.keys ?? []) inHand.add(k);
    for (const p of this.queue) for (const k of p.job.keys ?? []) inHand.add(k);
    const back = answered.batch.filter(({ job: j }) => j.keys !== null && !j.keys.some((k) => inHand.has(k))).length;
    if (back === 0) return null;
    const need = this.queue.length + back;
    const started = performance.now();
    return new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.lingering = null;
        writeLinger.observe((performance.now() - started) / 1000);
        resolve();
      };
      const timer = setTimeout(end, Math.min(MAX_LINGER_MS, roundTripMs / 2));
      this.lingering = { need, end };
    });
  }

  /** A batch is answered (applied, refused or failed): it no longer holds back settle(). */
  private answered(first: bigint): void {
    this.outstanding.delete(first);
    const w = this.answerWaiters;
    this.answerWaiters = [];
    for (const fn of w) fn();
  }

  /** Another replica raised the member's epoch: give up ownership; owned writes go elsewhere. */
  private deposed(held: bigint): void {
    if (this.epoch === null) return;
    writeRetries.inc({ reason: 'deposed' });
    this.epoch = null;
    this.newGeneration();
    this.failOwned();
    for (const fn of this.deposedListeners) fn(held);
  }

  /** Revisions for a batch: from the block with no coordinator call when it may, else allocated. */
  private async revisionsFor(batch: Pending[]): Promise<bigint> {
    return this.takeFenced(widths(batch)) ?? this.allocate(widths(batch));
  }

  private allocateFor(batch: Pending[]): Promise<Allocated> {
    const p: Promise<Allocated> = this.revisionsFor(batch).then(
      (first) => {
        this.outstanding.add(first);
        return { batch, revs: firstRevs(batch, first) };
      },
      (error: unknown) => ({ batch, revs: [], error }),
    );
    this.allocating.add(p);
    void p.then(() => this.allocating.delete(p));
    return p;
  }

  /** The longest prefix of the queue that fits one member txn with disjoint keys. */
  private take(): Pending[] {
    const batch = this.joining([]);
    this.queue.splice(0, batch.length);
    return batch;
  }

  /**
   * A batch is allocated while the one before it flies, so the writes that queued during that
   * flight would wait for the batch after. They join it now, with revisions from the block above
   * the batch's own (taken now, so the order still agrees with real time), when the block may be
   * used with no coordinator call (takeFenced). Batches grow with the load instead of one member
   * round trip lagging behind it, and the member pays one proposal and one clock put for more
   * writes (fewer proposals per write; the clock put also costs backend pages, so bigger batches
   * store more keys per MiB: bench/scaleout.ts e).
   */
  private extend(cur: Allocated): void {
    const more = this.joining(cur.batch);
    const first = more.length ? this.takeFenced(widths(more)) : null;
    // Revisions must rise through the batch (a block only hands out higher ones: defensive).
    if (first === null || first <= lastRev(cur.batch, cur.revs)) return;
    this.queue.splice(0, more.length);
    cur.batch.push(...more);
    cur.revs.push(...firstRevs(more, first));
  }

  /** The longest prefix of the queue that fits one member txn after `batch`. */
  private joining(batch: Pending[]): Pending[] {
    const shape = new BatchShape(this.limits);
    for (const p of batch) shape.add(p);
    const out: Pending[] = [];
    for (const p of this.queue) {
      if (!shape.admits(p)) break;
      shape.add(p);
      out.push(p);
    }
    return out;
  }

  /**
   * Sends one batch, write i at revs[i] (increasing); false when its fence failed (nothing
   * applied), null when nothing was left to send (every write was routed under another epoch).
   */
  private async send(all: Pending[], allRevs: bigint[]): Promise<boolean | null> {
    const epoch = this.epoch;
    const kept = all.flatMap((p, i) => (this.mayApply(p) ? [i] : []));
    if (!kept.length) return null;
    const batch = kept.map((i) => all[i]);
    // A write routed elsewhere leaves its revision unused; the rest keep theirs, in order.
    const revs = kept.map((i) => allRevs[i]);
    const first = revs[0];
    const last = lastRev(batch, revs);
    const subs: RequestOp[] = batch.map((p, i) => ({ request_txn: pinned(p.job.pins, p.job.ops(revs[i]), p.job.elseOps) }));
    this.memberWrites.inc();
    const compare = [cmp(CompareTarget.VALUE, CompareResult.LESS, CLOCK_KEY, { value: encodeClock(first) })];
    if (epoch !== null) compare.push(epochHolds(this.epochKey, epoch));
    this.sentThrough = last;
    const sentAt = performance.now();
    const res = await this.upstream.txn(
      { compare, success: [rangeOp(CLOCK_KEY), putOp(CLOCK_KEY, encodeClock(last)), ...subs], failure: [rangeOp(CLOCK_KEY), rangeOp(this.epochKey)] },
      false,
    );
    this.roundTrips.push(performance.now() - sentAt);
    if (this.roundTrips.length > ROUND_TRIPS_KEPT) this.roundTrips.shift();
    const answeredAt = BigInt(res.header?.revision ?? '0');
    if (answeredAt > this.lastMemberRev) this.lastMemberRev = answeredAt;
    if (!res.succeeded) {
      // The shard's clock is past `first` (a fence write): the retry's revisions must be above it.
      this.skipPast(decodeClock(res.responses[0]?.response_range?.kvs[0]?.value));
      const held = decodeClock(res.responses[1]?.response_range?.kvs[0]?.value);
      if (epoch !== null && held !== epoch) this.deposed(held);
      return false;
    }
    const before = clockOf(res, 0).clock;
    const memberRev = BigInt(res.header?.revision ?? '0');
    if (last > this.appliedThrough) this.appliedThrough = last;
    batch.forEach((p, i) => {
      const outer = res.responses[TOP_FIXED_OPS + i]?.response_txn;
      const sub = innermost(outer, chainDepth(p.job.pins.length));
      if (sub?.succeeded) {
        const responses = sub.responses;
        // Earlier writes of the batch are visible to this one: it stands just after them.
        const stand = revs[i] - 1n;
        p.resolve({ applied: true, rev: revs[i], before: stand > before ? stand : before, memberRev, responses });
      } else {
        p.resolve({ applied: false, clock: last, memberRev, responses: outer && !outer.succeeded ? outer.responses : [] });
      }
    });
    return true;
  }
}

/** The last revision a batch takes: its last write's first plus its width, less one. */
function lastRev(batch: Pending[], revs: bigint[]): bigint {
  const i = batch.length - 1;
  return i < 0 ? 0n : revs[i] + BigInt(width(batch[i]) - 1);
}
