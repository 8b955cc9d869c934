/**
 * The global logical clock, kept in the coordinator. Revisions are handed out with group
 * commit: callers that arrive while a coordinator call is in flight share the next one, so one
 * round trip serves a whole batch of concurrent writes.
 *
 * The clock key holds the highest revision allocated (fixed-width big-endian). n revisions are
 * taken by compare-and-swap on that value; several proxies can allocate concurrently.
 *
 * A replica that owns every shard reserves a block of revisions at once (block.ts) and then
 * hands them out with no coordinator call per batch (takeFenced): nobody moves the clock past
 * a block it does not hold before fencing every shard to the block's end (block-end.ts), so
 * the order agrees with real time. While the coordinator has not answered lately, a batch pays
 * a linearizable read of the clock instead (writes fail with UNAVAILABLE without it, as before).
 */
import { clockAllocations, clockBatchSize, clockRevisions, clockRevision } from '../metrics/registry.js';
import { cmp, putOp, rangeOp } from '../upstream/ops.js';
import { decodeClock, encodeClock } from '../shard/envelope.js';
import { CLOCK_KEY } from '../shard/keyspace.js';
import type { Upstream } from '../upstream/upstream.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import type { RequestOp, ResponseOp } from '../etcd/types.js';
import { EtcdError } from '../etcd/errors.js';
import { status } from '@grpc/grpc-js';
import { CLOCK_BLOCK_KEY, decodeBlockRecord, encodeBlockRecord, RevisionBlock } from './block.js';
import { clockConfirmations } from '../metrics/registry.js';
import { Batcher, coalesced, type Waiter } from '../batching/batcher.js';
import { foreignBlockEnd, MOVED_CLOCK_HOLDER, recordUnchanged, type FenceShards } from './block-end.js';


/** Revisions a proxy may hold unused when a coordinator loses its clock: the rebuilt clock skips them. */
export const REBUILD_GAP = 1_000_000n;

function max(values: bigint[]): bigint {
  return values.reduce((a, b) => (a > b ? a : b), 0n);
}

/** A clock value that is not 8 bytes would make every compare-and-swap fail forever: refuse it. */
function parseClock(raw: Buffer | undefined): bigint {
  if (!raw || raw.length !== 8) {
    throw new EtcdError(status.UNAVAILABLE, 'etcd-metaproxy: the coordinator clock key holds a malformed value');
  }
  return decodeClock(raw);
}

/** A clock recreated from the shards' clocks: where this proxy stood, and where it restarts. */
export interface ClockRebuilt {
  /** The highest revision this proxy knew allocated before (0n when none). */
  previous: bigint;
  rebuilt: bigint;
  /** rebuilt - previous: the revisions skipped. */
  jump: bigint;
}

/** An allocation round trip this long means the coordinator is the bottleneck (see flush). */
const SLOW_COORDINATOR_MS = 10;
/** The longest an allocation waits for more callers (see flush). */
const MAX_LINGER_MS = 10;

/**
 * How recently the coordinator must have answered for a batch to take revisions from the block
 * with no read of its own (takeFenced): past it, the batch reads the clock, and fails when the
 * coordinator is down, as every write did before blocks.
 */
const COORDINATOR_FRESH_MS = 500;

/**
 * Revisions reserved beyond a batch's need by a replica that owns every shard. Unused ones are
 * skipped only when ownership moves (a revision gap, as after a crash).
 */
const BLOCK_REVISIONS = 1024n;

export interface BlockOptions {
  /** True while this replica owns every shard (ownership/owners.ts ownsAll). */
  exclusive: () => boolean;
  /** This replica's peer URL, named as the holder in the block record. */
  self: string;
  /**
   * Asks the holder at `url` the highest revision it handed out from the block ending at `end`
   * or later ones (null: it holds no such block, e.g. it restarted).
   */
  askHolder: (url: string, end: bigint) => Promise<bigint | null>;
}

