/**
 * The part of the meta-cluster the lease verbs work on (revoke, TimeToLive, the reaper): what
 * they use and nothing more, so lease/ does not depend on kv/ (kv/store.ts's MetaStore has
 * this shape; kv/ in turn uses lease/'s directory and index ops for its writes).
 */
import type { Keyspace } from '../shard/keyspace.js';
import type { Shard } from '../shard/shard.js';
import type { Upstream } from '../upstream/upstream.js';
import type { LeaseDirectory } from './directory.js';

/** A lease to reap, with the part of the lease view that decides which attachments are dead. */
export interface ForwardedReap {
  id: bigint;
  /** The view's coordinator revision. */
  rev: bigint;
  /** The lease's live incarnation in the view, null when it is dead. */
  live: bigint | null;
}

/** Where a shard's writes go, and how a reap is handed to the shard's owner (ownership/). */
export interface ReapRouting {
  route(shard: number): Promise<{ local: true; epoch: bigint } | { local: false; owner: { url: string } }>;
  /** Reaps a dead lease's keys on the owner of a shard (lease/reap.ts). */
  reap(url: string, shard: string, lease: ForwardedReap): Promise<{ deleted: number; rev: bigint }>;
}

export interface LeaseCluster {
  readonly shards: readonly Shard[];
  readonly ks: Keyspace;
  readonly coordinator: Upstream;
  /** Meta leases, canonical on the coordinator. */
  readonly leases: LeaseDirectory;
  /** known(): the highest meta revision this replica knows of (response headers); current(): read linearizably. */
  readonly clock: { known(): bigint; current(): Promise<bigint> };
  /** Most pins one write may carry (reap writes pin each entry and key). */
  readonly maxPins: number;
  /** Null: every replica writes every shard. */
  readonly routing: ReapRouting | null;
  /** A revoke acknowledged at `rev`: reads here wait for it (kv/store.ts MetaStore.acked). */
  noteAcked(rev: bigint): void;
  /** Recently seen key states: a reaped key is known deleted. */
  readonly hints: { set(memberKey: string, kv: null): void };
}
