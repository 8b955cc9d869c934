/**
 * The global logical clock, kept in the coordinator. Revisions are handed out in blocks with
 * group commit: callers that arrive while an allocation is in flight share the next one, so
 * one coordinator round trip serves a whole batch of concurrent writes.
 *
 * The clock key holds the highest revision allocated (fixed-width big-endian). A block of n is
 * taken by compare-and-swap on that value; several proxies can allocate concurrently.
 */
import { clockAllocations, clockBatchSize, clockRevisions, clockRevision } from '../metrics/registry.js';
import { cmp, createIfAbsent, putOp, rangeOp } from '../shard/shard.js';
import { decodeClock, encodeClock } from '../shard/envelope.js';
import { sysKey } from '../shard/keyspace.js';
import type { Upstream } from '../shard/upstream.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { EtcdError } from '../etcd/errors.js';
import { status } from '@grpc/grpc-js';

export const COORDINATOR_CLOCK_KEY = sysKey('clock');

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

interface Waiter {
  /** How many consecutive revisions this caller needs. */
  count: bigint;
  resolve: (rev: bigint) => void;
  reject: (err: unknown) => void;
}

/** An allocation round trip this long means the coordinator is the bottleneck (see flush). */
const SLOW_COORDINATOR_MS = 10;
/** The longest an allocation waits for more callers (see flush). */
const MAX_LINGER_MS = 10;

export class ClockAllocator {
  private last: bigint | null = null;
  private lastRoundTripMs = 0;
  private queue: Waiter[] = [];
  private inFlight = false;
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
    const cur = await this.coordinator.range({ key: COORDINATOR_CLOCK_KEY });
    if (!cur.kvs.length) return this.rebuild();
    this.last = parseClock(cur.kvs[0].value);
    const shardMax = max(await shardClocks());
    if (this.last < shardMax) await this.advanceTo(shardMax + REBUILD_GAP);
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
    const existing = await createIfAbsent(this.coordinator, COORDINATOR_CLOCK_KEY, encodeClock(start));
    this.last = existing === null ? start : parseClock(existing);
    // This proxy wrote the clock back: say so (once, whichever proxy won).
    if (existing === null) for (const f of this.rebuiltListeners) f({ previous, rebuilt: start, jump: start - previous });
  }

  /** Called when this proxy recreated a missing clock (proxy.ts logs it and restores the other records). */
  onRebuilt(f: (r: ClockRebuilt) => void): void {
    this.rebuiltListeners.push(f);
  }

  /** Recreates the clock if the coordinator has none (a coordinator that came back empty). */
  async ensure(): Promise<void> {
    const cur = await this.coordinator.range({ key: COORDINATOR_CLOCK_KEY });
    if (!cur.kvs.length) await this.rebuild();
  }

  /** Raises the clock to at least `target` (compare-and-swap; someone else may raise it first). */
  private async advanceTo(target: bigint): Promise<void> {
    while ((this.last as bigint) < target) {
      const base = this.last as bigint;
      const res = await this.coordinator.txn(
        {
          compare: [cmp(CompareTarget.VALUE, CompareResult.EQUAL, COORDINATOR_CLOCK_KEY, { value: encodeClock(base) })],
          success: [putOp(COORDINATOR_CLOCK_KEY, encodeClock(target))],
          failure: [rangeOp(COORDINATOR_CLOCK_KEY)],
        },
        false,
      );
      this.last = res.succeeded ? target : parseClock(res.responses[0].response_range?.kvs[0]?.value);
    }
  }

  /**
   * The first of `count` new consecutive revisions, unique across all proxies and greater than
   * every revision allocated before the call.
   */
  next(count = 1): Promise<bigint> {
    return new Promise((resolve, reject) => {
      this.queue.push({ count: BigInt(count), resolve, reject });
      if (!this.inFlight) void this.flush();
    });
  }

  /** The highest revision this proxy knows to be allocated (no coordinator call). */
  known(): bigint {
    return this.last ?? 0n;
  }

  /** The highest revision allocated by anyone, read linearizably from the coordinator. */
  async current(): Promise<bigint> {
    const res = await this.coordinator.range({ key: COORDINATOR_CLOCK_KEY });
    const v = res.kvs.length ? parseClock(res.kvs[0].value) : 0n;
    if (this.last === null || v > this.last) this.last = v;
    return v;
  }

  private async flush(): Promise<void> {
    this.inFlight = true;
    while (this.queue.length) {
      // A slow coordinator is the write path's bottleneck (each allocation is a raft proposal of
      // its own): wait a fraction of its round trip so that the shard writers' next batches
      // share one allocation (bench/scaleout.ts: 0.08 -> 0.06 allocations per put). A fast
      // coordinator adds no wait (a hot key's writes, one at a time, would only lose time).
      if (this.lastRoundTripMs >= SLOW_COORDINATOR_MS) {
        await new Promise((r) => setTimeout(r, Math.min(MAX_LINGER_MS, this.lastRoundTripMs / 2)));
      }
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const total = batch.reduce((n, w) => n + w.count, 0n);
        const started = performance.now();
        let next = await this.allocate(total);
        this.lastRoundTripMs = performance.now() - started;
        for (const w of batch) {
          w.resolve(next);
          next += w.count;
        }
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.inFlight = false;
  }

  /** CAS loop: returns the first revision of a block of n. */
  private async allocate(n: bigint): Promise<bigint> {
    for (;;) {
      if (this.last === null) await this.current();
      const base = this.last as bigint;
      const res = await this.coordinator.txn(
        {
          compare: [cmp(CompareTarget.VALUE, CompareResult.EQUAL, COORDINATOR_CLOCK_KEY, { value: encodeClock(base) })],
          success: [putOp(COORDINATOR_CLOCK_KEY, encodeClock(base + n))],
          failure: [rangeOp(COORDINATOR_CLOCK_KEY)],
        },
        false,
      );
      clockAllocations.inc();
      if (res.succeeded) {
        this.last = base + n;
        clockRevision.set(Number(this.last));
        clockRevisions.inc(Number(n));
        clockBatchSize.observe(Number(n));
        return base + 1n;
      }
      const kv = res.responses[0].response_range?.kvs[0];
      // The coordinator lost its clock (e.g. rebuilt on tmpfs): recreate it from the shards.
      if (!kv) await this.rebuild();
      else this.last = parseClock(kv.value);
    }
  }
}
