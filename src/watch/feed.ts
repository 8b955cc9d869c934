/**
 * One member watch (DESIGN "Watch path"): the shard's whole user keyspace plus its system keys
 * (the clock), decoded into meta events; with prev_kv unless the read cache supplies previous
 * values (memberPrevKv: each prev_kv costs the member a read). A stream that breaks
 * is reopened from the member revision after the last one read, on the next endpoint, so
 * nothing is lost or repeated; consumers simply wait meanwhile. It also remembers where each
 * response's events start (member revision, highest meta revision), so that events not yet
 * released can be dropped and read again later (rewind, watch/held-events.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { wire64 } from '../etcd/types.js';
import { memberProgressRequests, memberWatchPrevKv, upstreamWatchRestarts, watchRelayed } from '../metrics/registry.js';
import type { Keyspace } from '../shard/keyspace.js';
import { SYS_PREFIX, prefixEnd } from '../shard/keyspace.js';
import type { Shard } from '../shard/shard.js';
import type { Decoded, MemberEvent } from './decoder.js';
import { ShardDecoder } from './decoder.js';
import { FeedRelay } from './relay.js';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2_000;
const PROGRESS_RETRY_MS = 500;
const PROGRESS_RETRY_MAX_MS = 2_000;
/** After the owner refused or dropped this feed, it reads the member for at least this long. */
const RELAY_RETRY_MS = 15_000;
/** A progress request the owner's relay leaves unanswered this long: read the member instead. */
const OWNER_STALL_MS = 3_000;

interface MemberWatchResponse {
  header?: { revision: string };
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  events: MemberEvent[];
}

export interface FeedOptions {
  /** A progress answer arrived (requestProgress). */
  onProgress?: () => void;
  shard: Shard;
  ks: Keyspace;
  log: Logger;
  /** First member revision to read. */
  fromMemberRev: bigint;
  /** The shard clock just before fromMemberRev. */
  watermark: bigint;
  /** Meta events at or below this revision are dropped. */
  floor?: bigint;
  onDecoded(d: Decoded): void;
  /** The member compacted history the feed still needed: it cannot go on. */
  onLost(compactRevision: bigint): void;
  /**
   * Asked each time the member watch is opened: whether it asks the member for prev_kv (else
   * events are marked prevUnknown). Always, when not given.
   */
  memberPrevKv?: () => boolean;
  /**
   * The shard's owner, when it is another replica: its copy of the member's events
   * (watch/relay.ts), instead of a member watch of this feed's own. Null: read the member.
   */
  owner?: () => OwnerSource | null;
}

/** A stream of the member's events, from the member itself or from the shard's owner. */
export interface EventSource {
  stream: grpc.ClientDuplexStream<object, unknown>;
  endpoint: string;
}

/** The way to a shard's owner: opens its relay (null: not now, read the member). */
export interface OwnerSource {
  open(): EventSource | null;
}

/** The member range a feed watches: user keys and the proxy's system keys, nothing else. */
export function feedRange(ks: Keyspace): { key: Buffer; range_end: Buffer } {
  return { key: ks.namespace.length ? ks.namespace : Buffer.from([0]), range_end: prefixEnd(SYS_PREFIX) };
}

/** A decoded response: its first member revision and its highest meta event revision. */
interface Checkpoint {
  memberRev: bigint;
  top: bigint;
}

export class ShardFeed {
  private decoder: ShardDecoder;
  private next: bigint;
  private checkpoints: Checkpoint[] = [];
  private checkpointHead = 0;
  private call: grpc.ClientDuplexStream<object, unknown> | null = null;
  private closed = false;
  private paused = false;
  private backoff = BACKOFF_MIN_MS;
  private timer: NodeJS.Timeout | null = null;
  private answers = 0;
  /** performance.now() at the last progress answer (-Infinity before the first). */
  private answeredAt = -Infinity;
  private progressRetry: NodeJS.Timeout | null = null;
  private progressDelay = PROGRESS_RETRY_MS;
  /** The stream the last progress request went to. */
  private progressSentOn: grpc.ClientDuplexStream<object, unknown> | null = null;
  private progressSentAt = 0;
  /** The stream open now reads the owner's relay, not the member. */
  private viaOwner = false;
  /** Until then the member is read even when an owner could relay. */
  private ownerRetryAt = 0;
  /** While the owner's relay is read: stops reading it (and reads the member). */
  private leaveOwner: ((why: string) => void) | null = null;
  private progressPendingSince = 0;
  /** This feed's member events, passed on to other replicas that follow it. */
  readonly relay: FeedRelay;

  constructor(private readonly o: FeedOptions) {
    this.decoder = new ShardDecoder(o.ks, o.watermark, o.floor ?? 0n, o.shard.index);
    this.next = o.fromMemberRev;
    const feed = this;
    this.relay = new FeedRelay({
      get nextMemberRev() {
        return feed.next;
      },
      get progressAnswers() {
        return feed.answers;
      },
      requestProgress: () => this.requestProgress(),
      get state() {
        return { open: feed.call !== null && !feed.viaOwner, prevKv: feed.decoder.prevFromMember, range: feedRange(feed.o.ks) };
      },
    }, o.shard.name);
  }

