/**
 * The meta-cluster as the verbs see it: shards, router, clock, keyspace and per-shard
 * revision maps. Verb files (range, put, delete, txn, compact) take it as their first argument.
 */
import type { ClockAllocator } from '../clock/allocator.js';
import type { Router } from '../partition/router.js';
import type { Keyspace } from '../shard/keyspace.js';
import { RevisionMap } from '../shard/revmap.js';
import type { Shard } from '../shard/shard.js';
import type { Upstream } from '../shard/upstream.js';
import { decodeClock } from '../shard/envelope.js';
import { sysKey } from '../shard/keyspace.js';
import { StateHints } from './hints.js';

export const COMPACT_KEY = sysKey('compact-revision');

export class MetaStore {
  readonly revmaps: RevisionMap[];
  /** Recently seen key states, to skip state reads before writes (kv/hints.ts). */
  readonly hints = new StateHints();
  /** The meta compaction revision last seen (only ever grows). */
  private compacted = 0n;

  constructor(
    readonly shards: Shard[],
    readonly router: Router,
    readonly clock: ClockAllocator,
    readonly ks: Keyspace,
    readonly coordinator: Upstream,
  ) {
    this.revmaps = shards.map((s) => new RevisionMap(s));
  }

  get compactedRevision(): bigint {
    return this.compacted;
  }

  noteCompacted(rev: bigint): void {
    if (rev > this.compacted) this.compacted = rev;
  }

  async refreshCompacted(): Promise<bigint> {
    const res = await this.coordinator.range({ key: COMPACT_KEY });
    this.noteCompacted(decodeClock(res.kvs[0]?.value));
    return this.compacted;
  }

  /** Leases arrive with their own issue: until then every lease id is unknown, as on an etcd with none granted. */
  leaseExists(_id: bigint): boolean {
    return false;
  }
}
