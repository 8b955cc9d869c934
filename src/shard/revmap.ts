/**
 * Maps a meta revision to the member revision(s) of one shard that hold the state at it.
 *
 * Every member txn the proxy sends sets the shard clock, so the clock is non-decreasing in
 * member revision. The member revision for meta revision R is the last one whose clock is <= R:
 * found by galloping back from the head, then bisecting. Answers never change once R is below
 * the shard clock, so they are remembered (kube-apiserver pages through a list at one revision).
 *
 * A batch (shard/writer.ts) puts several meta revisions R1..Rk into one member revision m. When
 * R1 <= R < Rk, the state at R is "m-1 plus the writes of m at or below R": `partial` names m.
 * Writes that delete close their batch, so inside a batch every write at or below R is a put
 * whose envelope says its revision, and every delete in m happened after R. The batch's first
 * revision is the lowest envelope revision among the keys written at m (a put chain's first
 * put counts, envelope.ts; a range filtered on
 * m's member mod revision: etcd walks the index but answers only those keys).
 */
import { Errors } from '../etcd/errors.js';

import { decodeEnvelope, firstRevision } from './envelope.js';
import type { ClockRead, Shard } from './shard.js';

const MEMO_LIMIT = 1024;

export interface MemberPoint {
  /** Member revision whose state holds every write at or below R that is not in `partial`. */
  rev: bigint;
  /** A batch at rev+1 that straddles R, or null. */
  partial: bigint | null;
}

export class RevisionMap {
  private readonly memo = new Map<string, MemberPoint>();

  constructor(private readonly shard: Shard) {}

  /** `head` is a current read of the shard whose clock is >= rev. */
  async memberRevAt(rev: bigint, head: ClockRead): Promise<MemberPoint> {
    if (head.clock <= rev) return { rev: head.memberRev, partial: null };
    const memoKey = rev.toString();
    const hit = this.memo.get(memoKey);
    if (hit !== undefined) return hit;

    // Invariant: clock(hi) > rev; find lo with clock(lo) <= rev.
    let hi = head.memberRev;
    let step = 1n;
    let lo = hi - step;
    for (;;) {
      if (lo < 1n) {
        lo = 1n;
        break;
      }
      const c = await this.clockAtOrCompacted(lo);
      if (c === null) break; // compacted below lo: the caller checked rev against the meta compaction
      if (c <= rev) break;
      hi = lo;
      step *= 2n;
      lo = hi - step;
    }
    while (hi - lo > 1n) {
      const mid = (lo + hi) / 2n;
      const c = await this.clockAtOrCompacted(mid);
      if (c === null || c <= rev) lo = mid;
      else hi = mid;
    }
    const point: MemberPoint = { rev: lo, partial: (await this.batchFirst(lo + 1n)) <= rev ? lo + 1n : null };
    if (this.memo.size >= MEMO_LIMIT) this.memo.delete(this.memo.keys().next().value as string);
    this.memo.set(memoKey, point);
    return point;
  }

  /** The lowest meta revision applied in a batch at this member revision (a huge value when none). */
  private async batchFirst(memberRev: bigint): Promise<bigint> {
    let first = 1n << 62n;
    // Every user key of the shard (an empty start key would be refused: etcd wants a key).
    const all = this.shard.keyspace.toMemberRange(Buffer.from([0]), Buffer.from([0]));
    if (!all) return first;
    try {
      const m = memberRev.toString();
      const res = await this.shard.upstream.range({ key: all.start, range_end: all.end, revision: m, min_mod_revision: m, max_mod_revision: m });
      for (const kv of res.kvs) {
        const r = firstRevision(decodeEnvelope(kv.value));
        if (r > 0n && r < first) first = r;
      }
    } catch (err) {
      if (!Errors.compacted.is(err)) throw err;
    }
    return first;
  }

  private async clockAtOrCompacted(memberRev: bigint): Promise<bigint | null> {
    try {
      return await this.shard.clockAt(memberRev);
    } catch (err) {
      if (Errors.compacted.is(err)) return null;
      throw err;
    }
  }
}