export class ClockAllocator {
  /** The coordinator's clock last seen: the base of the next compare-and-swap. */
  private last: bigint | null = null;
  /**
   * The block record read with `last` (null: absent; undefined: not read with it), compared by
   * the next compare-and-swap (block-end.ts).
   */
  private record: Buffer | null | undefined = undefined;
  /** Fence writes to every shard, before the clock moves past a block this process does not hold. */
  private fenceShards: FenceShards | null = null;
  /** The highest revision known current here (handed out or read), for response headers. */
  private seen = 0n;
  /** The block this replica hands out, while no other replica allocated past it. */
  private block: RevisionBlock | null = null;
  /** The end of the latest block reserved by this process, and the highest revision it handed out. */
  private lastBlockEnd = 0n;
  private maxIssued = 0n;
  private blocks: BlockOptions | null = null;
  private lastRoundTripMs = 0;
  /** Group commit: callers that arrive while a coordinator call is in flight share the next one. */
  private readonly batches = new Batcher<bigint, bigint>((batch) => this.runBatch(batch), {
    take: (queued) => Math.min(queued.length, this.maxBatch),
    beforeBatch: () => this.linger(),
  });
  /** proof(): one clock read in flight; callers meanwhile share the next. */
  private readonly proofRead = coalesced(() => this.readProof());
  private shardClocks: () => Promise<bigint[]> = async () => [];
  private readonly rebuiltListeners: Array<(r: ClockRebuilt) => void> = [];

  constructor(
    private readonly coordinator: Upstream,
    /** Largest allocation in one round trip (bounded so a burst cannot skip far ahead). */
    private readonly maxBatch = 4096,
  ) {}

  /**
   * Creates the clock if the coordinator has none: from the shards' clocks plus a gap when
   * they hold data (a coordinator that lost its state), else at 1 (etcd's first revision).
   * A clock behind the shards (a coordinator restored from an old backup) is moved past them.
   */
  async init(shardClocks: () => Promise<bigint[]>): Promise<void> {
    this.shardClocks = shardClocks;
    if (!(await this.readClockAndRecord())) return;
    const last = this.last as bigint;
    // A block another replica holds ends at the clock: current() asks it (proxy.ts, at start).
    const held = decodeBlockRecord(this.record ?? undefined);
    if (!held || held.end !== last) this.seen = last;
    const shardMax = max(await shardClocks());
    if (last < shardMax) await this.advanceTo(shardMax + REBUILD_GAP);
  }

  /**
   * Recreates a missing clock above every revision any shard has seen and every revision this
   * proxy handed out (DESIGN invariant 6); the gap covers revisions other proxies hold in flight.
   */
  private async rebuild(): Promise<void> {
    const previous = this.last ?? 0n;
    let high = max(await this.shardClocks());
    if (this.last !== null && this.last > high) high = this.last;
    // Shards start at clock 1 (an empty etcd's revision): above that, they hold data.
    const start = high > 1n ? high + REBUILD_GAP : 1n;
    // Over data, with a record naming no holder: a replica may still hand out a block below the
    // new clock, so the first allocation past it fences every shard (block-end.ts).
    const moved = high > 1n ? encodeBlockRecord({ end: start, holder: MOVED_CLOCK_HOLDER }) : null;
    const res = await this.coordinator.txn(
      {
        compare: [cmp(CompareTarget.CREATE, CompareResult.EQUAL, CLOCK_KEY, { create_revision: '0' })],
        success: [putOp(CLOCK_KEY, encodeClock(start)), ...(moved ? [putOp(CLOCK_BLOCK_KEY, moved)] : [])],
        failure: [rangeOp(CLOCK_KEY), rangeOp(CLOCK_BLOCK_KEY)],
      },
      false,
    );
    const existing = res.succeeded ? null : (res.responses[0]?.response_range?.kvs[0]?.value ?? Buffer.alloc(0));
    this.last = existing === null ? start : parseClock(existing);
    this.record = existing === null ? (moved ?? undefined) : (res.responses[1]?.response_range?.kvs[0]?.value ?? null);
    this.block = null;
    this.noteSeen(this.last);
    // This proxy wrote the clock back: say so (once, whichever proxy won).
    if (existing === null) for (const f of this.rebuiltListeners) f({ previous, rebuilt: start, jump: start - previous });
  }

