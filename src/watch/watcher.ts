/**
 * One client watcher: a key range, filters and options from its WatchCreateRequest, and where
 * it stands: `nextRev` is the lowest revision it has not been sent. A live watcher receives
 * released events as they come; one that is behind (a past start revision, or a slow client)
 * is fed from history until it reaches the merged stream.
 */
import type { MetaEvent } from './event.js';
import { EventType } from './event.js';

export interface WatcherSpec {
  id: bigint;
  key: Buffer;
  /** null: the key alone; empty: every key from `key` on; else [key, end). */
  end: Buffer | null;
  prevKv: boolean;
  noPut: boolean;
  noDelete: boolean;
  progressNotify: boolean;
  fragment: boolean;
}

export class Watcher {
  live = false;
  canceled = false;
  /** Events queued for it in its stream and not yet written. */
  pending = 0;
  /** Their bytes (charged to the memory budget). */
  pendingBytes = 0;
  /** It was sent events since the last progress tick (etcd skips the notification then). */
  sentSinceTick = false;
  /**
   * Live with a start revision above the next one released: the hub checks `nextRev` then only
   * (takesLive()). Set by the hub.
   */
  startsLater = false;
  /**
   * Where the hub put its events in the batch being matched: the batch's number and the place
   * in the hub's list (small integers: writing them into a long-lived watcher costs the garbage
   * collector nothing, where an array would be remembered).
   */
  batchSeq = 0;
  batchSlot = 0;
  /** The spec's filters, kept on the watcher itself: takesLive() reads no other object. */
  private readonly skipPut: boolean;
  private readonly skipDelete: boolean;

  constructor(
    readonly spec: WatcherSpec,
    public nextRev: bigint,
  ) {
    this.skipPut = spec.noPut;
    this.skipDelete = spec.noDelete;
  }

  get id(): bigint {
    return this.spec.id;
  }

  covers(key: Buffer): boolean {
    const s = this.spec;
    if (s.end === null) return key.equals(s.key);
    if (Buffer.compare(key, s.key) < 0) return false;
    return s.end.length === 0 || Buffer.compare(key, s.end) < 0;
  }

  wants(e: MetaEvent): boolean {
    return this.takes(e) && this.covers(e.key);
  }

  /** wants() for an event whose key is known to be in its range (found by the hub's index). */
  takes(e: MetaEvent): boolean {
    if (e.rev < this.nextRev) return false;
    return !(e.type === EventType.PUT ? this.spec.noPut : this.spec.noDelete);
  }

  /** takes() for a live watcher: every released event is at or above `nextRev` unless it starts later. */
  takesLive(e: MetaEvent): boolean {
    if (this.startsLater && e.rev < this.nextRev) return false;
    return e.type === EventType.PUT ? !this.skipPut : !this.skipDelete;
  }

  select(events: MetaEvent[]): MetaEvent[] {
    const out: MetaEvent[] = [];
    for (const e of events) if (this.wants(e)) out.push(e);
    return out;
  }
}
