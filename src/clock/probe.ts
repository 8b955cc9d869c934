/**
 * Coalesced reads of the coordinator clock (alone, or with what is read in the same txn): every
 * caller gets a value read after it asked (so it covers every write acknowledged before), and
 * callers that ask while a read is in flight share the next one (batching/batcher.ts). Used to
 * answer "how far must the merged stream be" (linearizable reads from the cache,
 * RequestProgress, progress notifications) with one coordinator call for many callers.
 */
import { coalesced } from '../batching/batcher.js';

export class ClockProbe<T = bigint> {
  /** One coordinator read at a time; callers meanwhile share the next. */
  readonly read: () => Promise<T>;

  constructor(readClock: () => Promise<T>) {
    this.read = coalesced(readClock);
  }
}
