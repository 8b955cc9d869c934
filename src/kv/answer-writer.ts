/**
 * Where a paged Range (range-pages.ts) writes its answer's entries: in the order pages come (the
 * answer's order), straight into the response after its header, allocated at the size the
 * first pages suggest and grown (by copy) when keys turn out bigger; for a sort on another
 * field, into chunks whose entries are put in order at the end. `held` is what the answer
 * holds until written, for the memory budget.
 */
import { writeKvEntry, writeTrailer } from '../wire/encoded-kv.js';
import type { MetaKV } from '../shard/meta-kv.js';

/** Room for RangeResponse.more and .count after the entries. */
export const TRAILER = 16;

export class AnswerWriter {
  private buf: Buffer;
  private at: number;
  /** Offset of each entry's start (to drop the ones past a limit, or to sort). */
  private readonly starts: number[] = [];
  /** Bytes of the chunks allocated (the sorted path). */
  private chunked = 0;
  private readonly views: Buffer[] = [];

  constructor(
    private readonly head: Buffer,
    /** Entries go straight into the response (false: into chunks, to be sorted). */
    private readonly direct: boolean,
    capacity: number,
    private readonly chunkBytes: number,
  ) {
    this.buf = Buffer.allocUnsafe(this.direct ? head.length + capacity + TRAILER : 0);
    this.at = this.direct ? head.copy(this.buf, 0) : 0;
  }

  get entries(): number {
    return this.direct ? this.starts.length : this.views.length;
  }

  /** Bytes of the entries written. */
  get bytes(): number {
    if (this.direct) return this.at - this.head.length;
    return this.views.reduce((a, v) => a + v.length, 0);
  }

  /** What the answer holds until written: the response and grpc-js's framed copy of it (or the chunks). */
  get held(): number {
    if (this.direct) return 2 * this.buf.length;
    return this.chunked;
  }

  fits(size: number): boolean {
    return this.at + size + TRAILER <= this.buf.length;
  }

  /** `held` once the response grew to take an entry of `size` (see grow). */
  heldAfterGrowth(size: number): number {
    if (!this.direct) return this.held + Math.max(size, this.chunkBytes);
    return 2 * this.grownSize(size) + this.buf.length;
  }

  add(kv: MetaKV, size: number, withValue: boolean): void {
    if (!this.fits(size)) this.grow(size);
    if (this.direct) this.starts.push(this.at);
    const start = this.at;
    this.at = writeKvEntry(this.buf, this.at, kv, withValue);
    if (!this.direct) this.views.push(this.buf.subarray(start, this.at));
  }

  /** The response with the first `keep` entries, then more and count. */
  finish(keep: number, more: boolean, count: bigint): Buffer {
    const end = keep < this.starts.length ? this.starts[keep] : this.at;
    const at = writeTrailer(this.buf, end, more, count);
    return this.buf.subarray(0, at);
  }

  /** The chunked entries in the given order. */
  sorted(order: readonly number[]): Buffer[] {
    return order.map((i) => this.views[i]);
  }

  private grownSize(size: number): number {
    return Math.max(this.at + size + TRAILER, Math.ceil(this.buf.length * 1.5));
  }

  private grow(size: number): void {
    if (!this.direct) {
      this.buf = Buffer.allocUnsafe(Math.max(size, this.chunkBytes));
      this.chunked += this.buf.length;
      this.at = 0;
      return;
    }
    const next = Buffer.allocUnsafe(this.grownSize(size));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
}
