/**
 * Which reads the cache answers (Range, read-only Txn), and when (DESIGN invariant 4):
 * - serializable: at once, at the cache's revision (once it holds this proxy's own acknowledged
 *   writes);
 * - linearizable: after one coalesced coordinator read (clock/probe.ts) taken after the request
 *   arrived, once the merged stream has released that clock, so every write acknowledged before
 *   the request is in the trees;
 * - at a revision R: etcd's future and compacted checks against the coordinator, then the state
 *   at R (kept or rebuilt snapshots, snapshots.ts) under etcd's header: the current revision
 *   (the cache's, once caught up as for a read at the current revision), not R.
 * Anything else (not loaded yet, a shard that does not catch up, history too old) returns null
 * and the caller reads the members.
 */
import { Errors } from '../etcd/errors.js';
import type { RangeRequest, TxnRequest } from '../etcd/types.js';
import { readsHistory } from '../kv/txn-snapshot.js';
import type { TxnOutcome } from '../kv/txn-outcome.js';
import type { Router } from '../partition/router.js';
import { cacheHits, cacheMisses, cacheReadWait, cacheSharedAnswers } from '../metrics/registry.js';
import type { MergedStream } from '../watch/merged-stream.js';
import type { ReadCache } from './cache.js';
import { rangeFromView, type CacheView, type CachedRange } from './range-from-view.js';
import { txnFromView, txnSerializable } from './txn-from-view.js';

export interface CoordinatorView {
  clock: bigint;
  compacted: bigint;
}

/** The part of the meta-cluster the cache's reads use (kv/store.ts's MetaStore has this shape). */
export interface CacheReadCluster {
  readonly router: Router;
  /** The meta compaction revision last seen, and news of a higher one. */
  readonly compactedRevision: bigint;
  noteCompacted(rev: bigint): void;
  /** The highest revision of a write this replica acknowledged (read-your-writes). */
  readonly acked: bigint;
  /**
   * A serializable read-only txn answered from the shard owner's exact state with no wait
   * (kv/owner-reads.ts), or null.
   */
  ownerRead?(t: TxnRequest): TxnOutcome | null;
}

export interface CacheReadOptions {
  /** How long a linearizable read waits for the merged stream before it reads the members (ms). */
  waitMs: number;
}

type MissReason = 'loading' | 'lagging' | 'coordinator' | 'history';

/** Results kept per revision at most (identical reads share one computation). */
const MEMO_MAX = 256;

export class CacheReader {
  /** A revision the stream did not reach in time: until it does, reads skip the wait. */
  private stalledAt: bigint | null = null;

  constructor(
    readonly cache: ReadCache,
    private readonly store: CacheReadCluster,
    private readonly stream: MergedStream,
    private readonly coordinator: { read(): Promise<CoordinatorView> },
    private readonly opts: CacheReadOptions,
  ) {}

  /** The answer from memory, or null: read the members. Throws etcd's errors for bad revisions. */
  async range(r: RangeRequest): Promise<CachedRange | null> {
    if (!this.cache.ready) return this.miss('loading');
    const wanted = BigInt(r.revision);
    const started = process.hrtime.bigint();
    if (wanted > 0n) {
      if (wanted < this.store.compactedRevision) throw Errors.compacted();
      const view = await this.coordinatorView();
      if (!view) return this.miss('coordinator');
      // etcd checks a future revision first, then a compacted one.
      if (wanted > view.clock) throw Errors.futureRev();
      this.store.noteCompacted(view.compacted);
      if (wanted < view.compacted) throw Errors.compacted();
      // The header is the current revision, as etcd's: the cache first catches up as a read at
      // the current revision would (the clock just read, or this proxy's own writes when serializable).
      const current = r.serializable ? (this.store.acked > wanted ? this.store.acked : wanted) : view.clock;
      if (!(await this.caughtUp(current))) return this.miss('lagging');
      cacheReadWait.observe(Number(process.hrtime.bigint() - started) / 1e9);
      const at = this.cache.at(wanted);
      if (!at) return this.miss('history');
      // The state at `wanted`, under the header of the revision the trees stand at (>= current).
      return { ...this.serve(at, r), rev: this.cache.revision };
    }
    const why = await this.current(r.serializable);
    if (why) return this.miss(why);
    const out = this.serve(this.cache.current(), r);
    // The first page of a list: keep this state for the pages that follow at its revision.
    if (out.more) this.cache.keepCurrent();
    return out;
  }

