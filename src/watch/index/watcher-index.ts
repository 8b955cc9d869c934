/**
 * Finds the watchers whose range holds a key without looking at the others: single-key
 * watchers by key, prefix watchers ([p, prefixEnd(p)), kube-apiserver's kind) by the key's
 * prefixes of the lengths in use, and any other range in an interval treap. An event costs
 * O(distinct prefix lengths + log n + matches) instead of a scan over every range watcher.
 */
import { prefixEnd } from '../../shard/keyspace.js';
import { IntervalTreap, type IntervalHandle } from './interval-treap.js';

/** A watched range as the hub sees it: end null = the key alone; empty = no upper bound. */
export interface WatchedRange {
  key: Buffer;
  end: Buffer | null;
}

/**
 * One watcher of a key or prefix, linked to the others of the same key: the map's value is the
 * first entry, so an event reaches its watcher through the map and this object only (with
 * 10,000 prefixes none of them is in the CPU cache: every object on the way costs a miss).
 */
interface Entry<W, V> {
  w: W;
  v: V;
  key: string;
  kind: 'single' | 'prefix';
  prev: Entry<W, V> | null;
  next: Entry<W, V> | null;
}

type Slot<W, V> = Entry<W, V> | { kind: 'interval'; handle: IntervalHandle };

/** Prefixes of one length, with how many end in each byte. */
interface PrefixLength {
  len: number;
  lastByte: Uint32Array;
  count: number;
}

export class WatcherIndex<W, V> {
  private readonly single = new Map<string, Entry<W, V>>();
  private readonly prefixes = new Map<string, Entry<W, V>>();
  /**
   * Prefix lengths in use, ascending: a key's prefix of a length is looked up only when the
   * key's byte at its end can match (prefixes of several lengths mostly all end in '/').
   */
  private lengths: PrefixLength[] = [];
  private readonly intervals = new IntervalTreap<[W, V]>();
  private readonly slots = new Map<W, Slot<W, V>>();

  get size(): number {
    return this.slots.size;
  }

  add(w: W, range: WatchedRange, value: V): void {
    this.remove(w);
    const key = range.key.toString('latin1');
    if (range.end === null) {
      this.slots.set(w, this.addTo(this.single, 'single', key, w, value));
    } else if (range.end.length > 0 && range.end.equals(prefixEnd(range.key))) {
      // [p, prefixEnd(p)) holds exactly the keys that start with p.
      const slot = this.addTo(this.prefixes, 'prefix', key, w, value);
      if (slot.next === null) this.countPrefix(key, 1);
      this.slots.set(w, slot);
    } else {
      const end = range.end.length === 0 ? null : range.end.toString('latin1');
      this.slots.set(w, { kind: 'interval', handle: this.intervals.insert(key, end, [w, value]) });
    }
  }

  remove(w: W): boolean {
    const slot = this.slots.get(w);
    if (!slot) return false;
    this.slots.delete(w);
    if (slot.kind === 'interval') {
      this.intervals.remove(slot.handle);
      return true;
    }
    const map = slot.kind === 'single' ? this.single : this.prefixes;
    if (slot.next) slot.next.prev = slot.prev;
    if (slot.prev) slot.prev.next = slot.next;
    else if (slot.next) map.set(slot.key, slot.next);
    else {
      map.delete(slot.key);
      if (slot.kind === 'prefix') this.countPrefix(slot.key, -1);
    }
    return true;
  }

  /** Calls `f` for every watcher whose range holds `key`. */
  forEachHolding(key: Buffer, f: (w: W, v: V) => void): void {
    const k = key.toString('latin1');
    if (this.single.size) {
      for (let e: Entry<W, V> | null | undefined = this.single.get(k); e; e = e.next) f(e.w, e.v);
    }
    for (const pl of this.lengths) {
      const len = pl.len;
      if (len > k.length) break;
      if (pl.lastByte[k.charCodeAt(len - 1)] === 0) continue;
      for (let e: Entry<W, V> | null | undefined = this.prefixes.get(len === k.length ? k : k.slice(0, len)); e; e = e.next) f(e.w, e.v);
    }
    if (this.intervals.size) this.intervals.stab(k, ([w, v]) => f(w, v));
  }

  /** The new entry goes first (its `next` is null when it is the key's only watcher). */
  private addTo(map: Map<string, Entry<W, V>>, kind: 'single' | 'prefix', key: string, w: W, v: V): Entry<W, V> {
    const next = map.get(key) ?? null;
    const entry: Entry<W, V> = { w, v, key, kind, prev: null, next };
    if (next) next.prev = entry;
    map.set(key, entry);
    return entry;
  }

  private countPrefix(prefix: string, d: number): void {
    const len = prefix.length;
    let pl = this.lengths.find((x) => x.len === len);
    if (!pl) {
      pl = { len, lastByte: new Uint32Array(256), count: 0 };
      this.lengths = [...this.lengths, pl].sort((a, b) => a.len - b.len);
    }
    pl.lastByte[prefix.charCodeAt(len - 1)] += d;
    pl.count += d;
    if (pl.count === 0) this.lengths = this.lengths.filter((x) => x !== pl);
  }
}
