/**
 * Merges the shards' meta event streams into one stream in global revision order (DESIGN
 * invariant 3). Each shard's events arrive in revision order with a watermark: the shard will
 * never produce an event at or below it. Revision R is released once every shard's watermark is
 * at least R, so nothing is ever released out of order, and no timeout decides anything.
 */
import type { EventBatch, MetaEvent } from './event.js';

class Queue {
  items: MetaEvent[] = [];
  head = 0;
  /** Bytes of the events held. */
  bytes = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  last(): MetaEvent | undefined {
    return this.size ? this.items[this.items.length - 1] : undefined;
  }

  /** Removes and returns the events at or below `rev`. */
  takeUpTo(rev: bigint): MetaEvent[] {
    let i = this.head;
    while (i < this.items.length && this.items[i].rev <= rev) i++;
    const out = this.items.slice(this.head, i);
    for (const e of out) this.bytes -= e.size;
    this.head = i;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }
}

function byRev(a: MetaEvent, b: MetaEvent): number {
  return a.rev < b.rev ? -1 : a.rev > b.rev ? 1 : 0;
}

/** Where held bytes are counted (the memory budget's `held` use). */
export interface HeldBytes {
  charge(use: 'held', bytes: number): void;
  release(use: 'held', bytes: number): void;
}

export class Merger {
  private readonly queues: Queue[];
  private readonly marks: bigint[];
  private releasedRev: bigint;
  private heldTotal = 0;

  constructor(
    shards: number,
    start: bigint,
    private readonly onRelease: (batch: EventBatch) => void,
    private readonly held: HeldBytes | null = null,
  ) {
    this.queues = Array.from({ length: shards }, () => new Queue());
    this.marks = Array.from({ length: shards }, () => start);
    this.releasedRev = start;
  }

  get released(): bigint {
    return this.releasedRev;
  }

  watermark(shard: number): bigint {
    return this.marks[shard];
  }

  /** The highest revision some shard holds back (0n when none waits). */
  heldBack(): bigint {
    let top = 0n;
    for (const q of this.queues) {
      const e = q.last();
      if (e && e.rev > top) top = e.rev;
    }
    return top;
  }

  /** Bytes of the events held back (waiting for a shard's watermark). */
  get heldBytes(): number {
    return this.heldTotal;
  }

  /** Shards holding events back. */
  holding(): number[] {
    return this.queues.map((q, i) => (q.size ? i : -1)).filter((i) => i >= 0);
  }

  /**
   * Drops the shard's held events and sets its watermark back to the released revision: its
   * feed reads them again (feed.ts rewind), and nothing above the released revision can be
   * released before they are back.
   */
  rewind(shard: number): void {
    const q = this.queues[shard];
    this.account(-q.bytes);
    this.queues[shard] = new Queue();
    this.marks[shard] = this.releasedRev;
  }

  /** Releases what the budget counts for events still held (the stream stops). */
  close(): void {
    this.account(-this.heldTotal);
  }

  push(shard: number, events: MetaEvent[], watermark: bigint): void {
    const q = this.queues[shard];
    let bytes = 0;
    for (const e of events) {
      q.items.push(e);
      bytes += e.size;
    }
    q.bytes += bytes;
    this.account(bytes);
    if (watermark > this.marks[shard]) this.marks[shard] = watermark;
    this.release();
  }

  private release(): void {
    let low = this.marks[0];
    for (const m of this.marks) if (m < low) low = m;
    if (low <= this.releasedRev) return;
    let events: MetaEvent[] = [];
    let sources = 0;
    for (const q of this.queues) {
      if (!q.size) continue;
      const before = q.bytes;
      const part = q.takeUpTo(low);
      this.account(q.bytes - before);
      if (!part.length) continue;
      events = sources ? events.concat(part) : part;
      sources++;
    }
    // A revision lives on one shard (a write does), so a stable sort by revision keeps each
    // revision's events in the member's order, which is the order of the write's ops.
    if (sources > 1) events.sort(byRev);
    this.releasedRev = low;
    this.onRelease({ events, rev: low });
  }

  private account(bytes: number): void {
    if (!bytes) return;
    this.heldTotal += bytes;
    if (!this.held) return;
    if (bytes > 0) this.held.charge('held', bytes);
    else this.held.release('held', -bytes);
  }
}
