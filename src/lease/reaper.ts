/**
 * Expiry handling: one proxy replica at a time (the holder of an election key on the
 * coordinator, attached to that replica's own coordinator lease) notices dead leases and reaps
 * their keys on every shard. If the replica dies, its coordinator lease expires, the key goes
 * and another replica takes over; a replica that closes cleanly revokes its lease at once.
 *
 * Noticing: a coordinator watch over the markers reports each marker deleted (its lease expired
 * or was revoked, with the incarnation that died); the reaper then reads the live meta leases
 * (one coordinator range over the markers) and reaps the dead ones. It also reaps the ones that
 * were live at its previous read and are not now. While the watch is down it reads every poll,
 * as it did before there was a watch, and at least every RECHECK_MS anyway. A periodic reconcile
 * lists every shard's lease index and reaps whatever is attached to a dead lease: it covers a
 * new reaper (leases that died while nobody reaped), shards that were down, and puts that
 * raced with a revoke. Reaps that fail (a shard down) are retried at every poll.
 */
import type { Logger } from 'pino';
import type { RequestOp } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import type { LeaseCluster } from './cluster-view.js';
import { leaseReaps } from '../metrics/registry.js';
import { sysKey } from '../shard/keyspace.js';
import type { Shard } from '../shard/shard.js';
import { cmp, rangeOp } from '../upstream/ops.js';
import { isDead } from './directory.js';
import type { LeaseView } from './directory.js';
import { INDEX_END, INDEX_PREFIX, MARKER_END, MARKER_PREFIX, markerId } from './keys.js';
import { entriesOf, reapOnOwner } from './reap.js';
import { ChangeWatch, type ChangeEvent } from '../upstream/change-watch.js';

export const REAPER_KEY = sysKey('lease-reaper');

export interface ReaperOptions {
  /** How often the live leases are read (etcd's own lessor checks expiry every 500 ms). */
  pollMs: number;
  /** How often every shard's lease index is checked against the live leases. */
  reconcileMs: number;
  /** TTL of the replica's election lease: how soon another replica takes over from a dead one. */
  electionTtlSec: number;
}

export const REAPER_DEFAULTS: ReaperOptions = { pollMs: 500, reconcileMs: 10_000, electionTtlSec: 5 };

const RECONCILE_PAGE = 1000;
/** The coordinator is read at least this often even while its watch reports no change. */
const RECHECK_MS = 10_000;

export class LeaseReaper {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private ownLease: bigint | null = null;
  private renewedAt = 0;
  private leading = false;
  private known: LeaseView | null = null;
  private reconcileDue = 0;
  /** Reaps that failed: "<shard index>:<lease id>". */
  private readonly pending = new Set<string>();
  private lastFailure = '';
  private readonly changes: ChangeWatch;
  /** Something changed (or may have) since the coordinator was last read. */
  private stale = true;
  private readAt = 0;
  /** A tick was asked for while one ran. */
  private again = false;
  /** Leases the watch saw die (marker deleted): ID → the incarnation that died. */
  private died = new Map<bigint, bigint>();

