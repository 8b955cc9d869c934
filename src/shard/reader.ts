/**
 * Group commit for reads of one shard: reads that arrive while a read txn is in flight share
 * the next read-only member txn (one clock read, their ranges side by side). Each read still
 * observes every write acknowledged before it started: the shared txn is sent after all of
 * them arrived, and a read-only txn is linearizable in etcd (unless serializable).
 */
import type { RequestOp, TxnResponse } from '../etcd/types.js';
import type { Upstream } from '../upstream/upstream.js';

interface Waiting {
  ops: RequestOp[];
  resolve: (r: TxnResponse) => void;
  reject: (err: unknown) => void;
}

export class ShardReader {
  private queue: Waiting[] = [];
  private inFlight = false;

  constructor(
    private readonly upstream: Upstream,
    /** Ops every batch starts with and every read gets the answers of (the clock read). */
    private readonly prefix: RequestOp[],
    /** Ops one member txn may carry (below the member's --max-txn-ops). */
    private readonly maxOps: number,
  ) {}

  /**
   * Runs `ops` in a read-only member txn, possibly with other reads; resolves with a response
   * holding the prefix's answers followed by this read's.
   */
  read(ops: RequestOp[]): Promise<TxnResponse> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      if (!this.inFlight) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const prefix = this.prefix;
    this.inFlight = true;
    while (this.queue.length) {
      const batch: Waiting[] = [];
      let n = prefix.length;
      while (this.queue.length && (batch.length === 0 || n + this.queue[0].ops.length <= this.maxOps)) {
        const w = this.queue.shift() as Waiting;
        n += w.ops.length;
        batch.push(w);
      }
      try {
        const res = await this.upstream.txn({ compare: [], success: [...prefix, ...batch.flatMap((w) => w.ops)], failure: [] }, true);
        let at = prefix.length;
        for (const w of batch) {
          w.resolve({ ...res, responses: [...res.responses.slice(0, prefix.length), ...res.responses.slice(at, at + w.ops.length)] });
          at += w.ops.length;
        }
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.inFlight = false;
  }
}