  /** Called when this proxy recreated a missing clock (proxy.ts logs it and restores the other records). */
  onRebuilt(f: (r: ClockRebuilt) => void): void {
    this.rebuiltListeners.push(f);
  }

  /** Recreates the clock if the coordinator has none (a coordinator that came back empty). */
  async ensure(): Promise<void> {
    const cur = await this.coordinator.range({ key: CLOCK_KEY });
    if (!cur.kvs.length) await this.rebuild();
  }

  /** Raises the clock to at least `target` (compare-and-swap; someone else may raise it first). */
  private async advanceTo(target: bigint): Promise<void> {
    while ((this.last as bigint) < target) {
      const base = this.last as bigint;
      const moved = encodeBlockRecord({ end: target, holder: MOVED_CLOCK_HOLDER });
      const res = await this.coordinator.txn(
        {
          compare: [cmp(CompareTarget.VALUE, CompareResult.EQUAL, CLOCK_KEY, { value: encodeClock(base) })],
          success: [putOp(CLOCK_KEY, encodeClock(target)), putOp(CLOCK_BLOCK_KEY, moved)],
          failure: [rangeOp(CLOCK_KEY)],
        },
        false,
      );
      this.last = res.succeeded ? target : parseClock(res.responses[0].response_range?.kvs[0]?.value);
      this.record = res.succeeded ? moved : undefined;
    }
    this.noteSeen(target);
  }

  /** Fence writes to every shard (proxy.ts): the clock moves past no other process's block before them. */
  useShardFence(f: FenceShards): void {
    this.fenceShards = f;
  }

  /** Lets this replica reserve revision blocks while it owns every shard (see the file comment). */
  useBlocks(opts: BlockOptions): void {
    this.blocks = opts;
  }

  /**
   * The first of `count` new consecutive revisions, unique across all proxies and greater than
   * every revision allocated before the call.
   */
  next(count = 1): Promise<bigint> {
    return this.batches.submit(BigInt(count));
  }

  /** The highest revision this proxy knows current (no coordinator call): for response headers. */
  known(): bigint {
    return this.seen;
  }

  private noteSeen(rev: bigint): bigint {
    if (rev > this.seen) this.seen = rev;
    clockRevision.set(Number(this.seen));
    return this.seen;
  }

  /**
   * The current revision (covers every write acknowledged before the call), read linearizably
   * from the coordinator: its clock, unless a block holder stands below it (resolve).
   */
  async current(): Promise<bigint> {
    const res = await this.coordinator.txn({ compare: [], success: this.currentOps(), failure: [] }, true);
    return this.resolve(res.responses);
  }

  /** The coordinator reads current() needs: callers may add their own ops after them. */
  currentOps(): RequestOp[] {
    return [rangeOp(CLOCK_KEY), rangeOp(CLOCK_BLOCK_KEY)];
  }

  /**
   * The current revision from the answers to currentOps(): the clock, or, when a replica holds
   * a block ending there, what that replica handed out of it (asked over the peer channel); a
   * holder that cannot say has its block ended here, by allocating past it.
   */
  async resolve(responses: ResponseOp[]): Promise<bigint> {
    const raw = responses[0]?.response_range?.kvs[0]?.value;
    const v = raw ? parseClock(raw) : 0n;
    if (this.last === null || v >= this.last) {
      this.last = v;
      this.record = responses[1]?.response_range?.kvs[0]?.value ?? null;
    }
    const own = this.block;
    if (own) {
      if (own.vouchedBy(v)) return this.noteSeen(own.issued);
      this.block = null; // another replica allocated past it, or the coordinator lost its data
    }
    const rec = decodeBlockRecord(responses[1]?.response_range?.kvs[0]?.value);
    // A moved clock's record: nothing was handed out from it (its first allocation fences).
    if (!rec || rec.end !== v || !this.blocks || rec.holder === MOVED_CLOCK_HOLDER) return this.noteSeen(v);
    const answer = rec.holder === this.blocks.self && this.lastBlockEnd >= rec.end
      ? this.maxIssued
      : rec.holder === this.blocks.self ? null : await this.blocks.askHolder(rec.holder, rec.end).catch(() => null);
    if (answer !== null) return this.noteSeen(answer);
    // The holder is gone, or restarted and cannot say: end its block. Whatever it handed out is
    // below the revision allocated here, and its next confirmation fails.
    return this.noteSeen(await this.allocate(1n, 0n));
  }

