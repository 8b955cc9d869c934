/**
 * Group commit / single flight, the one shape behind the proxy's coalescing queues: callers
 * submit; while a batch is in flight, new callers queue and join the next batch; one batch runs
 * at a time, and its runner gets every waiter of the batch to settle (so a call joined after a
 * batch started always gets a result produced after it asked: what linearizable reads need).
 *
 * The runner settles each waiter (resolve or reject), or hands some back with requeue() (a write
 * whose pin failed keeps its place ahead of newer ones). If the runner throws, the waiters it
 * left unsettled get the error; a waiter it forgot gets an error too, so no caller hangs.
 */

export interface Waiter<In, Out> {
  readonly item: In;
  resolve(value: Out): void;
  reject(err: unknown): void;
  /** True once resolved, rejected or requeued. */
  readonly settled: boolean;
}

export interface BatcherOptions<In> {
  /**
   * How many waiters from the head of the queue make the next batch (default: all of them);
   * at least one is always taken. E.g. as many as fit one member txn.
   */
  take?: (queued: readonly In[]) => number;
  /**
   * Awaited before each batch is taken, while new callers may still join it (a linger that
   * lets a slow upstream's next call carry more callers). Called only when something is queued.
   */
  beforeBatch?: () => Promise<void>;
}

class Entry<In, Out> implements Waiter<In, Out> {
  settled = false;

  constructor(
    readonly item: In,
    private readonly done: (v: Out) => void,
    private readonly fail: (err: unknown) => void,
  ) {}

  resolve(value: Out): void {
    if (this.settled) return;
    this.settled = true;
    this.done(value);
  }

  reject(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.fail(err);
  }

  /** The same caller, as a new waiter (this one counts as settled). */
  requeued(): Entry<In, Out> {
    this.settled = true;
    return new Entry(this.item, this.done, this.fail);
  }
}

export class Batcher<In, Out> {
  private queue: Entry<In, Out>[] = [];
  private running = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly run: (batch: Waiter<In, Out>[]) => Promise<void>,
    private readonly opts: BatcherOptions<In> = {},
  ) {}

  /** Queues `item` for the next batch; resolves with what the runner gives it. */
  submit(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push(new Entry(item, resolve, reject));
      if (!this.running) void this.loop();
    });
  }

  /**
   * Puts waiters of the batch in flight back at the head of the queue, in the given order and
   * ahead of every newer caller; they go in the next batch. Only from inside the runner.
   */
  requeue(waiters: readonly Waiter<In, Out>[]): void {
    const back = waiters.filter((w): w is Entry<In, Out> => w instanceof Entry && !w.settled);
    this.queue.unshift(...back.map((w) => w.requeued()));
  }

  /** Rejects the queued (not yet in flight) waiters whose item matches; returns how many. */
  drop(match: (item: In) => boolean, err: unknown): number {
    const gone = this.queue.filter((w) => match(w.item));
    if (!gone.length) return 0;
    this.queue = this.queue.filter((w) => !match(w.item));
    for (const w of gone) w.reject(err);
    return gone.length;
  }

  /** Waiters queued for the next batch. */
  get queued(): number {
    return this.queue.length;
  }

  /** A batch is in flight (or being taken). */
  get busy(): boolean {
    return this.running;
  }

  /** Resolves once nothing is queued or in flight. */
  idle(): Promise<void> {
    if (!this.running && !this.queue.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length) {
        if (this.opts.beforeBatch) {
          try {
            await this.opts.beforeBatch();
          } catch {
            // A linger that fails only loses its wait.
          }
        }
        const batch = this.queue.splice(0, this.takeCount());
        try {
          await this.run(batch);
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
        // Made only when needed: an Error captures a stack, once per batch on every queue.
        if (batch.some((w) => !w.settled)) {
          const forgotten = new Error('batcher: the batch runner left a waiter unsettled');
          for (const w of batch) w.reject(forgotten);
        }
      }
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of waiters) f();
    }
  }

  private takeCount(): number {
    if (!this.opts.take) return this.queue.length;
    const n = this.opts.take(this.queue.map((w) => w.item));
    return Math.max(1, Math.min(this.queue.length, Math.floor(n)));
  }
}

/**
 * `read` made single-flight: a call while a read is in flight shares the next read with every
 * other caller that arrived meanwhile (each gets a value read after it asked).
 */
export function coalesced<T>(read: () => Promise<T>): () => Promise<T> {
  const batcher = new Batcher<null, T>(async (batch) => {
    const v = await read();
    for (const w of batch) w.resolve(v);
  });
  return () => batcher.submit(null);
}
