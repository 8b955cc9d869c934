/**
 * Group commit for reads of one shard: reads that arrive while a read txn is in flight share
 * the next read-only member txn (one clock read, their ranges side by side). Each read still
 * observes every write acknowledged before it started: the shared txn is sent after all of
 * them arrived, and a read-only txn is linearizable in etcd (unless serializable).
 */
import { Batcher, type Waiter } from '../batching/batcher.js';
import type { RequestOp, TxnResponse } from '../etcd/types.js';
import type { Upstream } from '../upstream/upstream.js';

export class ShardReader {
  private readonly batches: Batcher<RequestOp[], TxnResponse>;

  constructor(
    private readonly upstream: Upstream,
    /** Ops every batch starts with and every read gets the answers of (the clock read). */
    private readonly prefix: RequestOp[],
    /** Ops one member txn may carry (below the member's --max-txn-ops). */
    maxOps: number,
  ) {
    this.batches = new Batcher((batch) => this.send(batch), {
      // As many reads as fit one txn beside the prefix (a larger read goes alone).
      take: (queued) => {
        let n = prefix.length;
        let i = 0;
        while (i < queued.length && (i === 0 || n + queued[i].length <= maxOps)) n += queued[i++].length;
        return i;
      },
    });
  }

  /**
   * Runs `ops` in a read-only member txn, possibly with other reads; resolves with a response
   * holding the prefix's answers followed by this read's.
   */
  read(ops: RequestOp[]): Promise<TxnResponse> {
    return this.batches.submit(ops);
  }

  private async send(batch: Waiter<RequestOp[], TxnResponse>[]): Promise<void> {
    const prefix = this.prefix;
    const res = await this.upstream.txn({ compare: [], success: [...prefix, ...batch.flatMap((w) => w.item)], failure: [] }, true);
    let at = prefix.length;
    for (const w of batch) {
      w.resolve({ ...res, responses: [...res.responses.slice(0, prefix.length), ...res.responses.slice(at, at + w.item.length)] });
      at += w.item.length;
    }
  }
}
