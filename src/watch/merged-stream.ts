/**
 * The proxy's one merged event stream: a member watch per shard (feed.ts), decoded and merged
 * into global revision order (merger.ts), with fence writes for lagging idle shards
 * (fencer.ts). Consumers (the watch hub; later the caches) subscribe to released batches.
 */
import type { Logger } from 'pino';
import type { MemoryBudget } from '../budget/memory-budget.js';
import type { WatchCluster } from './cluster-view.js';
import { mergedRevision, vouchedWatermarks, watchStreamResets, watermarkRevision } from '../metrics/registry.js';
import type { ClockRead, Shard } from '../shard/shard.js';
import type { EventBatch } from './event.js';
import { ShardFeed, type OwnerSource } from './feed.js';
import type { FeedRelay } from './relay.js';
import { Fencer } from './fencer.js';
import { HeldEventsGuard } from './held-events.js';
import { Merger } from './merger.js';

const MAX_START_ROUNDS = 32;
/** How often each feed checks it reads the right source (its owner's relay, or the member). */
const SOURCE_CHECK_MS = 5_000;
/**
 * Held-back events wait for a lagging shard that is writing (its stream moved this recently)
 * instead of asking its owner to vouch at once: a vouch costs the member a progress request
 * (etcd 3.4 copies its write buffer to answer one), and an active shard passes the revision on
 * its own within a batch. The wait ends when the stream has released nothing for this long.
 */
const ACTIVE_SHARD_MS = 100;
/**
 * A vouched watermark needs the member to be there: a progress answer this recent serves, so a
 * member that stops holds the stream back at most this much later than it would otherwise.
 */
const PROGRESS_FRESH_MS = 100;

/**
 * A meta revision M and, per shard, the member revision whose state is exactly the shard's
 * state at M: every lagging shard is fenced up to the highest clock first.
 */
export async function consistentStart(shards: readonly Shard[]): Promise<{ rev: bigint; heads: ClockRead[] }> {
  const heads = await Promise.all(shards.map((s) => s.currentClock()));
  for (let round = 0; round < MAX_START_ROUNDS; round++) {
    const top = heads.reduce((m, h) => (h.clock > m ? h.clock : m), 0n);
    const lagging = heads.map((h, i) => (h.clock < top ? i : -1)).filter((i) => i >= 0);
    if (!lagging.length) return { rev: top, heads };
    await Promise.all(lagging.map(async (i) => (heads[i] = (await shards[i].fenceAndRead(top, [])).clock)));
  }
  throw new Error('watch: shards kept moving while the merged stream started');
}

interface Waiter {
  rev: bigint;
  resolve: () => void;
}

export class MergedStream {
  private merger!: Merger;
  private feeds: ShardFeed[] = [];
  private readonly fencer: Fencer;
  private readonly listeners: Array<(b: EventBatch) => void> = [];
  private readonly resetListeners: Array<(rev: bigint) => void> = [];
  private waiters: Waiter[] = [];
  private closed = false;
  private restarting = false;
  private fenceTimer: NodeJS.Timeout | null = null;
  private waitTimer: NodeJS.Timeout | null = null;
  private start_: { rev: bigint; heads: ClockRead[] } | null = null;
  /** performance.now() when each shard's feed last delivered, and when the stream last released. */
  private movedAt: number[] = [];
  private releasedAt = 0;
  /**
   * Per shard: a watermark its owner vouched for, applied once the member is known to be there
   * (it answered a progress request within PROGRESS_FRESH_MS before the vouch, `fresh`, or one
   * asked after it) and the feed has read through `memberRev`.
   */
  private vouched: Array<{ rev: bigint; memberRev: bigint; answers: number; fresh: boolean } | null> = [];
  /** Bounds the events held for lagging shards (held-events.ts); null without a budget. */
  private readonly held: HeldEventsGuard | null;
  /**
   * Fills in the previous values of released events read without prev_kv, from the read cache
   * (cache/prev-fill.ts); null until the cache is loaded, and again after each restart: the
   * member watches then ask for prev_kv.
   */
  private prevFill: ((b: EventBatch) => void) | null = null;
  /** A shard's owner elsewhere, to read its events from (watch/relay.ts); null: the members. */
  private ownerOf: (shard: number) => OwnerSource | null = () => null;
  private sourceTimer: NodeJS.Timeout | null = null;

