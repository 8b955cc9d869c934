/**
 * Advances a lagging shard's watermark so that the merged stream can release revisions other
 * shards already hold (DESIGN invariant 3). First the shard's owner is asked to vouch: it names
 * a member revision M by which every write at or below the target has landed (no write at
 * all; the watermark moves once the feed has read through M). When the owner cannot be asked
 * (none, or unreachable), a fence write raises the shard's clock instead. Issued only on
 * request (someone waits), at most one in flight per shard; requests that arrive meanwhile are
 * folded into the next one.
 */
import type { Logger } from 'pino';
import type { Shard } from '../shard/shard.js';

const RETRY_MS = 250;

export class Fencer {
  private readonly wanted: bigint[];
  private readonly busy: boolean[];
  private closed = false;

  constructor(
    private readonly shards: readonly Shard[],
    /** Where the merged stream has seen each shard's clock. */
    private readonly watermark: (shard: number) => bigint,
    private readonly log: Logger,
    /** The owner's word for a target (member revision M), or null: fence instead. */
    private readonly vouch: (shard: number, target: bigint) => Promise<bigint | null> = async () => null,
    /** Called with a vouched target and the member revision the feed must read through first. */
    private readonly onVouched: (shard: number, target: bigint, memberRev: bigint) => void = () => undefined,
  ) {
    this.wanted = shards.map(() => 0n);
    this.busy = shards.map(() => false);
  }

  request(shard: number, target: bigint): void {
    if (target > this.wanted[shard]) this.wanted[shard] = target;
    if (!this.busy[shard]) void this.run(shard);
  }

  close(): void {
    this.closed = true;
  }

  private async run(i: number): Promise<void> {
    this.busy[i] = true;
    let done = 0n;
    while (!this.closed && this.wanted[i] > done && this.wanted[i] > this.watermark(i)) {
      const target = this.wanted[i];
      const vouched = await this.vouch(i, target).catch(() => null);
      if (vouched !== null) {
        this.onVouched(i, target, vouched);
        done = target;
        continue;
      }
      try {
        // Success or not, the shard's clock is now >= target; the member watch will show it.
        await this.shards[i].fenceAndRead(target, []);
        done = target;
      } catch (err) {
        this.log.warn({ shard: this.shards[i].name, err: (err as Error).message }, 'fence write failed; retrying');
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
    this.busy[i] = false;
  }
}
