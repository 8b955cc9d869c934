/**
 * A block of revisions reserved on the coordinator clock and handed out by one replica without a
 * raft proposal per batch (clock/allocator.ts). Only a replica that owns every shard reserves
 * one: all writes pass through it then, so handing the block out in order keeps the global order.
 *
 * The coordinator's clock then holds the block's END (what is reserved), not the current
 * revision. So the reservation also writes a record naming the holder: any replica that reads
 * the clock and finds the record with the same end asks the holder for the revision it has
 * really handed out (ownership/forward.ts `Current`); if the holder cannot answer, the reader
 * ends the block by allocating past it, after fencing every shard to its end (block-end.ts: the
 * holder's later writes from it then fail their shard fence).
 *
 * Record value: the block's end (8 bytes big-endian) then the holder's peer URL (UTF-8).
 */
import { decodeClock, encodeClock } from '../shard/envelope.js';
import { sysKey } from '../shard/keyspace.js';

export const CLOCK_BLOCK_KEY = sysKey('clock-block');

export interface BlockRecord {
  end: bigint;
  holder: string;
}

export function encodeBlockRecord(r: BlockRecord): Buffer {
  return Buffer.concat([encodeClock(r.end), Buffer.from(r.holder, 'utf8')]);
}

/** Null for a missing or malformed record (then nobody holds a block: the clock is current). */
export function decodeBlockRecord(raw: Buffer | undefined): BlockRecord | null {
  if (!raw || raw.length <= 8) return null;
  return { end: decodeClock(raw.subarray(0, 8)), holder: raw.subarray(8).toString('utf8') };
}

/** The revisions base+1..end, handed out in order from `next`. */
export class RevisionBlock {
  /** The highest revision handed out from this block (base while none). */
  issued: bigint;
  private next: bigint;

  constructor(
    /** The coordinator's clock before the reservation: every revision anyone had before. */
    readonly base: bigint,
    /** The coordinator's clock after it: the block's last revision. */
    readonly end: bigint,
    /**
     * The end of the first block of this replica's unbroken run of blocks (each extended the
     * one before it, nobody allocated in between): a clock read finding any value from `since`
     * to `end` proves nobody else had allocated at that moment.
     */
    readonly since: bigint = end,
  ) {
    this.next = base + 1n;
    this.issued = base;
  }

  /**
   * A clock value read on the coordinator proves nobody else allocated since this run of blocks
   * began when it lies from `since` to `end` (a read may predate an extension).
   */
  vouchedBy(clock: bigint): boolean {
    return clock >= this.since && clock <= this.end;
  }

  room(): bigint {
    return this.end - this.next + 1n;
  }

  /** The first of n consecutive revisions (the caller checked room()). */
  take(n: bigint): bigint {
    const first = this.next;
    this.next += n;
    this.issued = this.next - 1n;
    return first;
  }

  /**
   * Later revisions must be above `rev` (a watermark vouched for, a shard clock a fence raised):
   * the revisions skipped belong to no write. Counts as issued, since readers may stand there.
   */
  skipPast(rev: bigint): void {
    if (rev < this.next) return;
    const to = rev < this.end ? rev : this.end;
    this.next = to + 1n;
    if (to > this.issued) this.issued = to;
  }
}