  /**
   * `fenceDelayMs`: how long events held back by idle shards wait for those shards to move on
   * their own before they are fenced. It only decides when events flow, never which: a few ms
   * spares most fence writes under load spread over all shards.
   */
  constructor(
    private readonly store: WatchCluster,
    private readonly log: Logger,
    private readonly fenceDelayMs = 0,
    private readonly budget: MemoryBudget | null = null,
  ) {
    this.fencer = new Fencer(
      store.shards,
      (i) => this.merger.watermark(i),
      log,
      (i, target) => (store.routing ? store.routing.settle(i, target) : Promise.resolve(null)),
      (i, target, memberRev) => this.onVouched(i, target, memberRev),
    );
    this.held = budget ? new HeldEventsGuard(budget, { merger: () => this.merger, feeds: () => this.feeds, shards: store.shards }, log) : null;
  }

  /**
   * Where the stream (re)started: its first revision and, per shard, the member revision whose
   * state is the shard's state there. Every released batch is above it (the caches load this).
   */
  get startPoint(): { rev: bigint; heads: ClockRead[] } {
    if (!this.start_) throw new Error('merged stream not started');
    return this.start_;
  }

  get released(): bigint {
    return this.merger.released;
  }

  watermark(shard: number): bigint {
    return this.merger.watermark(shard);
  }

  onBatch(fn: (b: EventBatch) => void): void {
    this.listeners.push(fn);
  }

  /** The stream lost history it needed (a member compacted past it) and restarted at `rev`. */
  onReset(fn: (rev: bigint) => void): void {
    this.resetListeners.push(fn);
  }

  async start(): Promise<void> {
    const { rev, heads } = await consistentStart(this.store.shards);
    this.start_ = { rev, heads };
    this.merger?.close();
    this.held?.reset();
    // The cache reloads after a restart: until it is in, the members send previous values.
    this.prevFill = null;
    this.merger = new Merger(this.store.shards.length, rev, (b) => this.deliver(b), this.budget);
    mergedRevision.set(Number(rev));
    this.settle(rev);
    this.feeds = this.store.shards.map(
      (shard, i) =>
        new ShardFeed({
          shard,
          ks: this.store.ks,
          log: this.log,
          fromMemberRev: heads[i].memberRev + 1n,
          watermark: rev,
          onDecoded: (d) => {
            if (this.closed) return;
            this.movedAt[i] = performance.now();
            this.merger.push(i, d.events, d.watermark);
            this.held?.check();
            watermarkRevision.set({ shard: shard.name }, Number(d.watermark));
            this.applyVouched(i);
            this.fenceHeldBack();
          },
          onLost: (compacted) => void this.restart(compacted),
          onProgress: () => this.applyVouched(i),
          memberPrevKv: () => this.prevFill === null,
          owner: () => this.ownerOf(i),
        }),
    );
    this.vouched = this.store.shards.map(() => null);
    for (const f of this.feeds) f.start();
  }

