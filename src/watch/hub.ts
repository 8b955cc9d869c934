/**
 * Serves every client watcher from the one merged stream: released batches go into the history
 * and to the live watchers whose range covers them (single-key watchers are found by key,
 * range watchers by a scan). Progress notifications for watchers that asked for them are sent
 * from here on a timer, after the merged stream has caught up with the coordinator clock.
 */
import type { Logger } from 'pino';
import { watchers as watchersGauge } from '../metrics/registry.js';
import type { EventBatch, MetaEvent } from './event.js';
import { History } from './history.js';
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
  private readonly single = new Map<string, Map<Watcher, WatchSink>>();
  private readonly ranged = new Map<Watcher, WatchSink>();
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
    if (w.spec.end === null) {
      const k = w.spec.key.toString('latin1');
      let m = this.single.get(k);
      if (!m) this.single.set(k, (m = new Map()));
      m.set(w, sink);
    } else {
      this.ranged.set(w, sink);
    }
    watchersGauge.inc();
  }

  removeLive(w: Watcher): void {
    if (!w.live) return;
    w.live = false;
    if (w.spec.end === null) {
      const k = w.spec.key.toString('latin1');
      const m = this.single.get(k);
      m?.delete(w);
      if (m && m.size === 0) this.single.delete(k);
    } else {
      this.ranged.delete(w);
    }
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
      if (!w.wants(e)) return;
      const h = hits.get(w);
      if (h) h.events.push(e);
      else hits.set(w, { sink, events: [e] });
    };
    for (const e of b.events) {
      if (this.single.size) {
        const m = this.single.get(e.key.toString('latin1'));
        if (m) for (const [w, sink] of m) hit(w, sink, e);
      }
      for (const [w, sink] of this.ranged) hit(w, sink, e);
    }
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
