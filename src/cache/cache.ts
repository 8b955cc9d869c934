/**
 * The read cache: one tree per shard (store.ts), all at the merged stream's released revision.
 * It loads each shard at the stream's start point (or, if a member compacted that, at a newer
 * consistent point), keeps the batches released meanwhile, applies their events above the
 * loaded revision, and from then on follows the stream batch by batch. When the stream
 * restarts (it lost member history) the cache loads again. Until loaded it is not ready and
 * reads go to the members.
 */
import type { Logger } from 'pino';
import type { Keyspace } from '../shard/keyspace.js';
import type { Shard } from '../shard/shard.js';
import { fromWire } from '../shard/meta-kv.js';
import type { EventBatch } from '../watch/event.js';
import { EventType } from '../watch/event.js';
import type { History } from '../watch/history.js';
import { consistentStart, type MergedStream } from '../watch/merged-stream.js';
import { Errors } from '../etcd/errors.js';
import { loadShard } from './loader.js';
import { fillPrev } from './prev-fill.js';
import type { MemoryBudget } from '../budget/memory-budget.js';
import type { CacheView, CachedRange } from './range-from-view.js';
import { Snapshots, type SnapshotOptions } from './snapshots.js';
import { ShardStore } from './key-tree.js';
import { encodeKeyValue } from '../wire/encoded-kv.js';

export interface CacheOptions extends SnapshotOptions {
  /** Keys per member range while loading. */
  loadPageKeys: number;
}

const RETRY_MS = 1000;

export class ReadCache {
  readonly stores: ShardStore[];
  private rev = 0n;
  private loaded = false;
  private generation = 0;
  /** Batches released while a load runs, applied once it is in. */
  private pending: EventBatch[] = [];
  private readonly snapshots: Snapshots;
  private closed = false;
  /** Results of reads at the current revision, by request (identical reads are computed once). */
  readonly memo = new Map<string, CachedRange>();

  constructor(
    private readonly shards: Shard[],
    private readonly ks: Keyspace,
    private readonly stream: MergedStream,
    private readonly history: History,
    private readonly log: Logger,
    private readonly opts: CacheOptions,
    /** Charged with the load's pages (loader.ts); null: none. */
    private readonly budget: MemoryBudget | null = null,
  ) {
    this.stores = shards.map(() => new ShardStore());
    this.snapshots = new Snapshots(opts);
    stream.onBatch((b) => this.onBatch(b));
    stream.onReset(() => this.load());
  }

  get ready(): boolean {
    return this.loaded;
  }

  /** Why the cache does not serve yet (for /readyz). */
  loadingReason(): string {
    return this.closed ? 'closed' : `loading ${this.shards.length} shard caches`;
  }

  /** The revision the trees stand at (meaningful once ready). */
  get revision(): bigint {
    return this.rev;
  }

  get snapshotCount(): number {
    return this.snapshots.size;
  }

  /** The live trees: valid until the next batch, so use them without awaiting in between. */
  current(): CacheView {
    return { rev: this.rev, trees: this.stores.map((s) => s.live) };
  }

  /** The state at a past revision, or null when it must be read from the members. */
  at(rev: bigint): CacheView | null {
    if (!this.loaded) return null;
    if (rev === this.rev) return this.current();
    return this.snapshots.at(rev, () => this.current(), this.rev, this.history);
  }

  /** Keeps the current state for reads at this revision (the next pages of a list). */
  keepCurrent(): void {
    this.snapshots.keep(this.rev, () => ({ rev: this.rev, trees: this.stores.map((s) => s.snapshot()) }));
  }

  /** Starts loading from the stream's start point; resolves once ready (or closed). */
  async load(): Promise<void> {
    const gen = ++this.generation;
    this.loaded = false;
    this.pending = [];
    this.snapshots.clear();
    this.memo.clear();
    const started = process.hrtime.bigint();
    let point = this.stream.startPoint;
    while (!this.closed && gen === this.generation) {
      try {
        const cancelled = () => this.closed || gen !== this.generation;
        const trees = await Promise.all(
          this.shards.map((s, i) => loadShard(s.upstream, this.ks, point.heads[i].memberRev, this.opts.loadPageKeys, cancelled, this.budget)),
        );
        if (cancelled()) return;
        trees.forEach((t, i) => this.stores[i].replace(t.tree, t.bytes));
        this.rev = point.rev;
        for (const b of this.pending) this.apply(b);
        this.pending = [];
        this.loaded = true;
        // The trees now hold the state before every batch to come: they give previous values.
        this.stream.fillPrevWith((b) => fillPrev(b, this.stores));
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        this.log.info({ keys: this.stores.reduce((n, s) => n + s.keys, 0), seconds, revision: this.rev.toString() }, 'read cache loaded');
        return;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'read cache load failed; retrying');
        await new Promise((r) => setTimeout(r, RETRY_MS));
        // Any consistent point will do (batches at or below it are skipped): a newer one
        // survives a member compaction past the stream's start.
        if (Errors.compacted.is(err)) point = await consistentStart(this.shards).catch(() => point);
      }
    }
  }

  close(): void {
    this.closed = true;
    this.loaded = false;
    this.snapshots.clear();
  }

  private onBatch(b: EventBatch): void {
    if (this.closed) return;
    if (!this.loaded) {
      this.pending.push(b);
      return;
    }
    this.apply(b);
  }

  private apply(b: EventBatch): void {
    if (b.rev <= this.rev) return;
    for (const e of b.events) {
      if (e.rev <= this.rev) continue;
      const store = this.stores[e.shard];
      const key = e.key.toString('latin1');
      if (e.type === EventType.PUT) store.put(key, encodeKeyValue(fromWire(e.kv)));
      else store.delete(key);
    }
    this.rev = b.rev;
    if (this.memo.size) this.memo.clear();
    if (b.events.length) this.snapshots.advance(b.events.length);
  }
}
