/**
 * A feed's member watch, passed on to other replicas (DESIGN "Watch path"): a replica reads a
 * shard's events from the shard's owner instead of opening a member watch of its own. Every
 * member watch costs the member a send per event, so with two replicas the shards' CPU per put
 * was 0.097 ms against 0.070 ms with one (bench/scaleout.ts b against a).
 *
 * The follower speaks the member's Watch protocol to the owner (ownership/watch-relay.ts): it
 * asks from a member revision, gets the member's responses as the owner's feed read them, and
 * its progress requests are answered after the member answered one the owner asked for then.
 * So the follower's feed sees exactly the stream the member would have sent it.
 *
 * The owner keeps its last responses (RING_BYTES) so that a follower that reconnects resumes
 * where it stopped. It refuses what it cannot serve (history it no longer has, prev_kv while
 * its own watch reads without, another range); a follower too slow to read is dropped. A
 * refused or dropped follower reads the member itself, as before.
 */
import type { MemberEvent } from './decoder.js';
import { watchRelayFollowers } from '../metrics/registry.js';
import { revHeader } from '../etcd/header.js';

/** Responses kept for followers that reconnect, by the bytes of their keys and values. */
const RING_BYTES = 4 << 20;

export interface RelayedResponse {
  header?: { revision: string };
  events: MemberEvent[];
}

/** One follower: where its responses go. */
export interface RelaySink {
  /** Sends a response; false when the follower is too far behind (it is then dropped). */
  send(res: object): boolean;
  /** Ends the follower's stream with a reason (it falls back to the member). */
  end(reason: string): void;
}

/** What the relay needs of its feed (feed.ts). */
export interface RelayedFeed {
  /** The member revision after the last one read whole. */
  readonly nextMemberRev: bigint;
  readonly progressAnswers: number;
  requestProgress(): void;
  /** Whether the feed's member watch is open now, and asks for prev_kv. */
  readonly state: { open: boolean; prevKv: boolean; range: { key: Buffer; range_end: Buffer } };
}

interface Kept {
  first: bigint;
  last: bigint;
  bytes: number;
  res: RelayedResponse;
}

export interface Follower {
  sink: RelaySink;
  /** Events below this member revision are not sent (it read them already). */
  from: bigint;
  /** Progress answers the feed had when the follower's pending request came. */
  progressAfter: number | null;
}

function eventsFrom(res: RelayedResponse, from: bigint): RelayedResponse | null {
  const last = res.events[res.events.length - 1];
  if (!last?.kv || BigInt(last.kv.mod_revision) < from) return null;
  if (BigInt(res.events[0]?.kv?.mod_revision ?? '0') >= from) return res;
  return { header: res.header, events: res.events.filter((e) => e.kv && BigInt(e.kv.mod_revision) >= from) };
}

function sizeOf(res: RelayedResponse): number {
  let n = 64;
  for (const e of res.events) n += 64 + (e.kv ? e.kv.key.length + e.kv.value.length : 0) + (e.prev_kv ? e.prev_kv.key.length + e.prev_kv.value.length : 0);
  return n;
}

export class FeedRelay {
  private ring: Kept[] = [];
  private ringBytes = 0;
  /** Every event at or above this member revision that the feed read is in the ring. */
  private coverFrom = 0n;
  private readonly followers = new Set<Follower>();

  constructor(
    private readonly feed: RelayedFeed,
    private readonly shard: string,
  ) {}

  private counted(): void {
    watchRelayFollowers.set({ shard: this.shard }, this.followers.size);
  }

  get followerCount(): number {
    return this.followers.size;
  }

  /** The feed (re)opened its member watch at `from` without a gap: kept responses stay valid. */
  opened(from: bigint): void {
    if (this.ring.length === 0) this.coverFrom = from;
  }

  /** A response with events the feed read (whole member revisions, in order). */
  push(res: RelayedResponse): void {
    const first = res.events[0]?.kv;
    const lastEv = res.events[res.events.length - 1]?.kv;
    if (!first || !lastEv) return;
    const kept: Kept = { first: BigInt(first.mod_revision), last: BigInt(lastEv.mod_revision), bytes: sizeOf(res), res };
    this.ring.push(kept);
    this.ringBytes += kept.bytes;
    while (this.ringBytes > RING_BYTES && this.ring.length > 1) {
      const gone = this.ring.shift() as Kept;
      this.ringBytes -= gone.bytes;
      this.coverFrom = gone.last + 1n;
    }
    for (const f of this.followers) {
      const out = eventsFrom(res, f.from);
      if (out && !f.sink.send(out)) this.drop(f, 'follower too far behind');
    }
  }

  /** The feed got a progress answer from the member: answer the followers waiting for one. */
  progressAnswered(): void {
    const answers = this.feed.progressAnswers;
    for (const f of this.followers) {
      if (f.progressAfter === null || answers <= f.progressAfter) continue;
      f.progressAfter = null;
      if (!f.sink.send({ header: revHeader(this.feed.nextMemberRev - 1n), created: false, canceled: false, events: [] })) {
        this.drop(f, 'follower too far behind');
      }
    }
  }

  /** The feed stopped, went back, or closed: its followers read the member themselves. */
  reset(reason: string): void {
    this.ring = [];
    this.ringBytes = 0;
    this.coverFrom = this.feed.nextMemberRev;
    for (const f of [...this.followers]) this.drop(f, reason);
  }

  /**
   * A follower asking for every event from member revision `from` on, in `range`, with or
   * without prev_kv: returns its handle, or why it cannot be served.
   */
  follow(sink: RelaySink, want: { from: bigint; prevKv: boolean; range: { key: Buffer; range_end: Buffer } }): Follower | string {
    const st = this.feed.state;
    if (!st.open) return 'the owner is not reading the member';
    if (want.prevKv !== st.prevKv) return `the owner reads ${st.prevKv ? 'with' : 'without'} prev_kv`;
    if (!want.range.key.equals(st.range.key) || !want.range.range_end.equals(st.range.range_end)) return 'another key range';
    if (want.from < this.coverFrom) return `member revision ${want.from} is no longer kept (from ${this.coverFrom})`;
    const f: Follower = { sink, from: want.from, progressAfter: null };
    if (!sink.send({ header: revHeader(0n), created: true, canceled: false, events: [] })) return 'follower too far behind';
    for (const k of this.ring) {
      if (k.last < want.from) continue;
      const out = eventsFrom(k.res, want.from);
      if (out && !sink.send(out)) return 'follower too far behind';
    }
    this.followers.add(f);
    this.counted();
    return f;
  }

  /** The follower asked for a progress answer: it gets one after the member answers the owner. */
  requestProgress(f: Follower): void {
    if (!this.followers.has(f)) return;
    if (f.progressAfter === null) f.progressAfter = this.feed.progressAnswers;
    this.feed.requestProgress();
  }

  unfollow(f: Follower): void {
    this.followers.delete(f);
    this.counted();
  }

  private drop(f: Follower, reason: string): void {
    this.unfollow(f);
    f.sink.end(reason);
  }
}
