/**
 * One writer per shard (DESIGN "Write path"). For each shard one replica is its owner, elected
 * on the coordinator under that replica's ownership lease (etcd's election recipe: create the
 * key if absent). Only the owner writes client data to the shard; other replicas forward to it
 * (forward.ts). So a second replica never makes writes fail each other's fences.
 *
 * Epoch fence: the owner key's create revision is the epoch E. Before its first write the owner
 * raises the member's epoch key to E (shard/epoch.ts); every batch it sends requires it unchanged
 * (shard/writer.ts). A deposed owner that wakes up late (its lease expired while it was stopped)
 * applies nothing: the new owner raised the epoch first.
 *
 * Each replica follows the owner records with a coordinator watch and reads them when it says
 * they changed (a dead owner's record goes with its lease: failover takes about the lease TTL);
 * while that watch is down it reads them every `pollMs` as before, and every RECHECK_MS anyway.
 * A shard without an owner is campaigned for at once.
 */
import type { Logger } from 'pino';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { EtcdError } from '../etcd/errors.js';
import { status } from '@grpc/grpc-js';
import { ownerChanges } from '../metrics/registry.js';
import { claimEpoch } from '../shard/epoch.js';
import type { Shard } from '../shard/shard.js';
import { cmp, rangeOp } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';
import type { OwnerRecord, ReplicaRef } from './record.js';
import { decodeOwner, encodeOwner, ownerKey, ownerRange } from './record.js';
import type { Keyspace } from '../shard/keyspace.js';
import { epochKey } from '../shard/epoch.js';
import { ChangeWatch } from '../upstream/change-watch.js';

/** Owner records are read at least this often even while the watch says nothing changed. */
const RECHECK_MS = 10_000;

export interface OwnershipOptions {
  /** TTL of the ownership lease: how soon another replica takes over from a dead owner. */
  ttlSec: number;
  /** How often owner records are read. */
  pollMs: number;
  /** How long a write waits for a shard to get an owner before it fails with UNAVAILABLE. */
  waitMs: number;
}

/** Where a write to a shard goes now. */
export type Route = { local: true; epoch: bigint } | { local: false; owner: OwnerRecord };

export class Owners {
  private readonly records: Array<OwnerRecord | null>;
  /** The member epoch this replica writes under per shard, or null. */
  private readonly held: Array<bigint | null>;
  /** The owner record epoch `held` was claimed for. */
  private readonly claimed: Array<bigint | null>;
  private lease: bigint | null = null;
  private renewedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private resigning = false;
  private waiters: Array<() => void> = [];
  private lastFailure = '';
  private readonly changes: ChangeWatch;
  /** The owner records may have changed since they were last read. */
  private stale = true;
  private readAt = 0;

  constructor(
    private readonly coordinator: Upstream,
    private readonly shards: Shard[],
    private readonly ks: Keyspace,
    private readonly self: ReplicaRef,
    private readonly log: Logger,
    private readonly opts: OwnershipOptions,
  ) {
    this.records = shards.map(() => null);
    this.held = shards.map(() => null);
    this.claimed = shards.map(() => null);
    const changed = () => {
      this.stale = true;
      this.kick();
    };
    this.changes = new ChangeWatch(coordinator, [ownerRange(ks.namespace)], { onChanges: changed, onReconnect: changed }, log, 'owners');
    for (const s of shards) {
      s.writer.onDeposed((epoch) => {
        this.log.warn({ shard: s.name, epoch: epoch.toString() }, 'ownership: another replica took this shard over');
        this.drop(s.index);
        this.kick();
      });
    }
  }

  /** The URL other replicas reach this one at (its owner records name it). */
  get selfUrl(): string {
    return this.self.url;
  }

  /** Starts polling; resolves after the first round (a lone replica then owns every shard). */
  async start(): Promise<void> {
    this.changes.start();
    await this.tick();
    this.timer = setInterval(() => this.kick(), this.opts.pollMs);
    this.timer.unref();
  }

  /** The epoch this replica holds for the shard, or null when it does not own it. */
  localEpoch(shard: number): bigint | null {
    return this.resigning ? null : this.held[shard];
  }

  /**
   * True while this replica owns every shard: every write passes through it, so it may hand out
   * revisions from a reserved block (clock/allocator.ts; each batch still confirms on the
   * coordinator that nobody allocated since).
   */
  ownsAll(): boolean {
    return !this.resigning && this.lease !== null && this.held.every((e) => e !== null);
  }

  /** Where a write to `shard` goes now, or null while it has no owner (never waits). */
  current(shard: number): Route | null {
    const epoch = this.localEpoch(shard);
    if (epoch !== null) return { local: true, epoch };
    const rec = this.records[shard];
    // Never forward to ourselves: a record of ours not under our lease is stale (this replica
    // resigned, or a restart of it) and goes with its lease.
    return rec && rec.id !== this.self.id ? { local: false, owner: rec } : null;
  }