  get watermark(): bigint {
    return this.decoder.watermark;
  }

  /** The last member revision read whole. */
  get readThrough(): bigint {
    return this.next - 1n;
  }

  /** Progress answers received from the member (each says the stream is current). */
  get progressAnswers(): number {
    return this.answers;
  }

  /** The member (or the owner's relay) answered a progress request within the last `ms`. */
  answeredWithin(ms: number): boolean {
    return performance.now() - this.answeredAt < ms;
  }

  /**
   * Asks the member for a progress answer (etcd's WatchProgressRequest): proof it is there.
   * Asked again until one arrives: a request sent while the stream was being reopened (a member
   * restarting), or that etcd 3.4 dropped because its watcher was not synced yet, would
   * otherwise never be answered, and a vouch waiting for it would wait forever.
   *
   * At most one request per PROGRESS_RETRY_MS per stream (any answer after a vouch serves it),
   * and the re-sends back off to PROGRESS_RETRY_MAX_MS: a stopped member never reads them, and
   * grpc-js keeps every message written to such a stream until it is closed (each pinning an
   * 8 KiB pool slab). Written once per vouch, that was ~18 messages/s: 8.8 MiB after 60 s of a
   * stopped member, 30 MiB after 90 s (heap snapshot).
   */
  requestProgress(): void {
    if (this.progressRetry) {
      // Pending: a new stream (reopened since) gets its request now; the same stream at most
      // one per PROGRESS_RETRY_MS.
      if (this.call && (this.progressSentOn !== this.call || Date.now() - this.progressSentAt >= PROGRESS_RETRY_MS)) this.sendProgress();
      return;
    }
    this.progressDelay = PROGRESS_RETRY_MS;
    this.progressPendingSince = Date.now();
    this.sendProgress();
    this.scheduleProgressRetry();
  }

  private sendProgress(): void {
    this.progressSentOn = this.call;
    this.progressSentAt = Date.now();
    if (!this.call) return;
    this.call.write({ progress_request: {} });
    if (!this.viaOwner) memberProgressRequests.inc({ shard: this.o.shard.name });
  }

  private scheduleProgressRetry(): void {
    this.progressRetry = setTimeout(() => {
      // An owner that stopped answering (stopped, overloaded) must not hold this replica's
      // stream back: the member answers for itself.
      if (this.leaveOwner && Date.now() - this.progressPendingSince >= OWNER_STALL_MS) this.leaveOwner('the owner left a progress request unanswered');
      this.sendProgress();
      this.progressDelay = Math.min(this.progressDelay * 2, PROGRESS_RETRY_MAX_MS);
      this.scheduleProgressRetry();
    }, this.progressDelay);
    this.progressRetry.unref();
  }

  private progressAnswered(): void {
    if (this.progressRetry) clearTimeout(this.progressRetry);
    this.progressRetry = null;
  }

  /**
   * Moves the feed to the source it should read now (cheap when it reads the right one): to the
   * owner's relay when an owner elsewhere could serve it (not refused lately, nobody follows
   * this feed), back to the member when this replica became the owner.
   */
  chooseSource(): void {
    if (!this.call || this.closed) return;
    const owner = this.o.owner?.() ?? null;
    if (this.viaOwner ? owner === null : owner !== null && Date.now() >= this.ownerRetryAt && this.relay.followerCount === 0) this.reopen();
  }

  /** The owner's relay when it may serve this feed now, else null (the member is read). */
  private openOwner(): EventSource | null {
    if (Date.now() < this.ownerRetryAt || this.relay.followerCount > 0) return null;
    return this.o.owner?.()?.open() ?? null;
  }

