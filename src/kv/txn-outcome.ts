/** What a client txn came to, on this replica or forwarded to a shard's owner. */
import type { ResponseOp } from '../etcd/types.js';

export interface TxnOutcome {
  /** Header revision: the txn's revision when it wrote, else the revision its reads stand at. */
  revision: bigint;
  succeeded: boolean;
  responses: ResponseOp[];
  wrote: boolean;
}