  constructor(
    private readonly store: LeaseCluster,
    private readonly log: Logger,
    /** Unique per replica (the value of the election key). */
    private readonly me: string,
    private readonly opts: ReaperOptions = REAPER_DEFAULTS,
  ) {
    this.changes = new ChangeWatch(
      store.coordinator,
      [{ key: MARKER_PREFIX, range_end: MARKER_END, prevKv: true }, { key: REAPER_KEY }],
      { onChanges: (evs) => this.changed(evs), onReconnect: () => this.markStale() },
      log,
      'lease reaper',
    );
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.pollMs);
    this.timer.unref();
    this.changes.start();
    void this.tick();
  }

  /**
   * Only deletes matter: a marker deleted is a lease that died (a grant needs no read), the
   * election key deleted is a chance to lead.
   */
  private changed(events: ChangeEvent[]): void {
    let deleted = false;
    for (const e of events) {
      if (!e.deleted) continue;
      deleted = true;
      const id = markerId(e.key);
      if (id !== null && e.prev && this.leading) this.died.set(id, BigInt(e.prev.create_revision));
    }
    if (deleted) this.markStale();
  }

  /** The coordinator must be read again (a change reported, or a watch reconnected that missed some). */
  private markStale(): void {
    this.stale = true;
    void this.tick();
  }

  /** Whether this tick must read the coordinator (the watch may have missed something, or said so). */
  private mustRead(): boolean {
    return this.stale || !this.changes.live || Date.now() - this.readAt >= RECHECK_MS;
  }

  /** Stops; a leader gives up its election lease so that another replica takes over at once. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.changes.close();
    const own = this.ownLease;
    this.ownLease = null;
    this.leading = false;
    if (own !== null) await this.store.coordinator.leaseRevoke(own).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    if (!this.timer) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    const read = this.mustRead();
    // Cleared before reading: a change reported meanwhile makes the next tick read again.
    this.stale = false;
    if (read) this.readAt = Date.now();
    try {
      const was = this.leading;
      await this.campaign(read);
      if (this.leading && !was) {
        this.log.info({ reaper: this.me }, 'lease reaper: elected');
        this.known = null;
        this.died.clear();
        this.reconcileDue = 0;
      }
      if (!this.leading && was) this.log.info({ reaper: this.me }, 'lease reaper: lost the election');
      if (this.leading && (read || this.pending.size > 0 || Date.now() >= this.reconcileDue)) await this.reap();
      this.lastFailure = '';
    } catch (err) {
      this.stale = true;
      // Once per distinct failure (a coordinator outage would otherwise log every poll).
      const msg = err instanceof Error ? err.message : String(err);
      if (this.timer && msg !== this.lastFailure) this.log.warn({ err }, 'lease reaper: tick failed');
      this.lastFailure = msg;
    } finally {
      this.busy = false;
      if (this.again) {
        this.again = false;
        setImmediate(() => void this.tick());
      }
    }
  }

  /**
   * Holds or tries to take the election key, under this replica's own coordinator lease;
   * `read`: look at the key even if the watch did not report it gone.
   */
  private async campaign(read: boolean): Promise<void> {
    const coord = this.store.coordinator;
    const now = Date.now();
    if (this.ownLease !== null && now - this.renewedAt >= (this.opts.electionTtlSec * 1000) / 3) {
      const ka = await coord.leaseKeepAlive(this.ownLease).catch((err: unknown) => {
        this.leading = false;
        throw err;
      });
      if (BigInt(ka.TTL) <= 0n) {
        this.ownLease = null;
        this.leading = false;
      } else this.renewedAt = now;
    }
    if (this.ownLease === null) {
      const g = await coord.leaseGrant({ TTL: String(this.opts.electionTtlSec), ID: '0' });
      this.ownLease = BigInt(g.ID);
      this.renewedAt = now;
    }
    // The key lives as long as the lease it is attached to: a leader whose lease is alive still
    // holds it. Only a replica that does not lead looks, and writes (a raft proposal on the
    // coordinator) only when the key is gone.
    if (this.leading || !read) return;
    const held = await coord.range({ key: REAPER_KEY, serializable: true });
    const holder = held.kvs[0]?.value.toString();
    if (holder !== undefined && holder !== this.me) return;
    const put: RequestOp = { request_put: { key: REAPER_KEY, value: Buffer.from(this.me), lease: this.ownLease.toString() } as RequestOp['request_put'] };
    const res = await coord.txn(
      { compare: [cmp(CompareTarget.CREATE, CompareResult.EQUAL, REAPER_KEY, { create_revision: '0' })], success: [put], failure: [rangeOp(REAPER_KEY)] },
      false,
    );
    this.leading = res.succeeded || res.responses[0]?.response_range?.kvs[0]?.value.toString() === this.me;
  }

  private async reap(): Promise<void> {
    const died = this.died;
    this.died = new Map();
    const view = await this.store.leases.view().catch((err: unknown) => {
      for (const [id, inc] of died) if (!this.died.has(id)) this.died.set(id, inc);
      throw err;
    });
    const previous = this.known;
    this.known = view;
    const jobs: Array<Promise<void>> = [];
    const dead = (id: bigint, inc: bigint) => {
      if (isDead(view, id, inc)) for (const s of this.store.shards) this.pending.add(`${s.index}:${id}`);
    };
    for (const [id, inc] of died) dead(id, inc);
    if (previous) for (const [id, inc] of previous.live) dead(id, inc);
    for (const p of [...this.pending]) {
      const [shard, id] = p.split(':');
      jobs.push(this.reapOne(this.store.shards[Number(shard)], BigInt(id), view));
    }
    await Promise.all(jobs);
    if (Date.now() >= this.reconcileDue) {
      const ok = await this.reconcile(view);
      this.reconcileDue = Date.now() + (ok ? this.opts.reconcileMs : this.opts.pollMs * 2);
    }
  }

  private async reapOne(shard: Shard, id: bigint, view: LeaseView): Promise<void> {
    const tag = `${shard.index}:${id}`;
    try {
      const r = await reapOnOwner(this.store, shard, id, view);
      this.pending.delete(tag);
      leaseReaps.inc({ result: 'ok' });
      if (r.deleted) this.log.debug({ lease: id.toString(), shard: shard.name, deleted: r.deleted }, 'lease reaper: deleted keys of a dead lease');
    } catch (err) {
      this.pending.add(tag);
      leaseReaps.inc({ result: 'error' });
      this.log.warn({ err, lease: id.toString(), shard: shard.name }, 'lease reaper: reap failed, will retry');
    }
  }

  /** Lists every shard's lease index and reaps the leases with dead attachments; false if a shard failed. */
  private async reconcile(view: LeaseView): Promise<boolean> {
    const results = await Promise.allSettled(
      this.store.shards.map(async (shard) => {
        for (const id of await deadLeasesOn(shard, view)) this.pending.add(`${shard.index}:${id}`);
      }),
    );
    const failed = results.filter((r) => r.status === 'rejected');
    for (const r of failed) this.log.warn({ err: (r as PromiseRejectedResult).reason }, 'lease reaper: reconcile could not read a shard');
    const jobs = [...this.pending].map((p) => {
      const [shard, id] = p.split(':');
      return this.reapOne(this.store.shards[Number(shard)], BigInt(id), view);
    });
    await Promise.all(jobs);
    return failed.length === 0;
  }
}

/** Leases with at least one attachment on `shard` that is dead in `view`. */
async function deadLeasesOn(shard: Shard, view: LeaseView): Promise<Set<bigint>> {
  const out = new Set<bigint>();
  let start = INDEX_PREFIX;
  for (;;) {
    const page = await shard.read([rangeOp(start, INDEX_END, { limit: String(RECONCILE_PAGE) })], true);
    const kvs = page.responses[0]?.response_range?.kvs ?? [];
    for (const e of entriesOf(kvs)) if (isDead(view, e.id, e.incarnation)) out.add(e.id);
    if (kvs.length < RECONCILE_PAGE) return out;
    start = Buffer.concat([kvs[kvs.length - 1].key, Buffer.from([0])]);
  }
}
