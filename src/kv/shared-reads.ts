/**
 * Identical read-only member txns of one shard, coalesced: a caller asking for the same member
 * txn (same ops, same pins) as one in flight shares the next one with everyone else who asked
 * meanwhile (batching/batcher.ts), so each gets an answer read after it asked: still
 * linearizable. The losers of a hot key's compare-and-swap round all read that key pinned to
 * the same state; each used to cost a member round trip of its own.
 */
import { Batcher } from '../batching/batcher.js';
import type { TxnResponse } from '../etcd/types.js';

export class SharedReads {
  private readonly pending = new Map<string, Batcher<null, TxnResponse>>();

  constructor(private readonly send: (req: object) => Promise<TxnResponse>) {}

  /** `req` is a read-only member txn; callers must not change the answer (it is shared). */
  read(req: object): Promise<TxnResponse> {
    const sig = signature(req);
    const known = this.pending.get(sig);
    if (known) return known.submit(null);
    const batcher = new Batcher<null, TxnResponse>(async (batch) => {
      const res = await this.send(req);
      for (const w of batch) w.resolve(res);
    });
    this.pending.set(sig, batcher);
    const answer = batcher.submit(null);
    const forget = (): void => {
      if (batcher.busy || batcher.queued) void batcher.idle().then(forget);
      else if (this.pending.get(sig) === batcher) this.pending.delete(sig);
    };
    void batcher.idle().then(forget);
    return answer;
  }

  /** Distinct member txns being read (for tests). */
  get size(): number {
    return this.pending.size;
  }
}

/** The request as a string; bytes as latin1 (one char per byte) and int64s, tagged apart from strings. */
function signature(req: object): string {
  return JSON.stringify(req, function (this: Record<string, unknown>, k: string, v: unknown) {
    const raw = this[k];
    if (raw instanceof Uint8Array) return `\u0001${Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('latin1')}`;
    return typeof v === 'bigint' ? `\u0002${v}` : v;
  });
}
