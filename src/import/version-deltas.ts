/**
 * The version deltas (shard/envelope.ts) of the keys the copy wrote. The copy puts a key once,
 * whatever its version: its envelope says how far the source's version is ahead of the member's
 * own count. Later puts of that incarnation add one to both, so the follow phase's puts of it
 * must carry the same delta. Keys created after the copy revision start equal (delta 0).
 *
 * A delta is read from the member the first time a key needs it (one read-only member txn per
 * shard and source response) and remembered for a bounded number of keys; a delete ends the
 * incarnation and forgets it. An import copied by an earlier version (a key put `version` times)
 * reads delta 0, which is right for it.
 */
import { decodeEnvelope } from '../shard/envelope.js';
import type { Keyspace } from '../shard/keyspace.js';
import type { Router } from '../partition/router.js';
import { isDelete, type SourceEvent } from './member-writes.js';
import type { ShardApplier } from './shard-applier.js';

/** Keys whose delta is remembered; the oldest are forgotten (and read again if needed). */
const REMEMBERED = 100_000;

export class VersionDeltas {
  private readonly known = new Map<string, bigint>();

  constructor(
    private readonly copyRevision: bigint,
    private readonly router: Router,
    private readonly ks: Keyspace,
    private readonly appliers: ShardApplier[],
    private readonly remembered = REMEMBERED,
  ) {}

  /** Reads the deltas the puts among `events` need and that are not known yet. */
  async load(events: SourceEvent[]): Promise<void> {
    const wanted: Buffer[][] = this.appliers.map(() => []);
    const asked = new Set<string>();
    for (const ev of events) {
      const kv = ev.kv;
      if (!kv || isDelete(ev) || BigInt(kv.create_revision) > this.copyRevision) continue;
      const mk = this.ks.toMember(kv.key);
      const id = mk.toString('latin1');
      if (this.known.has(id) || asked.has(id)) continue;
      asked.add(id);
      wanted[this.router.shardOf(kv.key)].push(mk);
    }
    await Promise.all(
      this.appliers.map(async (a, i) => {
        if (!wanted[i].length) return;
        const values = await a.read(wanted[i]);
        for (const [id, value] of values) this.remember(id, value ? decodeEnvelope(value, false).delta : 0n);
      }),
    );
  }

  /** The delta of the event's key (0n for an incarnation the copy did not write). */
  of(ev: SourceEvent): bigint {
    const kv = ev.kv;
    if (!kv || BigInt(kv.create_revision) > this.copyRevision) return 0n;
    return this.known.get(this.ks.toMember(kv.key).toString('latin1')) ?? 0n;
  }

  /** A delete ends the key's incarnation: a later one starts at delta 0. */
  forget(ev: SourceEvent): void {
    if (ev.kv) this.known.delete(this.ks.toMember(ev.kv.key).toString('latin1'));
  }

  private remember(id: string, delta: bigint): void {
    this.known.set(id, delta);
    if (this.known.size > this.remembered) {
      const oldest = this.known.keys().next();
      if (!oldest.done) this.known.delete(oldest.value);
    }
  }
}
