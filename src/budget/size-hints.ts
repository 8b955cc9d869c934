/**
 * The last answer size of recent member reads, by range: a member answer's size is known only
 * once it arrived, so a read asks the budget for what the same range took last time before it
 * asks the members. A range not seen yet is read by one request at a time (the probe), which
 * asks for `unknown` (a quarter of the budget): reads of the same range that arrive meanwhile
 * wait for the probe's size instead of guessing too (without that, a first wave of identical
 * whole-keyspace Ranges held up to four answers beyond the budget). Bounded: the oldest hints
 * go first.
 */
import { Errors } from '../etcd/errors.js';

const MAX_HINTS = 1024;

/** What to reserve before a member read, and what to call once its size is known (or it failed). */
export interface SizeEstimate {
  bytes: number;
  /** Records the answer's size (null: the read failed, the next read of the range probes again). */
  settle(bytes: number | null): void;
}

export class SizeHints {
  private readonly sizes = new Map<string, number>();
  /** Ranges not seen yet whose probe is in flight, with the reads waiting for it. */
  private readonly probes = new Map<string, Array<() => void>>();

  constructor(
    private readonly floor: number,
    private readonly unknown: number,
  ) {}

  /** The bytes to reserve before reading [key, end); waits while another read probes the range. */
  async estimate(key: Buffer, end: Buffer, signal?: AbortSignal): Promise<SizeEstimate> {
    const k = hintKey(key, end);
    for (;;) {
      const known = this.sizes.get(k);
      if (known !== undefined) return { bytes: Math.max(this.floor, known), settle: this.settler(k, false) };
      const waiting = this.probes.get(k);
      if (!waiting) {
        this.probes.set(k, []);
        return { bytes: Math.max(this.floor, this.unknown), settle: this.settler(k, true) };
      }
      await new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(Errors.cancelled());
        const onAbort = () => reject(Errors.cancelled());
        signal?.addEventListener('abort', onAbort, { once: true });
        waiting.push(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
  }

  /** settle() for one read: only its first call counts. */
  private settler(k: string, probe: boolean): (bytes: number | null) => void {
    let done = false;
    return (bytes) => {
      if (done) return;
      done = true;
      this.settle(k, bytes, probe);
    };
  }

  private settle(k: string, bytes: number | null, probe: boolean): void {
    if (bytes !== null) {
      this.sizes.delete(k);
      this.sizes.set(k, bytes);
      if (this.sizes.size > MAX_HINTS) this.sizes.delete(this.sizes.keys().next().value as string);
    }
    if (!probe) return;
    const waiting = this.probes.get(k) ?? [];
    this.probes.delete(k);
    for (const wake of waiting) wake();
  }
}

function hintKey(key: Buffer, end: Buffer): string {
  return `${key.toString('latin1')}\u0100${end.toString('latin1')}`;
}
