/**
 * Reads meta events of revisions [from, to] from the members, for a watcher whose start lies
 * before the in-memory history. Each shard that can hold keys of the watcher's range is watched
 * from the member revision that holds its state at from-1 (shard/revmap.ts), decoded like the
 * live feed, and merged in revision order; the member watches close once `to` is reached.
 *
 * `to` was released by the live stream before the replay started, so every write at or below it
 * had landed when each shard's head is read here. An idle shard's clock may stay below `to`
 * (its owner vouched for it without a write), so a shard's watermark is `to` once its feed has
 * decoded the head's clock: no event at or below `to` can follow on that shard.
 */
import type { Logger } from 'pino';
import type { WatchCluster } from './cluster-view.js';
import type { MetaEvent } from './event.js';
import { ShardFeed } from './feed.js';
import { Merger } from './merger.js';

export class ReplayLost extends Error {
  constructor(readonly compactRevision: bigint) {
    super('member history was compacted during a replay');
  }
}

export class Replay {
  private feeds: ShardFeed[] = [];
  private closed = false;
  private finish: (() => void) | null = null;

  constructor(
    private readonly store: WatchCluster,
    private readonly log: Logger,
    private readonly shardIdx: number[],
    private readonly from: bigint,
    private readonly to: bigint,
    private readonly onEvents: (events: MetaEvent[]) => void,
  ) {}

  async run(): Promise<void> {
    const shards = this.shardIdx.map((i) => this.store.shards[i]);
    const floor = this.from - 1n;
    const heads = await Promise.all(shards.map((s) => s.currentClock()));
    const points = await Promise.all(shards.map((s, i) => this.store.revmaps[s.index].memberRevAt(floor, heads[i])));
    if (this.closed) return;
    await new Promise<void>((resolve, reject) => {
      this.finish = resolve;
      const merger = new Merger(shards.length, floor, (b) => {
        if (this.closed) return;
        const events = b.events.filter((e) => e.rev <= this.to);
        if (events.length) this.onEvents(events);
        if (b.rev >= this.to) {
          this.close();
          resolve();
        }
      });
      this.feeds = shards.map(
        (shard, i) =>
          new ShardFeed({
            shard,
            ks: this.store.ks,
            log: this.log,
            fromMemberRev: points[i].rev + 1n,
            watermark: floor,
            floor,
            onDecoded: (d) => merger.push(i, d.events, d.watermark >= heads[i].clock && this.to > d.watermark ? this.to : d.watermark),
            onLost: (compacted) => {
              this.close();
              reject(new ReplayLost(compacted));
            },
          }),
      );
      for (const f of this.feeds) f.start();
      // Shards with nothing to read between their point and their head already stand at `to`.
      points.forEach((p, i) => {
        if (p.rev >= heads[i].memberRev) merger.push(i, [], this.to);
      });
      if (this.closed) resolve();
    });
  }

  pause(): void {
    for (const f of this.feeds) f.pause();
  }

  resume(): void {
    for (const f of this.feeds) f.resume();
  }

  /** Stops reading; a pending run() resolves. */
  close(): void {
    this.closed = true;
    for (const f of this.feeds) f.close();
    this.finish?.();
  }
}
