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

export class WatchHub {
  readonly history: History;
  private readonly live = new WatcherIndex<Watcher, WatchSink>();
  private readonly sinks = new Set<WatchSink>();
  private readonly timer: NodeJS.Timeout;
  private ticking = false;

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

  register(sink: WatchSink): void {
    this.sinks.add(sink);
  }

  unregister(sink: WatchSink): void {
    this.sinks.delete(sink);
  }

  addLive(w: Watcher, sink: WatchSink): void {
    w.live = true;
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
    const hits = new Map<Watcher, { sink: WatchSink; events: MetaEvent[] }>();
    const hit = (w: Watcher, sink: WatchSink, e: MetaEvent) => {
      if (!w.takes(e)) return; // the index found it: the key is in its range
      const h = hits.get(w);
      if (h) h.events.push(e);
      else hits.set(w, { sink, events: [e] });
    };
    for (const e of b.events) this.live.forEachHolding(e.key, (w, sink) => hit(w, sink, e));
    for (const [w, h] of hits) h.sink.deliver(w, h.events, b.rev);
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
