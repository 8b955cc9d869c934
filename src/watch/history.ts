/**
 * The most recent released events, for watchers that start at a past revision or fell behind.
 * Bounded by event count and by bytes (values and prev values are kept, so both matter).
 * Whole revisions are evicted together, so the history holds every event with a revision in
 * (floor, last]; older ones are read from the members (replay.ts).
 */
import type { EventBatch, MetaEvent } from './event.js';

export class History {
  private events: MetaEvent[] = [];
  private head = 0;
  private lowest: bigint;
  private bytes = 0;

  constructor(
    private readonly capacity: number,
    start: bigint,
    private readonly maxBytes = Number.MAX_SAFE_INTEGER,
  ) {
    this.lowest = start;
  }

  /** Every event above this revision (up to the last appended) is held. */
  get floor(): bigint {
    return this.lowest;
  }

  get size(): number {
    return this.events.length - this.head;
  }

  reset(start: bigint): void {
    this.events = [];
    this.head = 0;
    this.bytes = 0;
    this.lowest = start;
  }

  append(batch: EventBatch): void {
    for (const e of batch.events) {
      this.events.push(e);
      this.bytes += e.size;
    }
    while (this.size > this.capacity || (this.bytes > this.maxBytes && this.size > 0)) {
      const rev = this.events[this.head].rev;
      while (this.head < this.events.length && this.events[this.head].rev === rev) this.bytes -= this.events[this.head++].size;
      this.lowest = rev;
    }
    // Evicted events are cut off the array once they are half of it (and more than the history
    // holds, or 4096): until then they stay reachable, with their keys and values.
    if (this.head > Math.min(4096, this.capacity) && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Events at revision `from` and above, at most about `max` of them (and about `maxBytes`)
   * cut at a revision boundary: `complete` says whether they reach the newest event held. Null
   * when revisions at or above `from` were already evicted.
   */
  since(from: bigint, max: number, maxBytes = Number.MAX_SAFE_INTEGER): { events: MetaEvent[]; complete: boolean } | null {
    if (from <= this.lowest) return null;
    let lo = this.head;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid].rev < from) lo = mid + 1;
      else hi = mid;
    }
    let end = Math.min(this.events.length, lo + max);
    let bytes = 0;
    for (let i = lo; i < end; i++) {
      bytes += this.events[i].size;
      if (bytes > maxBytes) {
        end = i + 1;
        break;
      }
    }
    if (end < this.events.length) {
      const cut = this.events[end].rev;
      while (end > lo && this.events[end - 1].rev === cut) end--;
      if (end === lo) {
        // One revision larger than `max`: it still goes out whole.
        while (end < this.events.length && this.events[end].rev === cut) end++;
      }
    }
    return { events: this.events.slice(lo, end), complete: end === this.events.length };
  }
}
