/**
 * Bounds the events the merger holds for a shard that does not move (a member down or
 * stopped): once they pass a quarter of the memory budget while the budget is spent, the
 * shards holding events drop them (merger.rewind), their feeds stop and forget what they read
 * above the last released revision (feed.rewind), and when the lagging shards answer again the
 * feeds read those events again from the members' history, paced: while they catch up, a feed
 * whose events wait is paused (HTTP/2 flow control leaves the rest in the member) once the
 * merger holds an 8th of the budget, and resumed when releases bring it below a 16th. Watchers
 * get every event in order: nothing above the released revision was released, and it all
 * comes back from the members.
 */
import type { Logger } from 'pino';
import type { MemoryBudget } from '../budget/memory-budget.js';
import { heldEventsDropped } from '../metrics/registry.js';
import type { Shard } from '../shard/shard.js';
import type { ShardFeed } from './feed.js';
import type { Merger } from './merger.js';

const PROBE_INTERVAL_MS = 1000;

export interface HeldEventsSource {
  merger(): Merger;
  feeds(): ShardFeed[];
  shards: readonly Shard[];
}

export class HeldEventsGuard {
  /** Shards whose feeds were rewound and stay stopped until the laggards answer. */
  private readonly suspended = new Set<number>();
  private readonly laggards = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /**
   * After the laggards answer again, until the backlog is through: the feeds reading it are
   * paced (paused past an 8th of the budget held, resumed below a 16th) instead of dropping
   * again, so the re-read neither outruns the release nor churns.
   */
  private catchingUp = false;
  /** Feeds paused by that pacing. */
  private readonly paused = new Set<number>();

  constructor(
    private readonly budget: MemoryBudget,
    private readonly src: HeldEventsSource,
    private readonly log: Logger,
  ) {}

  /** After events were pushed: drop what is held when it takes too much of a spent budget. */
  check(): void {
    const m = this.src.merger();
    if (this.catchingUp) {
      if (m.heldBytes <= this.budget.limit / 8) return;
      const feeds = this.src.feeds();
      for (const i of m.holding()) {
        if (this.paused.has(i)) continue;
        this.paused.add(i);
        feeds[i].pause();
      }
      return;
    }
    if (!this.budget.over || m.heldBytes <= this.budget.limit / 4) return;
    const released = m.released;
    const holding = m.holding();
    const heldBytes = m.heldBytes;
    this.src.shards.forEach((_, i) => {
      if (!holding.includes(i) && m.watermark(i) <= released) this.laggards.add(i);
    });
    const feeds = this.src.feeds();
    for (const i of holding) {
      feeds[i].rewind(released);
      m.rewind(i);
      this.suspended.add(i);
    }
    heldEventsDropped.inc();
    this.log.warn(
      {
        heldBytes,
        released: released.toString(),
        rewound: holding.map((i) => this.src.shards[i].name),
        waitingFor: [...this.laggards].map((i) => this.src.shards[i].name),
      },
      'events held for lagging shards exceeded the memory budget: dropped, to be read again from the members when those shards answer',
    );
    this.schedule();
  }

  /** Every event at or below `rev` was released. */
  released(rev: bigint): void {
    const feeds = this.src.feeds();
    for (const f of feeds) f.released(rev);
    if (!this.catchingUp) return;
    const m = this.src.merger();
    const held = m.heldBytes;
    if (this.paused.size && held <= this.budget.limit / 16) {
      for (const i of this.paused) feeds[i].resume();
      this.paused.clear();
    }
    // A paused feed that holds nothing any more may be the one the others wait for.
    if (this.paused.size) {
      const holding = m.holding();
      for (const i of [...this.paused]) {
        if (holding.includes(i)) continue;
        this.paused.delete(i);
        feeds[i].resume();
      }
    }
    // Through the backlog: the merger holds next to nothing with every feed reading.
    if (!this.paused.size && held <= this.budget.limit / 64) this.catchingUp = false;
  }

  /** The merged stream restarted with new feeds: nothing is suspended any more. */
  reset(): void {
    this.suspended.clear();
    this.laggards.clear();
    this.paused.clear();
    this.catchingUp = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  close(): void {
    this.closed = true;
    this.reset();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => void this.probe(), PROBE_INTERVAL_MS);
  }

  /** Resumes the stopped feeds once every laggard answers a clock read. */
  private async probe(): Promise<void> {
    try {
      await Promise.all([...this.laggards].map((i) => this.src.shards[i].currentClock(true)));
    } catch {
      this.timer = null;
      this.schedule();
      return;
    }
    this.timer = null;
    if (this.closed) return;
    const feeds = this.src.feeds();
    const resumed = [...this.suspended];
    this.suspended.clear();
    this.laggards.clear();
    this.catchingUp = resumed.length > 0;
    for (const i of resumed) feeds[i].start();
    this.log.info({ resumed: resumed.map((i) => this.src.shards[i].name) }, 'lagging shards answer again: reading the dropped events again from the members');
  }
}
