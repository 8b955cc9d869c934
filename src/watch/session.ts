/**
 * One client Watch stream: its watchers, their create/cancel/progress requests, and one FIFO of
 * responses written with the client's flow control. Everything a stream sends goes through that
 * FIFO, so a progress response or a header revision never overtakes an event before it.
 *
 * A watcher whose client does not keep up (more than `maxPendingEvents` queued and unsent, or
 * more than a few KiB while the memory budget is spent) has its queued events dropped and is
 * fed again from history or the members once the stream drains, as etcd moves slow watchers to
 * its unsynced set: memory stays bounded and other watchers are not stalled. Queued events are
 * charged to the budget (`watch`) until they are handed to the client stream.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { MemoryBudget } from '../budget/memory-budget.js';
import type { ResponseHeader } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import type { WatchCluster } from './cluster-view.js';
import { watchEventsSent, watchResyncs } from '../metrics/registry.js';
import type { MetaEvent, WireEvent } from './event.js';
import { wireEvent } from './event.js';
import type { WatchHub, WatchSink } from './hub.js';
import { Replay, ReplayLost } from './replay.js';
import type { ReplaySlots } from './replay-slots.js';
import type { WatcherSpec } from './watcher.js';
import { Watcher } from './watcher.js';

export interface WatchResponseMsg {
  header: ResponseHeader;
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  fragment: boolean;
  events: WireEvent[];
}

export interface SessionDeps {
  hub: WatchHub;
  store: WatchCluster;
  log: Logger;
  header: (rev: bigint) => ResponseHeader;
  maxPendingEvents: number;
  /** Responses of fragmenting watchers are split below this size (etcd: --max-request-bytes). */
  maxResponseBytes: number;
  budget: MemoryBudget;
  /** Member replays at once, shared by every stream. */
  replaySlots: ReplaySlots;
}

/** A replay that failed for another reason than compaction is tried again after this (ms). */
const REPLAY_RETRY_MS = 1000;

interface Outgoing {
  msg: WatchResponseMsg;
  watcher: Watcher | null;
  events: number;
  /** Bytes of its events, charged to the budget while queued. */
  bytes: number;
}

/** While the budget is spent, a watcher with more than this queued is resynced. */
export const SLOW_WATCHER_BYTES = 4096;

export const ERR_RANGE_EMPTY = 'mvcc: watcher range is empty';
export const ERR_DUPLICATE_ID = 'mvcc: duplicate watch ID provided on the WatchStream';

export class WatchSession implements WatchSink {
  private readonly watchers = new Map<bigint, Watcher>();
  private readonly replays = new Map<Watcher, Replay>();
  private nextAutoId = 0n;
  /** The highest header revision sent on this stream. */
  private headerFloor = 0n;
  private queue: Outgoing[] = [];
  private blocked = false;
  private closed = false;
  /** Catching-up watchers waiting until their own queued events were written. */
  private ownDrainWaiters = new Map<Watcher, Array<() => void>>();
  private catchingUp = 0;
  private liveWaiters: Array<() => void> = [];

  constructor(
    private readonly call: grpc.ServerDuplexStream<unknown, unknown>,
    private readonly d: SessionDeps,
  ) {
    d.hub.register(this);
    call.on('drain', () => {
      this.blocked = false;
      this.pump();
    });
  }

  /**
   * Bytes of history a catching-up watcher takes at a time (then waits until they were written):
   * a 16th of the budget, 64 KiB to 4 MiB, so that watchers catching up together stay near it.
   */
  private get catchUpBytes(): number {
    return Math.max(64 * 1024, Math.min(4 * 1024 * 1024, Math.floor(this.d.budget.limit / 16)));
  }

  // ----------------------------------------------------------------------------- requests

  /** A create request refused by auth: etcd answers created+canceled with the reason, watch id -1. */
  refuse(reason: string): void {
    if (this.closed) return;
    this.send(this.response(this.d.hub.released, -1n, { created: true, canceled: true, cancel_reason: reason }));
  }

  /** The revision a watch created now without a start revision starts after (hub.currentRevision()). */
  currentRevision(): Promise<bigint> {
    return this.d.hub.currentRevision();
  }