  /** The holder's answer to resolve()'s question (see BlockOptions.askHolder). */
  issuedFrom(end: bigint): bigint | null {
    return this.lastBlockEnd >= end && this.lastBlockEnd > 0n ? this.maxIssued : null;
  }

  /**
   * Later revisions from this replica's block must be above `rev`: a revision a reader stands
   * at (a watermark vouched for) or a shard clock a fence raised, inside the block's unused part.
   */
  skipPast(rev: bigint): void {
    const b = this.block;
    if (!b) return;
    b.skipPast(rev);
    this.noteIssued(b.issued);
  }

  private noteIssued(rev: bigint): void {
    if (rev > this.maxIssued) this.maxIssued = rev;
    this.noteSeen(rev);
  }

  /**
   * A slow coordinator is the write path's bottleneck (each allocation is a raft proposal of its
   * own): wait a fraction of its round trip so that the shard writers' next batches share one
   * allocation (bench/scaleout.ts: 0.08 -> 0.06 allocations per put). A fast coordinator adds no
   * wait (a hot key's writes, one at a time, would only lose time).
   */
  private async linger(): Promise<void> {
    if (this.lastRoundTripMs >= SLOW_COORDINATOR_MS) {
      await new Promise((r) => setTimeout(r, Math.min(MAX_LINGER_MS, this.lastRoundTripMs / 2)));
    }
  }

  private async runBatch(batch: Waiter<bigint, bigint>[]): Promise<void> {
    const total = batch.reduce((n, w) => n + w.item, 0n);
    const started = performance.now();
    let next = await this.take(total);
    this.lastRoundTripMs = performance.now() - started;
    for (const w of batch) {
      w.resolve(next);
      next += w.item;
    }
  }

  /**
   * Starts (or joins) a linearizable clock read that begins after this call: resolves to the
   * clock it found when that proves this replica's block was intact then (else null; never
   * rejects). No other replica wrote between a txn's arrival and such a read begun after it
   * (it would have allocated past the block first): kv/owner-answer.ts answers from the
   * owner's state on that ground.
   */
  proof(): Promise<bigint | null> {
    if (!this.block || !this.blocks?.exclusive()) return Promise.resolve(null);
    return this.proofRead();
  }

  private async readProof(): Promise<bigint | null> {
    try {
      const v = await this.confirmationRead();
      return v !== null && this.block?.vouchedBy(v) ? v : null;
    } catch {
      return null; // the answer then comes from a member read
    }
  }

  /** A linearizable read of the clock (null: missing), to confirm this replica's block. */
  private async confirmationRead(): Promise<bigint | null> {
    const res = await this.coordinator.range({ key: CLOCK_KEY });
    clockConfirmations.inc();
    const raw = res.kvs[0]?.value;
    return raw ? parseClock(raw) : null;
  }

  /** n revisions from the block, counted as handed out. */
  private handOut(b: RevisionBlock, n: bigint): bigint {
    const first = b.take(n);
    this.noteIssued(b.issued);
    clockRevisions.inc(Number(n));
    clockBatchSize.observe(Number(n));
    return first;
  }

  /**
   * The first of n revisions from this replica's block with no coordinator call. No other
   * replica moves the clock past the block before every shard's clock stands at its end
   * (block-end.ts), so a revision handed out here after that fails its shard fence and is taken
   * again, instead of landing below a write acknowledged before it was sent. Only while the
   * coordinator answered within COORDINATOR_FRESH_MS: writes still fail when it is down.
   */
  takeFenced(n: number): bigint | null {
    const b = this.block;
    const count = BigInt(n);
    if (!b || !this.fenceShards || !this.blocks?.exclusive() || b.room() < count) return null;
    if (!this.coordinator.answeredWithin(COORDINATOR_FRESH_MS)) return null;
    return this.handOut(b, count);
  }

