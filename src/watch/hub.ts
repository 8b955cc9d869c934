/**
 * Serves every client watcher from the one merged stream: released batches go into the history
 * and to the live watchers whose range covers them (single-key watchers are found by key,
 * prefix and other range watchers through the watcher index, index/watcher-index.ts). Progress notifications for watchers that asked for them are sent
 * from here on a timer, after the merged stream has caught up with the coordinator clock.
 */
import type { Logger } from 'pino';
import { watchers as watchersGauge } from '../metrics/registry.js';
import type { EventBatch, MetaEvent } from './event.js';
import { History } from './history.js';
import { WatcherIndex } from './index/watcher-index.js';
import type { MergedStream } from './merged-stream.js';
import type { Watcher } from './watcher.js';

/** Where a live watcher's events go (its client stream). */
export interface WatchSink {
  deliver(w: Watcher, events: MetaEvent[], rev: bigint): void;
  /** Periodic progress for its watchers that asked for it (all events up to `rev` were sent). */
  progressTick(rev: bigint): void;
  /** The merged stream restarted above history it lost: cancel every watcher as compacted. */
  reset(): void;
}

export interface HubOptions {
  historyEvents: number;
  historyBytes: number;
  progressNotifyIntervalMs: number;
}

/**
 * Numbers the batches matched by every hub of the process (a watcher keeps the number of the
 * last batch that reached it, and its place in the hub's list). A small integer that wraps
 * after 2^30 batches: a stale number that matches again is told apart by the place.
 */
let batchSeq = 0;

export class WatchHub {
  readonly history: History;
  private readonly live = new WatcherIndex<Watcher, WatchSink>();
  private readonly sinks = new Set<WatchSink>();
  private readonly timer: NodeJS.Timeout;
  private ticking = false;
  /** The event being matched, and the watchers the batch reached so far: (watcher, sink, events) triples. */
  private current: MetaEvent | null = null;
  private touched: Array<Watcher | WatchSink | MetaEvent[]> = [];
  /** Made once: matching an event allocates nothing but the watcher's event list. */
  private readonly visit = (w: Watcher, sink: WatchSink): void => {
    const e = this.current as MetaEvent;
    if (!w.takesLive(e)) return; // the index found it: the key is in its range
    if (w.batchSeq === batchSeq && this.touched[w.batchSlot] === w) (this.touched[w.batchSlot + 2] as MetaEvent[]).push(e);
    else {
      w.batchSeq = batchSeq;
      w.batchSlot = this.touched.length;
      this.touched.push(w, sink, [e]);
    }
  };

  constructor(
    readonly stream: MergedStream,
    /** Reads the coordinator clock after the call (clock/probe.ts). */
    readonly probe: { read(): Promise<bigint> },
    private readonly log: Logger,
    opts: HubOptions,
  ) {
    this.history = new History(opts.historyEvents, stream.released, opts.historyBytes);
    stream.onBatch((b) => this.onBatch(b));
    stream.onReset((rev) => {
      this.history.reset(rev);
      for (const s of [...this.sinks]) s.reset();
    });
    this.timer = setInterval(() => void this.tick(), opts.progressNotifyIntervalMs);
    this.timer.unref();
  }

  get released(): bigint {
    return this.stream.released;
  }

  /** A revision every event at or below which has been released, at least the coordinator clock now. */
  async caughtUp(): Promise<bigint> {
    const target = await this.probe.read();
    await this.stream.waitFor(target);
    return this.stream.released;
  }

  /**
   * The current revision for a watch created without a start revision: the coordinator clock
   * (covers every write acknowledged before the call, by any replica) or what was released, if
   * higher. Events up to it may not be released yet; a watcher starting above them skips them.
   * The coordinator unreachable: what was released (as an etcd member answers from its own state).
   */
  async currentRevision(): Promise<bigint> {
    try {
      const clock = await this.probe.read();
      return clock > this.stream.released ? clock : this.stream.released;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'watch start: coordinator clock not read, starting after the released revision');
      return this.stream.released;
    }
  }

  register(sink: WatchSink): void {
    this.sinks.add(sink);
  }

  unregister(sink: WatchSink): void {
    this.sinks.delete(sink);
  }

  addLive(w: Watcher, sink: WatchSink): void {
    w.live = true;
    // Released events come above `released`: only a watcher that starts later checks revisions.
    w.startsLater = w.nextRev > this.stream.released + 1n;
    this.live.add(w, w.spec, sink);
    watchersGauge.inc();
  }

  removeLive(w: Watcher): void {
    if (!w.live) return;
    w.live = false;
    this.live.remove(w);
    watchersGauge.dec();
  }

  close(): void {
    clearInterval(this.timer);
  }

  private onBatch(b: EventBatch): void {
    this.history.append(b);
    if (!b.events.length) return;
    batchSeq = (batchSeq + 1) & 0x3fffffff || 1;
    for (const e of b.events) {
      this.current = e;
      this.live.forEachHolding(e.key, this.visit);
    }
    this.current = null;
    // Delivery may remove watchers (a slow one is resynced): the list is taken first.
    const touched = this.touched;
    this.touched = [];
    for (let i = 0; i < touched.length; i += 3) {
      (touched[i + 1] as WatchSink).deliver(touched[i] as Watcher, touched[i + 2] as MetaEvent[], b.rev);
    }
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.sinks.size === 0) return;
    this.ticking = true;
    try {
      const rev = await this.caughtUp();
      for (const s of this.sinks) s.progressTick(rev);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'watch progress tick skipped');
    } finally {
      this.ticking = false;
    }
  }
}
