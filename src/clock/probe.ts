/**
 * Coalesced reads of the coordinator clock (alone, or with what is read in the same txn): every
 * caller gets a value read after it asked (so it covers every write acknowledged before), and
 * callers that ask while a read is in flight share the next one. Used to answer "how far must
 * the merged stream be" (linearizable reads from the cache, RequestProgress, progress
 * notifications) with one coordinator call for many callers.
 */
export class ClockProbe<T = bigint> {
  private waiting: Array<{ resolve: (v: T) => void; reject: (e: unknown) => void }> = [];
  private inFlight = false;

  constructor(private readonly readClock: () => Promise<T>) {}

  read(): Promise<T> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.inFlight) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.inFlight = true;
    while (this.waiting.length) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        const v = await this.readClock();
        for (const w of batch) w.resolve(v);
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.inFlight = false;
  }
}