  /**
   * startRev 0: after what was released. `current`, when the caller read it (currentRevision()),
   * is the revision the created response reports, as etcd reports its current revision.
   */
  create(spec: WatcherSpec, startRev: bigint, current: bigint | null = null): void {
    if (this.closed) return;
    const hub = this.d.hub;
    const released = hub.released;
    const reported = current !== null && current > released ? current : released;
    if (spec.end !== null && spec.end.length > 0 && Buffer.compare(spec.key, spec.end) >= 0) {
      this.send(this.response(reported, -1n, { created: true, canceled: true, cancel_reason: ERR_RANGE_EMPTY }));
      return;
    }
    let id = spec.id;
    if (id === 0n) {
      while (this.watchers.has(this.nextAutoId)) this.nextAutoId++;
      id = this.nextAutoId++;
    } else if (this.watchers.has(id)) {
      this.send(this.response(reported, -1n, { created: true, canceled: true, cancel_reason: ERR_DUPLICATE_ID }));
      return;
    }
    const w = new Watcher({ ...spec, id }, startRev === 0n ? released + 1n : startRev);
    this.watchers.set(id, w);
    this.send(this.response(reported, id, { created: true }));
    if (w.nextRev > released) hub.addLive(w, this);
    else void this.catchUp(w);
  }

  cancel(id: bigint): void {
    const w = this.watchers.get(id);
    if (!w) return;
    this.drop(w);
    this.send(this.response(this.d.hub.released, id, { canceled: true }));
  }

