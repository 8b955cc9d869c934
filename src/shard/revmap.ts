/**
 * Maps a meta revision to the member revision of one shard that holds the state at it.
 *
 * Every member txn the proxy sends sets the shard clock, so member revisions and the clock's
 * history line up one to one and the clock is non-decreasing in member revision. The member
 * revision for meta revision R is the last one whose clock is <= R: found by galloping back
 * from the head, then bisecting. Answers never change once R is below the shard clock, so they
 * are remembered (kube-apiserver pages through a list at one fixed revision).
 */
import { EtcdError } from '../etcd/errors.js';
import type { ClockRead, Shard } from './shard.js';

const MEMO_LIMIT = 1024;

export class RevisionMap {
  private readonly memo = new Map<string, bigint>();

  constructor(private readonly shard: Shard) {}

  /** `head` is a current read of the shard whose clock is >= rev. */
  async memberRevAt(rev: bigint, head: ClockRead): Promise<bigint> {
    if (head.clock <= rev) return head.memberRev;
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
      if (c === null) {
        // Compacted below lo: the answer is above it (the caller checked rev against the meta compaction).
        break;
      }
      if (c <= rev) break;
      hi = lo;
      step *= 2n;
      lo = hi - step;
    }
    // Bisect in [lo, hi): clock(lo) <= rev (or lo is the compaction floor), clock(hi) > rev.
    while (hi - lo > 1n) {
      const mid = (lo + hi) / 2n;
      const c = await this.clockAtOrCompacted(mid);
      if (c !== null && c <= rev) lo = mid;
      else if (c === null) lo = mid;
      else hi = mid;
    }
    if (this.memo.size >= MEMO_LIMIT) this.memo.delete(this.memo.keys().next().value as string);
    this.memo.set(memoKey, lo);
    return lo;
  }

  private async clockAtOrCompacted(memberRev: bigint): Promise<bigint | null> {
    try {
      return await this.shard.clockAt(memberRev);
    } catch (err) {
      if (err instanceof EtcdError && err.message.includes('compacted')) return null;
      throw err;
    }
  }
}