  /** A read-only txn at the current revision from memory, or null: read the members. */
  async txn(t: TxnRequest): Promise<TxnOutcome | null> {
    if (!this.cache.ready) return this.miss('loading');
    if (readsHistory(t)) return this.miss('history');
    const serializable = txnSerializable(t);
    // Not caught up with this replica's own writes yet: the owner may know the keys exactly.
    if (serializable && this.cache.revision < this.store.acked) {
      const own = this.store.ownerRead?.(t);
      if (own) return own;
    }
    const why = await this.current(serializable);
    if (why) return this.miss(why);
    const view = this.cache.current();
    const out = txnFromView(view, t, this.store.router);
    cacheHits.inc();
    return { revision: view.rev, succeeded: out.succeeded, responses: out.responses, wrote: false };
  }

  /**
   * Null once the cache may answer a read at the current revision (at once when serializable,
   * else after it has caught up with a coordinator clock read taken after the call), else why
   * not.
   */
  private async current(serializable: boolean): Promise<MissReason | null> {
    if (serializable) {
      // Even a serializable read sees the writes this proxy acknowledged (as on one etcd member).
      if (this.cache.revision < this.store.acked && !(await this.caughtUp(this.store.acked))) return 'lagging';
    } else {
      const started = process.hrtime.bigint();
      const view = await this.coordinatorView();
      if (!view) return 'coordinator';
      if (!(await this.caughtUp(view.clock))) return 'lagging';
      cacheReadWait.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
    return this.cache.ready ? null : 'loading';
  }

  private serve(view: CacheView, r: RangeRequest): CachedRange {
    // A single-key read costs less than its memo key: only ranges are shared.
    if (r.range_end.length === 0) {
      cacheHits.inc();
      return rangeFromView(view, r, this.store.router.shardsForRange(r.key, r.range_end));
    }
    const key = memoKey(view.rev, r);
    const hit = this.cache.memo.get(key);
    if (hit) {
      cacheHits.inc();
      cacheSharedAnswers.inc();
      return hit;
    }
    const out = rangeFromView(view, r, this.store.router.shardsForRange(r.key, r.range_end));
    if (this.cache.memo.size < MEMO_MAX && view.rev === this.cache.revision) this.cache.memo.set(key, out);
    cacheHits.inc();
    return out;
  }

  private miss(reason: MissReason): null {
    cacheMisses.inc({ reason });
    return null;
  }

  /** The coordinator's clock and compaction, or null when it does not answer (members decide). */
  private async coordinatorView(): Promise<CoordinatorView | null> {
    try {
      return await this.coordinator.read();
    } catch {
      return null;
    }
  }

  /** True once every event up to `rev` is in the cache; false when the stream lags too long. */
  private async caughtUp(rev: bigint): Promise<boolean> {
    if (this.cache.ready && this.cache.revision >= rev) return true;
    if (this.stalledAt !== null) {
      if (this.stream.released >= this.stalledAt) this.stalledAt = null;
      else return false;
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.opts.waitMs);
    });
    const reached = await Promise.race([this.stream.waitFor(rev).then(() => true), timedOut]);
    clearTimeout(timer);
    if (!reached) {
      this.stalledAt = rev;
      return false;
    }
    return this.cache.ready && this.cache.revision >= rev;
  }
}

/** Every field that changes the answer, joined (keys as latin1). */
function memoKey(rev: bigint, r: RangeRequest): string {
  return [
    rev,
    r.key.toString('latin1'),
    r.range_end.toString('latin1'),
    r.limit,
    r.sort_order,
    r.sort_target,
    r.keys_only ? 1 : 0,
    r.count_only ? 1 : 0,
    r.min_mod_revision,
    r.max_mod_revision,
    r.min_create_revision,
    r.max_create_revision,
  ].join('\u0100');
}
