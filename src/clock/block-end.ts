/**
 * Ending another replica's revision block (clock/allocator.ts). A holder hands out revisions
 * from its block with no coordinator read per batch, so nothing tells it at once that another
 * replica moved the clock past the block. What keeps the order in step with real time is this
 * rule: nobody moves the clock past a block it does not hold until every shard's clock stands at
 * the block's end (fence writes). From then on a late write from the block fails its shard
 * fence (DESIGN invariant 2) and is re-sent with revisions above, so no write that arrives
 * after anything allocated past the block can take a revision below it.
 *
 * The compare-and-swap that moves the clock also compares the block record, so the decision
 * "fence first or not" is made on the record that is there when the clock moves.
 */
import type { Compare } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { cmp } from '../upstream/ops.js';
import { CLOCK_BLOCK_KEY, decodeBlockRecord } from './block.js';

/**
 * The holder named by a record that a rebuilt or advanced clock writes: no replica handed out
 * anything from it, but replicas may still hold blocks below it, so the first allocation past it
 * fences every shard as for a block.
 */
export const MOVED_CLOCK_HOLDER = 'moved-clock';

/** Raises every shard's clock to at least `target` (fence writes); rejects if a shard does not answer. */
export type FenceShards = (target: bigint) => Promise<void>;

/** The block record exactly as read (null: absent), for the allocation's compare. */
export function recordUnchanged(raw: Buffer | null): Compare {
  return raw === null
    ? cmp(CompareTarget.VERSION, CompareResult.EQUAL, CLOCK_BLOCK_KEY, { version: '0' })
    : cmp(CompareTarget.VALUE, CompareResult.EQUAL, CLOCK_BLOCK_KEY, { value: raw });
}

/**
 * The block end to fence the shards to before moving the clock from `base`, or null: the record
 * names a block ending at `base` that is not this process's own (`ownEnd`: the end of the latest
 * block this process reserved, 0n when none; `self`: its peer URL, null without blocks).
 */
export function foreignBlockEnd(raw: Buffer | null, base: bigint, self: string | null, ownEnd: bigint): bigint | null {
  const rec = decodeBlockRecord(raw ?? undefined);
  if (!rec || rec.end !== base) return null;
  if (rec.holder === self && ownEnd >= rec.end) return null;
  return rec.end;
}