  /**
   * Resolves once every event at or below `rev` has been released. Shards still behind are
   * vouched for by their owners at once (a vouch waits for the writes in flight, it breaks none);
   * without owners they are fenced after the fence delay (which lets writes already in flight
   * land rather than fail their fence and retry).
   */
  waitFor(rev: bigint): Promise<void> {
    if (this.merger.released >= rev) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ rev, resolve });
      if (this.fenceDelayMs <= 0 || this.store.routing) return this.fenceBelow(rev);
      this.waitTimer ??= setTimeout(() => {
        this.waitTimer = null;
        if (this.closed) return;
        const top = this.waiters.reduce((m, w) => (w.rev > m ? w.rev : m), 0n);
        if (top > this.merger.released) this.fenceBelow(top);
      }, this.fenceDelayMs);
    });
  }

  /**
   * From now on previous values come from `fill`, called on each batch before any consumer sees
   * it: the member watches are reopened without prev_kv (etcd reads every prev_kv it sends,
   * one read per event per watch). `fill` must hold the state just before every batch released
   * from now on: the read cache, once loaded, does (it applies each batch after this).
   */
  fillPrevWith(fill: (b: EventBatch) => void): void {
    if (this.closed) return;
    this.prevFill = fill;
    this.log.info('member watches reopened without prev_kv: previous values come from the read cache');
    for (const f of this.feeds) f.reopen();
  }

  /**
   * From now on a shard owned by another replica is read from that replica's member watch
   * (watch/relay.ts) instead of one of this replica's own: each member then sends each event
   * once, whatever the number of replicas. `owner(i)` names the way there, null while this
   * replica owns the shard or it has no owner; feeds move over within SOURCE_CHECK_MS.
   */
  followOwners(owner: (shard: number) => OwnerSource | null): void {
    this.ownerOf = owner;
    this.sourceTimer ??= setInterval(() => {
      for (const f of this.feeds) f.chooseSource();
    }, SOURCE_CHECK_MS);
    this.sourceTimer.unref();
  }

  /** This replica's relay of shard i's member events, for other replicas (null: none now). */
  relayOf(i: number): FeedRelay | null {
    return this.feeds[i]?.relay ?? null;
  }

  close(): void {
    this.closed = true;
    if (this.sourceTimer) clearInterval(this.sourceTimer);
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.fencer.close();
    this.held?.close();
    this.merger?.close();
    for (const f of this.feeds) f.close();
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  private deliver(b: EventBatch): void {
    if (this.prevFill) this.prevFill(b);
    this.releasedAt = performance.now();
    mergedRevision.set(Number(b.rev));
    this.held?.released(b.rev);
    for (const fn of this.listeners) fn(b);
    this.settle(b.rev);
  }

  private settle(released: bigint): void {
    if (!this.waiters.length) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) (w.rev <= released ? w.resolve() : still.push(w));
    this.waiters = still;
  }

  /** Events some shards hold wait for the others: fence those behind (after the delay). */
  private fenceHeldBack(): void {
    if (this.merger.heldBack() <= this.merger.released) return;
    if (this.fenceDelayMs <= 0) return this.fenceNow();
    this.fenceTimer ??= setTimeout(() => {
      this.fenceTimer = null;
      if (!this.closed) this.fenceNow();
    }, this.fenceDelayMs);
  }

  private fenceNow(): void {
    const top = this.merger.heldBack();
    if (top <= this.merger.released) return;
    const now = performance.now();
    // The stream is moving: lagging shards that are writing get a while to pass `top` themselves.
    const patient = this.fenceDelayMs > 0 && now - this.releasedAt < ACTIVE_SHARD_MS;
    let waiting = false;
    this.store.shards.forEach((_, i) => {
      if (this.merger.watermark(i) >= top) return;
      if (patient && now - (this.movedAt[i] ?? -Infinity) < ACTIVE_SHARD_MS) waiting = true;
      else this.fencer.request(i, top);
    });
    if (waiting) this.fenceHeldBack();
  }

  private fenceBelow(target: bigint): void {
    this.store.shards.forEach((_, i) => {
      if (this.merger.watermark(i) < target) this.fencer.request(i, target);
    });
  }

  /**
   * The shard's owner vouched that every write at or below `target` landed by member revision
   * `memberRev` (fencer.ts): once the member is known to be there and the feed has read through
   * it, the watermark is `target`. The order of events rests on the vouch and `readThrough`
   * alone; the progress answer keeps a member that is down holding the stream back (DESIGN,
   * "Failure behaviour"). An answer from the last PROGRESS_FRESH_MS serves: an idle shard was
   * asked once per released write (bench c: 0.17 progress requests per put, each a message
   * each way and work for the member).
   */
  private onVouched(i: number, target: bigint, memberRev: bigint): void {
    const cur = this.vouched[i];
    if (cur && cur.rev >= target) return;
    const feed = this.feeds[i];
    const fresh = feed.answeredWithin(PROGRESS_FRESH_MS);
    this.vouched[i] = { rev: target, memberRev: cur && cur.memberRev > memberRev ? cur.memberRev : memberRev, answers: feed.progressAnswers, fresh };
    // A member that is down never answers: its shard keeps holding the stream back, as it should.
    if (fresh) this.applyVouched(i);
    else feed.requestProgress();
  }

  private applyVouched(i: number): void {
    const v = this.vouched[i];
    const feed = this.feeds[i];
    if (!v || (!v.fresh && feed.progressAnswers <= v.answers) || feed.readThrough < v.memberRev) return;
    this.vouched[i] = null;
    if (v.rev > this.merger.watermark(i)) {
      vouchedWatermarks.inc({ shard: this.store.shards[i].name });
      this.merger.push(i, [], v.rev);
    }
  }

  private async restart(compacted: bigint): Promise<void> {
    if (this.restarting || this.closed) return;
    this.restarting = true;
    watchStreamResets.inc();
    this.log.error({ compacted: compacted.toString() }, 'member history the merged stream needed was compacted; restarting it');
    for (const f of this.feeds) f.close();
    for (;;) {
      try {
        await this.start();
        for (const fn of this.resetListeners) fn(this.merger.released);
        break;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'merged stream restart failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
        if (this.closed) break;
      }
    }
    this.restarting = false;
  }
}
