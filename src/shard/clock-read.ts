/** A shard clock read from a member txn's answer (shard.ts reads, the writer's batches, kv/shard-txn.ts). */
import type { TxnResponse } from '../etcd/types.js';
import { decodeClock } from './envelope.js';

/** The clock as it stands in a member, read in the same member txn as the data beside it. */
export interface ClockRead {
  clock: bigint;
  /** The member revision the read was served at. */
  memberRev: bigint;
}

/** The clock read by the range op at `i` of a member txn's answer, at the answer's member revision. */
export function clockOf(res: TxnResponse, i: number): ClockRead {
  const r = res.responses[i]?.response_range;
  return { clock: decodeClock(r?.kvs[0]?.value), memberRev: BigInt(res.header?.revision ?? '0') };
}
