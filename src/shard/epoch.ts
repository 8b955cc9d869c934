/**
 * The owner epoch stored in each member (ownership/): the epoch of the replica that owns the
 * shard's writes. A new owner raises it before its first write and every batch it sends
 * requires it unchanged, so a deposed owner that wakes up late applies nothing (DESIGN "Epoch
 * fence"). Fixed-width big-endian, so etcd's byte compare is numeric compare.
 */
import type { Compare } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { decodeClock, encodeClock } from './envelope.js';
import type { Keyspace } from './keyspace.js';
import { sysKey } from './keyspace.js';
import { cmp, putOp, rangeOp } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';

/**
 * The epoch key of one keyspace: proxies of different namespaces may share member clusters, and
 * each namespace has its own owners.
 */
export function epochKey(ks: Keyspace): Buffer {
  return sysKey(ks.namespace.length ? `epoch/${ks.namespace.toString('hex')}` : 'epoch');
}

/** Holds while the member's epoch is exactly `epoch`. */
export function epochHolds(key: Buffer, epoch: bigint): Compare {
  return cmp(CompareTarget.VALUE, CompareResult.EQUAL, key, { value: encodeClock(epoch) });
}

/**
 * Makes the member's epoch one that no writer has held before and returns it (with the member
 * revision of the claim): `epoch` (the
 * owner record's) when the member holds less, else one more than the member holds. The second
 * case only arises when the coordinator's revisions went back (it lost its data): any value
 * above every value the member ever held is as good a fence, since a writer only ever writes
 * under a value the member held. (The key exists from Shard.init: a VALUE compare on a missing
 * key fails.)
 */
export async function claimEpoch(upstream: Upstream, key: Buffer, epoch: bigint): Promise<{ epoch: bigint; memberRev: bigint }> {
  let want = epoch;
  let below: number = CompareResult.LESS;
  let than = epoch;
  for (let attempt = 0; attempt < 8; attempt++) {
    const res = await upstream.txn(
      {
        compare: [cmp(CompareTarget.VALUE, below, key, { value: encodeClock(than) })],
        success: [putOp(key, encodeClock(want))],
        failure: [rangeOp(key)],
      },
      false,
    );
    if (res.succeeded) return { epoch: want, memberRev: BigInt(res.header?.revision ?? '0') };
    const held = decodeClock(res.responses[0]?.response_range?.kvs[0]?.value);
    if (held < epoch) continue;
    want = held + 1n;
    below = CompareResult.EQUAL;
    than = held;
  }
  throw new Error('the member epoch kept moving');
}