  start(): void {
    if (this.closed) return;
    const relayed = this.openOwner();
    const { stream, endpoint } = relayed ?? this.o.shard.upstream.openWatch();
    const viaOwner = relayed !== null;
    this.viaOwner = viaOwner;
    watchRelayed.set({ shard: this.o.shard.name }, viaOwner ? 1 : 0);
    if (viaOwner) this.relay.reset('this replica follows the owner');
    this.call = stream;
    let alive = true;
    const restart = (why: string) => {
      if (!alive) return;
      alive = false;
      if (this.leaveOwner === restart) this.leaveOwner = null;
      stream.removeAllListeners();
      stream.on('error', () => undefined);
      stream.cancel();
      if (this.closed) return;
      if (viaOwner) {
        // The owner refused or went away: read the member, at once, for a while.
        this.ownerRetryAt = Date.now() + RELAY_RETRY_MS;
        if (this.call === stream) this.call = null;
        this.o.log.info({ shard: this.o.shard.name, owner: endpoint, from: this.next.toString(), why }, 'following the owner stopped; reading the member');
        this.timer = setTimeout(() => this.start(), 0);
        return;
      }
      upstreamWatchRestarts.inc({ shard: this.o.shard.name });
      this.o.log.warn({ shard: this.o.shard.name, endpoint, from: this.next.toString(), why }, 'member watch restarting');
      this.timer = setTimeout(() => this.start(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    };
    stream.on('data', (raw: unknown) => {
      const res = raw as MemberWatchResponse;
      if (res.canceled) {
        const compact = BigInt(res.compact_revision || '0');
        if (compact > 0n && !viaOwner) {
          alive = false;
          stream.removeAllListeners();
          stream.on('error', () => undefined);
          stream.cancel();
          this.o.onLost(compact);
          return;
        }
        restart(res.cancel_reason || 'canceled by the member');
        return;
      }
      if (res.created) this.backoff = BACKOFF_MIN_MS;
      if (!res.events.length) {
        if (res.created || !res.header) return;
        // A progress answer: the member is there. (etcd 3.4 sends it on a control channel that
        // may overtake events, so its header revision says nothing about what was read.)
        this.answers++;
        this.answeredAt = performance.now();
        this.progressAnswered();
        this.o.onProgress?.();
        if (!viaOwner) this.relay.progressAnswered();
        return;
      }
      const d = this.decoder.decode(res.events);
      if (d.events.length) {
        const first = res.events.find((e) => e.kv)?.kv;
        if (first) this.checkpoints.push({ memberRev: BigInt(first.mod_revision), top: d.events[d.events.length - 1].rev });
      }
      if (d.memberRev >= this.next) this.next = d.memberRev + 1n;
      if (d.orphans) this.o.log.warn({ shard: this.o.shard.name, orphans: d.orphans }, 'member events the proxy did not write ignored');
      if (!viaOwner) this.relay.push(res);
      this.o.onDecoded(d);
    });
    stream.on('error', (err: Error) => restart(err.message));
    stream.on('end', () => restart('stream ended'));
    this.leaveOwner = viaOwner ? restart : null;
    const range = feedRange(this.o.ks);
    const withPrev = this.o.memberPrevKv?.() ?? true;
    this.decoder.prevFromMember = withPrev;
    memberWatchPrevKv.set({ shard: this.o.shard.name }, withPrev ? 1 : 0);
    stream.write({ create_request: { ...range, start_revision: wire64(this.next), prev_kv: withPrev } });
    if (!viaOwner) this.relay.opened(this.next);
    if (this.paused) stream.pause();
    if (this.progressRetry) {
      // A progress request is pending: ask the new stream now, and retry it soon.
      clearTimeout(this.progressRetry);
      this.progressPendingSince = Date.now();
      this.progressDelay = PROGRESS_RETRY_MS;
      this.sendProgress();
      this.scheduleProgressRetry();
    }
  }

  /** Every event at or below `rev` was released: their checkpoints are no longer needed. */
  released(rev: bigint): void {
    const c = this.checkpoints;
    while (this.checkpointHead < c.length && c[this.checkpointHead].top <= rev) this.checkpointHead++;
    if (this.checkpointHead > 256 && this.checkpointHead * 2 > c.length) {
      this.checkpoints = c.slice(this.checkpointHead);
      this.checkpointHead = 0;
    }
  }

  /**
   * Forgets everything read above meta revision `rev` and stops: start() reads it again from
   * the first member revision holding an event above `rev` (events at or below it are skipped,
   * and the watermark starts at `rev`). The member keeps that history unless it is compacted,
   * in which case onLost reports it as for any feed.
   */
  rewind(rev: bigint): void {
    this.released(rev);
    const from = this.checkpointHead < this.checkpoints.length ? this.checkpoints[this.checkpointHead].memberRev : this.next;
    this.stop();
    this.checkpoints = [];
    this.checkpointHead = 0;
    this.next = from;
    this.decoder = new ShardDecoder(this.o.ks, rev, rev, this.o.shard.index);
  }

  /**
   * Reopens a running member watch where it stands (from the member revision after the last one
   * read whole), so that it asks for prev_kv as memberPrevKv now says. A stopped feed is left
   * stopped: it asks anew when started.
   */
  reopen(): void {
    if (!this.call || this.closed) return;
    this.stop();
    this.start();
  }

  /** Stops reading until start(); reading resumes where it stopped. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.relay.reset("the owner's member watch stopped");
    this.leaveOwner = null;
    const c = this.call;
    this.call = null;
    if (c) {
      c.removeAllListeners();
      c.on('error', () => undefined);
      c.cancel();
    }
  }

  /** Stops reading (flow control pushes back on the member) until resume(). */
  pause(): void {
    this.paused = true;
    this.call?.pause();
  }

  resume(): void {
    this.paused = false;
    this.call?.resume();
  }

  close(): void {
    this.closed = true;
    this.progressAnswered();
    this.stop();
  }
}
