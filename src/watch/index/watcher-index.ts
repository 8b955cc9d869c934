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

/** The watchers of one key or prefix, in flat arrays (cheap to walk on every event). */
interface Bucket<W, V> {
  ws: W[];
  vs: V[];
}

type Slot<W, V> =
  | { kind: 'single' | 'prefix'; key: string; bucket: Bucket<W, V>; at: number }
  | { kind: 'interval'; handle: IntervalHandle };

/** Prefixes of one length, with how many end in each byte. */
interface PrefixLength {
  len: number;
  lastByte: Uint32Array;
  count: number;
}

export class WatcherIndex<W, V> {
  private readonly single = new Map<string, Bucket<W, V>>();
  private readonly prefixes = new Map<string, Bucket<W, V>>();
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
      if (slot.at === 0) this.countPrefix(key, 1);
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
    const b = slot.bucket;
    const lastW = b.ws.pop() as W;
    const lastV = b.vs.pop() as V;
    if (slot.at < b.ws.length) {
      // The last watcher takes the removed one's place.
      b.ws[slot.at] = lastW;
      b.vs[slot.at] = lastV;
      const moved = this.slots.get(lastW);
      if (moved && moved.kind !== 'interval') moved.at = slot.at;
    }
    if (b.ws.length === 0) {
      if (slot.kind === 'single') this.single.delete(slot.key);
      else {
        this.prefixes.delete(slot.key);
        this.countPrefix(slot.key, -1);
      }
    }
    return true;
  }

  /** Calls `f` for every watcher whose range holds `key`. */
  forEachHolding(key: Buffer, f: (w: W, v: V) => void): void {
    const k = key.toString('latin1');
    if (this.single.size) {
      const b = this.single.get(k);
      if (b) for (let i = 0; i < b.ws.length; i++) f(b.ws[i] as W, b.vs[i] as V);
    }
    for (const pl of this.lengths) {
      const len = pl.len;
      if (len > k.length) break;
      if (pl.lastByte[k.charCodeAt(len - 1)] === 0) continue;
      const b = this.prefixes.get(len === k.length ? k : k.slice(0, len));
      if (b) for (let i = 0; i < b.ws.length; i++) f(b.ws[i] as W, b.vs[i] as V);
    }
    if (this.intervals.size) this.intervals.stab(k, ([w, v]) => f(w, v));
  }

  private addTo(maps: Map<string, Bucket<W, V>>, kind: 'single' | 'prefix', key: string, w: W, v: V): Slot<W, V> & { at: number } {
    let bucket = maps.get(key);
    if (!bucket) maps.set(key, (bucket = { ws: [], vs: [] }));
    bucket.ws.push(w);
    bucket.vs.push(v);
    return { kind, key, bucket, at: bucket.ws.length - 1 };
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
