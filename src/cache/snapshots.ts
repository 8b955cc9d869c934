/**
 * The cache's past states. A paginated list reads one revision page after page while writes go
 * on (kube-apiserver: limit, then the same revision with a moving start key), so a view that
 * answered with `more` is kept as copy-on-write clones. A read at another recent revision
 * rebuilds that state from the nearest newer view by undoing the history's events (each
 * carries the key's previous state), and keeps it for the pages that follow.
 */
import type { History } from '../watch/history.js';
import { fromWire } from '../shard/meta-kv.js';
import type { CacheView } from './range-from-view.js';
import { encodeKeyValue } from '../wire/encoded-kv.js';

export interface SnapshotOptions {
  /** Views kept at most (least recently used go first). */
  snapshots: number;
  /** A view unused for this long is dropped (ms). */
  snapshotIdleMs: number;
  /** Past revisions farther back than this many events are read from the members instead. */
  maxUndoEvents: number;
}

interface Kept {
  view: CacheView;
  used: number;
  /** Events applied to the live trees when this view's state was current (its age). */
  at: number;
}

export class Snapshots {
  private readonly kept = new Map<bigint, Kept>();
  /** Events applied to the live trees so far. */
  private applied = 0;

  constructor(private readonly opts: SnapshotOptions) {}

  get size(): number {
    return this.kept.size;
  }

  clear(): void {
    this.kept.clear();
  }

  /**
   * The live trees took `events` more events. A kept view's own memory grows with the nodes the
   * live trees copy after it, so views more than maxUndoEvents events old are dropped: that
   * bounds each one (and such a revision would not be rebuilt either).
   */
  advance(events: number): void {
    this.applied += events;
    for (const [rev, k] of this.kept) if (this.applied - k.at > this.opts.maxUndoEvents) this.kept.delete(rev);
  }

  /** Keeps `view` (frozen clones) for reads at its revision. */
  keep(rev: bigint, freeze: () => CacheView): void {
    const k = this.kept.get(rev);
    if (k) {
      k.used = Date.now();
      return;
    }
    this.put(freeze(), this.applied);
  }

  /**
   * The state at `rev` (below the live view's revision), or null when the history no longer
   * covers it or it is too far back to rebuild.
   */
  at(rev: bigint, live: () => CacheView, liveRev: bigint, history: History): CacheView | null {
    this.expire();
    const hit = this.kept.get(rev);
    if (hit) {
      hit.used = Date.now();
      return hit.view;
    }
    if (rev < history.floor || rev >= liveRev) return null;
    // The nearest newer kept view, else the live one.
    let base: CacheView | null = null;
    for (const k of this.kept.values()) if (k.view.rev > rev && (!base || k.view.rev < base.rev)) base = k.view;
    const baseRev = base ? base.rev : liveRev;
    const span = history.since(rev + 1n, this.opts.maxUndoEvents + 1);
    if (!span) return null;
    const last = span.events.length ? span.events[span.events.length - 1].rev : 0n;
    // Cut short before reaching the base: more events to undo than allowed.
    if (!span.complete && last <= baseRev) return null;
    const undo = span.events.filter((e) => e.rev <= baseRev);
    const trees = (base ?? live()).trees.map((t) => t.clone());
    for (let i = undo.length - 1; i >= 0; i--) {
      const e = undo[i];
      const key = e.key.toString('latin1');
      const tree = trees[e.shard];
      // No previous state: the key did not exist before this event.
      if (e.prevKv) tree.set(key, encodeKeyValue(fromWire(e.prevKv)), true);
      else tree.delete(key);
    }
    const view = { rev, trees };
    this.put(view, (base ? (this.kept.get(base.rev)?.at ?? this.applied) : this.applied) - undo.length);
    return view;
  }

  private put(view: CacheView, at: number): void {
    this.kept.set(view.rev, { view, used: Date.now(), at });
    while (this.kept.size > this.opts.snapshots) {
      let oldest: bigint | null = null;
      let when = Infinity;
      for (const [rev, k] of this.kept) if (k.used < when) [oldest, when] = [rev, k.used];
      if (oldest === null) break;
      this.kept.delete(oldest);
    }
  }

  private expire(): void {
    const cutoff = Date.now() - this.opts.snapshotIdleMs;
    for (const [rev, k] of this.kept) if (k.used < cutoff) this.kept.delete(rev);
  }
}
