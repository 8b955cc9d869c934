/**
 * The meta-cluster as the verbs see it: shards, router, clock, keyspace and per-shard
 * revision maps. Verb files (range, put, delete, txn, compact) take it as their first argument.
 */
import { PutChains } from './put-chain.js';
import type { ClockAllocator } from '../clock/allocator.js';
import type { Router } from '../partition/router.js';
import type { Keyspace } from '../shard/keyspace.js';
import { RevisionMap } from '../shard/revmap.js';
import type { Shard } from '../shard/shard.js';
import type { Upstream } from '../upstream/upstream.js';
import { decodeClock, encodeClock } from '../shard/envelope.js';
import { sysKey } from '../shard/keyspace.js';
import { StateHints } from './hints.js';
import { KeyTurns } from './key-turns.js';
import { ownerSerializableRead } from './owner-reads.js';
import { SharedReads } from './shared-reads.js';
import { LeaseDirectory } from '../lease/directory.js';
import type { ForwardedReap } from '../lease/cluster-view.js';
import { rangeOp } from '../upstream/ops.js';
import type { TxnRequest } from '../etcd/types.js';
import type { TxnOutcome } from './txn-outcome.js';

/** One writer per shard (ownership/owners.ts, ownership/forward.ts), as the write path sees it. */
export interface WriteRouting {
  route(shard: number): Promise<{ local: true; epoch: bigint } | { local: false; owner: { url: string } }>;
  forward(url: string, shard: string, txn: TxnRequest, hops: number): Promise<TxnOutcome>;
  /** Resolves after a fresh read of the owner records (the one the caller routed on was stale). */
  refresh(): Promise<void>;
  /**
   * The owner's word that every write to the shard at or below `target` has landed by the
   * returned member revision (null: no owner to ask; fence instead). Never waits for an owner.
   */
  settle(shard: number, target: bigint): Promise<bigint | null>;
  /** Reaps a dead lease's keys on the owner of a shard (lease/reap.ts). */
  reap(url: string, shard: string, lease: ForwardedReap): Promise<{ deleted: number; rev: bigint }>;
}

/** Defined by the lease verbs that send it (lease/cluster-view.ts). */
export type { ForwardedReap };

/**
 * The meta compaction revision, stored plus one (so etcd's initial "nothing compacted", -1, is 0
 * and the big-endian bytes still compare like the numbers).
 */
export const COMPACT_KEY = sysKey('compact-revision');

export function encodeCompacted(rev: bigint): Buffer {
  return encodeClock(rev + 1n);
}

export function decodeCompacted(raw: Buffer | undefined): bigint {
  return decodeClock(raw) - 1n;
}

export class MetaStore {
  readonly revmaps: RevisionMap[];
  /** Per shard: writes to one key take turns on the owner (key-turns.ts). */
  readonly keyTurns: KeyTurns[];
  /** Blind puts of a hot key waiting to be applied together (put-chain.ts), per shard. */
  readonly putChains: PutChains[];
  /** Identical read-only member txns per shard, coalesced (shared-reads.ts). */
  readonly sharedReads: SharedReads[];
  /** Recently seen key states, to skip state reads before writes (kv/hints.ts). */
  readonly hints = new StateHints();
  /** Meta leases, canonical on the coordinator (lease/directory.ts). */
  readonly leases: LeaseDirectory;
  /**
   * Most pins one write may carry (chained over nested levels) within the members'
   * --max-txn-ops; beyond, it is pinned to the shard clock (proxy.ts derives it from memberLimits).
   */
  readonly maxPins: number;
  /** See `routing`. */
  private writeRouting: WriteRouting | null = null;
  /** The meta compaction revision last seen (only ever grows; -1: nothing compacted, as in etcd). */
  private compacted = -1n;
  /** See `acked`. */
  private ackedRev = 0n;

  constructor(
    readonly shards: Shard[],
    readonly router: Router,
    readonly clock: ClockAllocator,
    readonly ks: Keyspace,
    readonly coordinator: Upstream,
    opts: { maxPins?: number } = {},
  ) {
    this.maxPins = opts.maxPins ?? 64;
    this.revmaps = shards.map((s) => new RevisionMap(s));
    this.keyTurns = shards.map(() => new KeyTurns());
    this.putChains = shards.map(() => new PutChains());
    this.sharedReads = shards.map((s) => new SharedReads((req) => s.upstream.txn(req, true)));
    this.leases = new LeaseDirectory(coordinator, ks.namespace);
  }

  /**
   * Where writes go: this replica (under an owner epoch) or the shard's owner (ownership/).
   * Null: every replica writes every shard (no ownership; tests and tools), and until
   * `routeWritesThrough` is called.
   */
  get routing(): WriteRouting | null {
    return this.writeRouting;
  }

  /**
   * Late binding, once: the owners (ownership/owners.ts) need this replica's member id, known
   * only after the gRPC port is bound, which needs the services built on this store, so the
   * routing cannot be a constructor input. proxy.ts calls this before it starts the owners;
   * until then every write path sees null, as without ownership.
   */
  routeWritesThrough(routing: WriteRouting): void {
    if (this.writeRouting) throw new Error('MetaStore: write routing is already set');
    this.writeRouting = routing;
  }

  /**
   * The highest revision of a write this replica acknowledged to a client: a read served here
   * from memory waits until the cache has it (read-your-writes, cache/reads.ts). Noted where every
   * write passes: runShardTxn (kv/shard-txn.ts, every KV write, local or forwarded) and the lease revoke
   * (lease/verbs.ts), so a new write verb built on them needs nothing more.
   */
  get acked(): bigint {
    return this.ackedRev;
  }

  /** See kv/owner-reads.ts. */
  ownerRead(t: TxnRequest): TxnOutcome | null {
    return ownerSerializableRead(this, t);
  }

  noteAcked(rev: bigint): void {
    if (rev > this.ackedRev) this.ackedRev = rev;
  }

  get compactedRevision(): bigint {
    return this.compacted;
  }

  noteCompacted(rev: bigint): void {
    if (rev > this.compacted) this.compacted = rev;
  }

  /**
   * The highest allocated revision and the compaction revision, read together (linearizably)
   * from the coordinator: every proxy sees another's compaction before serving history.
   */
  async coordinatorView(): Promise<{ clock: bigint; compacted: bigint }> {
    const ops = this.clock.currentOps();
    const res = await this.coordinator.txn({ compare: [], success: [...ops, rangeOp(COMPACT_KEY)], failure: [] }, true);
    this.noteCompacted(decodeCompacted(res.responses[ops.length]?.response_range?.kvs[0]?.value));
    // The clock, or what a replica handing out a revision block really handed out (clock/block.ts).
    const clock = await this.clock.resolve(res.responses);
    return { clock, compacted: this.compacted };
  }

  async refreshCompacted(): Promise<bigint> {
    const res = await this.coordinator.range({ key: COMPACT_KEY });
    this.noteCompacted(decodeCompacted(res.kvs[0]?.value));
    return this.compacted;
  }
}