  /** The first of n revisions: from this replica's block when it may, else allocated. */
  private async take(n: bigint): Promise<bigint> {
    const b = this.block;
    const exclusive = this.blocks?.exclusive() ?? false;
    if (b && exclusive && b.room() >= n) {
      // One linearizable read instead of a proposal: nobody allocated since the reservation.
      const v = await this.confirmationRead();
      if (v !== null && b.vouchedBy(v)) return this.handOut(b, n);
      this.block = null;
      if (v !== null && v > (this.last ?? 0n)) {
        this.last = v;
        this.record = undefined;
      }
    }
    return this.allocate(n, exclusive ? BLOCK_REVISIONS : 0n);
  }

  /**
   * CAS loop: returns the first of n new revisions. With `reserve` > 0 it also reserves that
   * many more as this replica's block (contiguous with its current block when nobody allocated
   * in between) and records itself as the holder.
   */
  private async allocate(n: bigint, reserve: bigint): Promise<bigint> {
    for (;;) {
      if (this.last === null || this.record === undefined) await this.readClockAndRecord();
      const base = this.last as bigint;
      const record = this.record as Buffer | null;
      // Past a block this process does not hold: every shard's clock to its end first.
      const fenceTo = foreignBlockEnd(record, base, this.blocks?.self ?? null, this.lastBlockEnd);
      if (fenceTo !== null && this.fenceShards) await this.fenceShards(fenceTo);
      const end = base + n + reserve;
      const success = [putOp(CLOCK_KEY, encodeClock(end))];
      const mine = reserve > 0n && this.blocks ? encodeBlockRecord({ end, holder: this.blocks.self }) : null;
      if (mine) success.push(putOp(CLOCK_BLOCK_KEY, mine));
      const res = await this.coordinator.txn(
        {
          compare: [cmp(CompareTarget.VALUE, CompareResult.EQUAL, CLOCK_KEY, { value: encodeClock(base) }), recordUnchanged(record)],
          success,
          failure: [rangeOp(CLOCK_KEY), rangeOp(CLOCK_BLOCK_KEY)],
        },
        false,
      );
      clockAllocations.inc();
      if (res.succeeded) {
        this.last = end;
        if (mine) this.record = mine;
        const prev = this.block;
        this.block = null;
        if (reserve > 0n && this.blocks) {
          // The rest of the previous block is still this replica's when the clock did not move.
          const extends_ = prev !== null && prev.end === base;
          const block = new RevisionBlock(extends_ ? prev.issued : base, end, extends_ ? prev.since : end);
          this.block = block;
          this.lastBlockEnd = end;
          return this.handOut(block, n);
        }
        this.noteIssued(base + n);
        clockRevisions.inc(Number(n));
        clockBatchSize.observe(Number(n));
        return base + 1n;
      }
      const kv = res.responses[0].response_range?.kvs[0];
      // The coordinator lost its clock (e.g. rebuilt on tmpfs): recreate it from the shards.
      if (!kv) await this.rebuild();
      else {
        this.last = parseClock(kv.value);
        this.record = res.responses[1]?.response_range?.kvs[0]?.value ?? null;
      }
    }
  }

  /**
   * The clock and the block record, read together (the base of the next compare-and-swap);
   * false when the clock was missing and was rebuilt instead.
   */
  private async readClockAndRecord(): Promise<boolean> {
    const res = await this.coordinator.txn({ compare: [], success: this.currentOps(), failure: [] }, true);
    const raw = res.responses[0]?.response_range?.kvs[0]?.value;
    if (!raw) {
      await this.rebuild();
      return false;
    }
    this.last = parseClock(raw);
    this.record = res.responses[1]?.response_range?.kvs[0]?.value ?? null;
    return true;
  }
}