  /** RequestProgress: answered (watch_id -1) once every event up to the revision reported was sent. */
  async requestProgress(): Promise<void> {
    try {
      await this.d.hub.caughtUp();
      while (this.catchingUp > 0 && !this.closed) await new Promise<void>((r) => this.liveWaiters.push(r));
      if (!this.closed) this.send(this.response(this.d.hub.released, -1n, {}));
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message }, 'watch progress request not answered');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watchers.values()]) this.drop(w);
    this.d.hub.unregister(this);
    this.releaseQueued(this.queue);
    this.queue = [];
    for (const rs of this.ownDrainWaiters.values()) for (const r of rs) r();
    this.ownDrainWaiters.clear();
    for (const r of this.liveWaiters.splice(0)) r();
  }

  // ----------------------------------------------------------------------------- WatchSink

  deliver(w: Watcher, events: MetaEvent[], _rev: bigint): void {
    this.sendEvents(w, events);
    if (w.pending > this.d.maxPendingEvents) this.fallBehind(w, 'events');
    else if (w.pendingBytes > SLOW_WATCHER_BYTES && this.d.budget.over) this.fallBehind(w, 'bytes');
  }

  progressTick(_rev: bigint): void {
    const rev = this.d.hub.released;
    for (const w of this.watchers.values()) {
      if (!w.spec.progressNotify) continue;
      if (w.live && w.pending === 0 && !w.sentSinceTick) this.send(this.response(rev, w.id, {}));
      w.sentSinceTick = false;
    }
  }

  reset(): void {
    void this.d.store.refreshCompacted().then(
      (c) => this.cancelAllCompacted(c),
      () => this.cancelAllCompacted(this.d.store.compactedRevision),
    );
  }

  // ----------------------------------------------------------------------------- catch-up

  private async catchUp(w: Watcher): Promise<void> {
    this.catchingUp++;
    try {
      // A resynced watcher's client is not reading: nothing more is queued for it until it does.
      await this.sent(w);
      const compacted = await this.d.store.refreshCompacted().catch(() => this.d.store.compactedRevision);
      while (!w.canceled && !this.closed) {
        const hub = this.d.hub;
        const from = w.nextRev;
        const released = hub.released;
        if (from > released) {
          hub.addLive(w, this);
          return;
        }
        if (from < compacted) {
          this.sendCompacted(w, compacted);
          return;
        }
        const held = hub.history.since(from, this.d.maxPendingEvents, this.catchUpBytes);
        if (held) {
          this.sendEvents(w, w.select(held.events));
          if (held.complete) {
            // No await since history.since(): nothing was released in between.
            w.nextRev = released + 1n;
            hub.addLive(w, this);
            return;
          }
          w.nextRev = held.events[held.events.length - 1].rev + 1n;
          await this.sent(w);
          continue;
        }
        if (!(await this.replayFromMembers(w, from, released))) return;
        await this.sent(w);
      }
    } catch (err) {
      this.d.log.warn({ watchId: w.id.toString(), err: (err as Error).message }, 'watch catch-up failed; canceling the watcher');
      if (!w.canceled && !this.closed) {
        this.drop(w);
        this.send(this.response(this.d.hub.released, w.id, { canceled: true, cancel_reason: (err as Error).message }));
      }
    } finally {
      this.catchingUp--;
      if (this.catchingUp === 0) for (const r of this.liveWaiters.splice(0)) r();
    }
  }

  /**
   * Sends [from, to] from the members; false when the watcher was canceled meanwhile. A replay
   * that fails for another reason than compaction (a member slow to answer) is tried again from
   * the first revision not sent: the watcher is never canceled for it.
   */
  private async replayFromMembers(w: Watcher, from: bigint, to: bigint): Promise<boolean> {
    const s = w.spec;
    const shards = this.d.store.router.shardsForRange(s.key, s.end === null ? Buffer.alloc(0) : s.end.length ? s.end : Buffer.from([0]));
    let sentUpTo = from - 1n;
    const replay = new Replay(this.d.store, this.d.log, shards, from, to, (events) => {
      // Whole revisions come together (the replay's merger releases every event up to one).
      sentUpTo = events[events.length - 1].rev;
      const sel = w.select(events);
      if (sel.length) this.sendEvents(w, sel);
      if (this.blocked) replay.pause();
    });
    this.replays.set(w, replay);
    await this.d.replaySlots.acquire();
    try {
      if (w.canceled || this.closed) return false;
      await replay.run();
    } catch (err) {
      if (err instanceof ReplayLost) {
        this.sendCompacted(w, await this.d.store.refreshCompacted().catch(() => err.compactRevision));
        return false;
      }
      this.d.log.warn({ watchId: w.id.toString(), err: (err as Error).message }, 'watch replay from the members failed; trying again');
      replay.close();
      w.nextRev = sentUpTo + 1n;
      await new Promise((r) => setTimeout(r, REPLAY_RETRY_MS));
      return !w.canceled && !this.closed;
    } finally {
      this.d.replaySlots.release();
      this.replays.delete(w);
    }
    if (w.canceled || this.closed) return false;
    w.nextRev = to + 1n;
    return true;
  }

  // ----------------------------------------------------------------------------- sending

  private sendEvents(w: Watcher, events: MetaEvent[]): void {
    if (!events.length || this.closed) return;
    const rev = this.d.hub.released;
    const wire = events.map((e) => wireEvent(e, w.spec.prevKv));
    w.sentSinceTick = true;
    if (!w.spec.fragment) {
      // Many events (a shard's backlog released at once, a catch-up) go in several responses,
      // each closed at a revision boundary once it reached the split size, as etcd sends an
      // unsynced watcher's backlog: one encoded response (and grpc-js's framed copy of it)
      // per watcher of the whole backlog would be held in the HTTP/2 stream beyond the budget.
      let start = 0;
      let size = 0;
      for (let i = 0; i < events.length; i++) {
        if (i > start && size >= this.d.maxResponseBytes && events[i].rev !== events[i - 1].rev) {
          this.enqueue(this.response(rev, w.id, { events: wire.slice(start, i) }), w, i - start, size);
          start = i;
          size = 0;
        }
        size += events[i].size;
      }
      this.enqueue(this.response(rev, w.id, { events: start ? wire.slice(start) : wire }), w, events.length - start, size);
      return;
    }
    // etcd's split: a piece is closed once it holds two or more events and has reached the
    // request size limit; the next event starts the next piece.
    let start = 0;
    let size = 0;
    for (let i = 0; i < events.length; i++) {
      if (i - start >= 2 && size >= this.d.maxResponseBytes) {
        this.enqueue(this.response(rev, w.id, { events: wire.slice(start, i), fragment: true }), w, i - start, size);
        start = i;
        size = 0;
      }
      size += events[i].size;
    }
    this.enqueue(this.response(rev, w.id, { events: wire.slice(start) }), w, events.length - start, sizeOf(events, start, events.length));
  }

  private sendCompacted(w: Watcher, compacted: bigint): void {
    this.drop(w);
    // etcd's compaction notice carries no header revision.
    this.send(this.response(0n, w.id, { canceled: true, compact_revision: wire64(compacted) }));
  }

  private cancelAllCompacted(compacted: bigint): void {
    for (const w of [...this.watchers.values()]) this.sendCompacted(w, compacted);
  }

  /**
   * Its queued events are dropped; it is fed again from history or the members (from the first
   * one) once the stream drains. `reason`: too many events, or too many bytes with the budget
   * spent.
   */
  private fallBehind(w: Watcher, reason: 'events' | 'bytes'): void {
    let first: bigint | null = null;
    const dropped: Outgoing[] = [];
    this.queue = this.queue.filter((o) => {
      if (o.watcher !== w || !o.events) return true;
      const rev = BigInt(o.msg.events[0].kv.mod_revision);
      if (first === null || rev < first) first = rev;
      dropped.push(o);
      return false;
    });
    this.releaseQueued(dropped);
    w.pending = 0;
    w.pendingBytes = 0;
    this.d.hub.removeLive(w);
    if (first !== null) w.nextRev = first;
    watchResyncs.inc({ reason });
    void this.catchUp(w);
  }

  /** Their bytes go back to the budget (they will not be sent). */
  private releaseQueued(out: Outgoing[]): void {
    let bytes = 0;
    for (const o of out) bytes += o.bytes;
    if (bytes) this.d.budget.release('watch', bytes);
  }

  private drop(w: Watcher): void {
    w.canceled = true;
    this.d.hub.removeLive(w);
    this.replays.get(w)?.close();
    this.watchers.delete(w.id);
    if (w.pending) {
      this.releaseQueued(this.queue.filter((o) => o.watcher === w));
      this.queue = this.queue.filter((o) => o.watcher !== w);
    }
    w.pending = 0;
    w.pendingBytes = 0;
    for (const r of this.ownDrainWaiters.get(w) ?? []) r();
    this.ownDrainWaiters.delete(w);
  }

  private response(rev: bigint, id: bigint, fields: Partial<WatchResponseMsg>): WatchResponseMsg {
    // A created response reports the current revision, which the merged stream may not have
    // released yet: later responses never report less (0 stays 0: a compacted watch's cancel).
    if (rev !== 0n) {
      if (rev < this.headerFloor) rev = this.headerFloor;
      else this.headerFloor = rev;
    }
    return {
      header: this.d.header(rev),
      watch_id: wire64(id),
      created: false,
      canceled: false,
      compact_revision: wire64(0n),
      cancel_reason: '',
      fragment: false,
      events: [],
      ...fields,
    };
  }

  private send(msg: WatchResponseMsg): void {
    this.enqueue(msg, null, 0, 0);
  }

  private enqueue(msg: WatchResponseMsg, watcher: Watcher | null, events: number, bytes: number): void {
    if (this.closed) return;
    if (watcher) {
      watcher.pending += events;
      watcher.pendingBytes += bytes;
    }
    if (bytes) this.d.budget.charge('watch', bytes);
    this.queue.push({ msg, watcher, events, bytes });
    this.pump();
  }

  private pump(): void {
    while (!this.blocked && this.queue.length && !this.closed) {
      const o = this.queue.shift() as Outgoing;
      if (o.watcher) {
        o.watcher.pending -= o.events;
        o.watcher.pendingBytes -= o.bytes;
      }
      if (o.bytes) this.d.budget.release('watch', o.bytes);
      if (o.events) watchEventsSent.inc(o.events);
      try {
        if (!this.call.write(o.msg)) this.blocked = true;
      } catch (err) {
        this.d.log.debug({ err: (err as Error).message }, 'watch stream write failed');
        this.close();
        return;
      }
    }
    if (!this.blocked) {
      for (const [w, rs] of this.ownDrainWaiters) {
        if (w.pending > 0) continue;
        this.ownDrainWaiters.delete(w);
        for (const r of rs) r();
      }
    }
    if (!this.blocked) for (const r of this.replays.values()) r.resume();
  }

  /**
   * Resolves once everything queued for `w` was handed to the client stream and the stream
   * takes more: a catching-up watcher sends its next part then, whatever its siblings queue
   * (waiting for the whole stream to drain could starve it behind busy live watchers).
   */
  private sent(w: Watcher): Promise<void> {
    if (this.closed || (!this.blocked && w.pending === 0)) return Promise.resolve();
    return new Promise((r) => {
      const rs = this.ownDrainWaiters.get(w);
      if (rs) rs.push(r);
      else this.ownDrainWaiters.set(w, [r]);
    });
  }
}

function sizeOf(events: MetaEvent[], from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n += events[i].size;
  return n;
}
