/**
 * One memory budget (limits.memoryBudgetBytes) shared by what a client or an outage can make
 * the proxy hold: responses in flight (reserved before they are built, released once written
 * or cancelled), watch events queued for client streams, and events held for a shard that is
 * down. Responses ask for room and wait their turn in arrival order, or get etcd's "too many
 * requests"; watch queues and held events are charged as they grow and their owners shed them
 * (slow watchers resync, held events are re-read) when `over` says the budget is spent. Small
 * responses never wait: single keys and small pages keep being answered under load.
 */
import { Errors } from '../etcd/errors.js';
import { budgetBytes, budgetRejections, budgetWaits } from '../metrics/registry.js';
import { tally } from '../metrics/tally.js';

/**
 * Responses may wait for up to this many budgets' worth of bytes: a waiting read holds next to
 * nothing (its size, a list of references), and a longer queue would only wait past its time.
 */
const WAITING_BUDGETS = 8;

export type BudgetUse = 'responses' | 'watch' | 'held' | 'load';

export interface BudgetOptions {
  /** Responses up to this size are granted at once, whatever is in use. */
  smallBytes: number;
  /** How long a response waits for room before "too many requests" (ms). */
  waitMs: number;
}

interface Waiter {
  bytes: number;
  grant: (r: Reservation) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Bytes reserved for one response; released once (idempotent). */
export class Reservation {
  private done = false;

  constructor(
    private readonly budget: MemoryBudget,
    private bytes_: number,
    /** Granted above the small-response size: a read that may grow (member pages). */
    readonly big: boolean,
  ) {}

  get bytes(): number {
    return this.bytes_;
  }

  /** The response turned out to be `bytes` (known once the members answered): charged as is. */
  resize(bytes: number): void {
    if (this.done) return;
    this.budget.charge('responses', bytes - this.bytes_);
    this.bytes_ = bytes;
  }

  /**
   * Grows the reservation to `bytes` without waiting (a read in progress already holds its
   * pages): true when that fits the budget, or when this is the only big response in flight
   * (one answer larger than the whole budget still goes, alone); false otherwise.
   */
  growTo(bytes: number): boolean {
    if (this.done || bytes <= this.bytes_) return true;
    if (!this.budget.canGrow(bytes - this.bytes_, this)) return false;
    this.budget.charge('responses', bytes - this.bytes_);
    this.bytes_ = bytes;
    return true;
  }

  release(): void {
    if (this.done) return;
    this.done = true;
    this.budget.ended(this);
    this.budget.release('responses', this.bytes_);
  }
}

export class MemoryBudget {
  private readonly used: Record<BudgetUse, number> = { responses: 0, watch: 0, held: 0, load: 0 };
  /** Big responses in flight (granted above the small size). */
  private bigInFlight = 0;
  private total = 0;
  private readonly waiters: Waiter[] = [];
  private waitingBytes = 0;
  private readonly listeners = new Set<() => void>();
  /** Tallies of the gauge (metrics/tally.ts): every read charges and releases. */
  private readonly gauges = {
    responses: tally(budgetBytes, { use: 'responses' }),
    watch: tally(budgetBytes, { use: 'watch' }),
    held: tally(budgetBytes, { use: 'held' }),
    load: tally(budgetBytes, { use: 'load' }),
  };

  constructor(
    readonly limit: number,
    readonly opts: BudgetOptions,
  ) {
    // inc/dec, not set: budgets of several proxies in one process (tests) add up.
    budgetBytes.inc({ use: 'limit' }, limit);
  }

  get inUse(): number {
    return this.total;
  }

  /** True when what is held exceeds the budget: holders of watch and held bytes shed some. */
  get over(): boolean {
    return this.total > this.limit;
  }

  usedBy(use: BudgetUse): number {
    return this.used[use];
  }

  /** Bytes that can still be charged before the budget is spent. */
  get room(): number {
    return Math.max(0, this.limit - this.total);
  }

  charge(use: BudgetUse, bytes: number): void {
    if (bytes === 0) return;
    this.used[use] += bytes;
    this.total += bytes;
    this.gauges[use].inc(bytes);
  }

  release(use: BudgetUse, bytes: number): void {
    this.charge(use, -bytes);
    if (bytes > 0) this.wake();
  }

  /** Called whenever bytes were released (a watcher or the merger may resume). */
  onRelease(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /**
   * Room for a response of `bytes`: at once when it is small or fits (or when no other response
   * is in flight: a response larger than the whole budget goes alone), else after the responses
   * before it were written. Rejects with etcd's "too many requests" when more than
   * WAITING_BUDGETS budgets' worth is already waiting or the wait exceeds `waitMs`, and with `signal`'s reason when the
   * call is cancelled meanwhile.
   */
  reserve(bytes: number, signal?: AbortSignal): Promise<Reservation> {
    if (bytes <= this.opts.smallBytes || (this.waiters.length === 0 && this.fits(bytes))) return Promise.resolve(this.grant(bytes));
    if (this.waitingBytes + bytes > WAITING_BUDGETS * this.limit && this.waiters.length > 0) {
      budgetRejections.inc();
      return Promise.reject(Errors.tooManyRequests());
    }
    budgetWaits.inc();
    return new Promise<Reservation>((resolve, reject) => {
      const w: Waiter = {
        bytes,
        grant: resolve,
        reject,
        timer: setTimeout(() => {
          if (this.drop(w)) {
            budgetRejections.inc();
            reject(Errors.tooManyRequests());
          }
        }, this.opts.waitMs),
      };
      this.waiters.push(w);
      this.waitingBytes += bytes;
      signal?.addEventListener(
        'abort',
        () => {
          if (this.drop(w)) reject(Errors.cancelled());
        },
        { once: true },
      );
    });
  }

  /** Room for a response that cannot wait (its bytes are in memory already): charged at once. */
  reserveNow(bytes: number): Reservation {
    return this.grant(bytes);
  }

  /** Grants waiting responses in order while the first one fits; tells the listeners. */
  wake(): void {
    while (this.waiters.length && this.fits(this.waiters[0].bytes)) {
      const w = this.waiters.shift() as Waiter;
      this.waitingBytes -= w.bytes;
      clearTimeout(w.timer);
      w.grant(this.grant(w.bytes));
    }
    if (!this.over) for (const f of this.listeners) f();
  }

  /** True when `r` may grow by `bytes` now (growTo). */
  canGrow(bytes: number, r: Reservation): boolean {
    return this.total + bytes <= this.limit || (r.big && this.bigInFlight === 1);
  }

  /** A reservation was released. */
  ended(r: Reservation): void {
    if (r.big) this.bigInFlight--;
  }

  private fits(bytes: number): boolean {
    return this.total + bytes <= this.limit || this.used.responses === 0;
  }

  private grant(bytes: number): Reservation {
    this.charge('responses', bytes);
    const big = bytes > this.opts.smallBytes;
    if (big) this.bigInFlight++;
    return new Reservation(this, bytes, big);
  }

  private drop(w: Waiter): boolean {
    const i = this.waiters.indexOf(w);
    if (i < 0) return false;
    this.waiters.splice(i, 1);
    this.waitingBytes -= w.bytes;
    clearTimeout(w.timer);
    // The one behind it may fit now.
    this.wake();
    return true;
  }
}