  /** Where a write to `shard` goes; waits (up to waitMs) while the shard has no owner. */
  async route(shard: number): Promise<Route> {
    const deadline = Date.now() + this.opts.waitMs;
    for (;;) {
      const now = this.current(shard);
      if (now) return now;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new EtcdError(status.UNAVAILABLE, `etcd-metaproxy: shard ${this.shards[shard].name} has no owner yet, try again`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, this.opts.pollMs));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves after the next complete round (owner records read anew). */
  async refresh(): Promise<void> {
    if (this.ticking) await this.ticking;
    this.stale = true;
    await this.tick();
  }

  /**
   * Graceful hand-over: stop taking writes, let the batches in flight land, then delete the
   * owner records (revoking the lease) so other replicas take over at their next poll. Polling
   * goes on until close(), so writes still arriving here are forwarded to the new owners.
   */
  async resign(othersLive: () => Promise<boolean>, drainMs = 5_000): Promise<void> {
    this.resigning = true;
    await Promise.all(this.shards.map((s) => (this.held[s.index] !== null ? s.writer.drained(drainMs) : undefined)));
    for (const s of this.shards) this.drop(s.index);
    const lease = this.lease;
    this.lease = null;
    if (lease !== null) await this.coordinator.leaseRevoke(lease).catch(() => undefined);
    // Stay up until others took the shards over (or the wait runs out): writes still arriving
    // here meanwhile are forwarded to them.
    const deadline = Date.now() + drainMs;
    while (Date.now() < deadline && (await othersLive().catch(() => false))) {
      await this.refresh();
      if (this.records.every((r) => r !== null && r.id !== this.self.id)) break;
      await new Promise((r) => setTimeout(r, this.opts.pollMs));
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.changes.close();
    this.wake();
  }

  /** Every shard has an owner, and the ones that are ours are taken: nothing to retry. */
  private settled(): boolean {
    return this.shards.every((s) => {
      const rec = this.records[s.index];
      return rec !== null && (!this.isSelf(rec) || this.held[s.index] !== null);
    });
  }

  private isSelf(rec: OwnerRecord): boolean {
    return rec.id === this.self.id && rec.lease === this.lease;
  }

  private drop(shard: number): void {
    if (this.held[shard] === null) return;
    this.held[shard] = null;
    this.shards[shard].writer.setEpoch(null);
  }

  private kick(): void {
    if (!this.ticking) void this.tick();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  private tick(): Promise<void> {
    this.ticking ??= this.round()
      .then(() => {
        this.lastFailure = '';
      })
      .catch((err: unknown) => {
        this.stale = true;
        const msg = err instanceof Error ? err.message : String(err);
        if (msg !== this.lastFailure) this.log.warn({ err: msg }, 'ownership: round failed');
        this.lastFailure = msg;
      })
      .finally(() => {
        this.ticking = null;
        this.wake();
      });
    return this.ticking;
  }

  private async round(): Promise<void> {
    if (!this.resigning) await this.keepLease();
    if (!this.stale && this.changes.live && Date.now() - this.readAt < RECHECK_MS && this.settled()) return;
    // Cleared before the read: a change reported while it is in flight makes the next round read again.
    this.stale = false;
    this.readAt = Date.now();
    const range = ownerRange(this.ks.namespace);
    const res = await this.coordinator.range(range).catch((err: unknown) => {
      this.stale = true;
      throw err;
    });
    const byShard = new Map<string, OwnerRecord>();
    for (const kv of res.kvs) {
      const rec = decodeOwner(kv, range.key);
      if (rec) byShard.set(rec.shard, rec);
    }
    await Promise.all(
      this.shards.map(async (s) => {
        let rec = byShard.get(s.name) ?? null;
        if (!rec && !this.resigning && this.lease !== null) rec = await this.campaign(s);
        this.records[s.index] = rec;
        if (rec && this.isSelf(rec) && !this.resigning) await this.take(s, rec);
        else this.drop(s.index);
      }),
    );
  }

  /** Grants the ownership lease, or renews it every third of its TTL. */
  private async keepLease(): Promise<void> {
    const now = Date.now();
    if (this.lease !== null && now - this.renewedAt >= (this.opts.ttlSec * 1000) / 3) {
      const ka = await this.coordinator.leaseKeepAlive(this.lease);
      if (BigInt(ka.TTL) <= 0n) {
        this.log.warn('ownership: lease lost (expired or the coordinator lost its data); giving up every shard');
        this.lease = null;
        for (const s of this.shards) this.drop(s.index);
      } else this.renewedAt = now;
    }
    if (this.lease === null) {
      const g = await this.coordinator.leaseGrant({ TTL: String(this.opts.ttlSec), ID: '0' });
      this.lease = BigInt(g.ID);
      this.renewedAt = now;
    }
  }

  /** Creates the owner record if there is none; the record that stands afterwards. */
  private async campaign(s: Shard): Promise<OwnerRecord | null> {
    const key = ownerKey(this.ks.namespace, s.name);
    const res = await this.coordinator.txn(
      {
        compare: [cmp(CompareTarget.CREATE, CompareResult.EQUAL, key, { create_revision: '0' })],
        success: [{ request_put: { key, value: encodeOwner(this.self), lease: String(this.lease) } }],
        failure: [rangeOp(key)],
      },
      false,
    );
    if (res.succeeded) {
      const epoch = BigInt(res.header?.revision ?? '0');
      return { shard: s.name, ...this.self, epoch, lease: this.lease ?? 0n };
    }
    const kv = res.responses[0]?.response_range?.kvs[0];
    return kv ? decodeOwner(kv, ownerRange(this.ks.namespace).key) : null;
  }

  /** Claims a fresh member epoch for our record (once per record); then this replica writes the shard. */
  private async take(s: Shard, rec: OwnerRecord): Promise<void> {
    if (this.claimed[s.index] === rec.epoch && this.held[s.index] !== null) return;
    const { epoch, memberRev } = await claimEpoch(s.upstream, epochKey(this.ks), rec.epoch);
    if (this.records[s.index] !== rec || this.resigning) return; // the world moved while we claimed
    this.claimed[s.index] = rec.epoch;
    this.held[s.index] = epoch;
    s.writer.setEpoch(epoch, memberRev);
    ownerChanges.inc({ shard: s.name });
    this.log.info({ shard: s.name, epoch: epoch.toString() }, 'ownership: this replica now writes the shard');
  }
}
