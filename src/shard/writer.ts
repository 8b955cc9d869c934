/**
 * Group commit per shard. Concurrent writes to one shard are combined into one member txn, one
 * batch in flight at a time, so the member applies them in revision order (separate member
 * txns sent concurrently can be applied out of order, and the fence would then reject every
 * one that lost the race):
 *
 *   If(clock < R1)
 *   Then(Range clock, Put clock=Rk,
 *        Txn{If(pins1) Then(ops1 at R1, Put rev/0=R1) Else(reads1)}, ...,
 *        Txn{If(pinsk) Then(opsk at Rk, Put rev/k-1=Rk) Else(readsk)})
 *   Else(Range clock)
 *
 * Each write keeps its own meta revision (R1..Rk, consecutive). The rev/<slot> marker closes
 * each write's events in the member's watch stream, so a decoder can tell which meta revision
 * every event (deletes included) belongs to. A write whose pins fail gets its fresh state back
 * to re-plan; a batch whose fence fails (another proxy wrote first) is re-sent with new revisions.
 */
import type { Compare, RequestOp, ResponseOp } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { memberWrites, writeRetries } from '../metrics/registry.js';
import { encodeClock } from './envelope.js';
import { sysKey } from './keyspace.js';
import { CLOCK_KEY, clockOf, cmp, putOp, rangeOp } from './shard.js';
import { innermost, pinned, txnNeed } from './pin-chain.js';
import type { Upstream } from './upstream.js';

const markerKeys: Buffer[] = [];

export function markerKey(slot: number): Buffer {
  return (markerKeys[slot] ??= sysKey(`rev/${slot}`));
}

export interface MemberLimits {
  maxTxnOps: number;
  maxRequestBytes: number;
}

/** One client write, ready to be placed in a batch at any revision. */
export interface WriteJob {
  /** Member ops for revision `rev` (envelopes carry it). */
  ops(rev: bigint): RequestOp[];
  pins: Compare[];
  /** Reads returned when a pin fails, to re-plan on. */
  elseOps: RequestOp[];
  /**
   * Member keys the write's plan read or writes (latin1). Compares are evaluated on the state
   * before the batch, so a write may not join a batch in which an earlier write touches a key
   * it depends on. Null when it reads or writes a whole range: it is batched alone.
   */
  keys: string[] | null;
  /**
   * It deletes. Such a write closes its batch: then every key a batch deletes was deleted at
   * the batch's last revision, which lets a read at a revision inside a batch be exact from the
   * member states before and after it (see revmap.ts).
   */
  deletes: boolean;
  /** Rough encoded size, for the member's request size limit. */
  bytes: number;
}

export type WriteResult =
  | { applied: true; rev: bigint; before: bigint; memberRev: bigint; responses: ResponseOp[] }
  /** `responses` are the job's else reads, or empty when a deeper pin failed (read the state anew). */
  | { applied: false; clock: bigint; memberRev: bigint; responses: ResponseOp[] };

interface Pending {
  job: WriteJob;
  /** Arrival order of the client write (kept across its retries). */
  ticket: number;
  /** txnNeed of its sub-txn in a batch. */
  need: number;
  resolve: (r: WriteResult) => void;
  reject: (err: unknown) => void;
}

interface Allocated {
  batch: Pending[];
  first: bigint;
  error?: unknown;
}

/** Top-level Then holds Range clock + Put clock + one nested txn per write. */
const TOP_FIXED_OPS = 2;
const BYTES_MARGIN = 16 * 1024;

export class ShardWriter {
  private queue: Pending[] = [];
  private running = false;
  private tickets = 0;

  constructor(
    private readonly shardName: string,
    private readonly upstream: Upstream,
    private readonly allocate: (count: number) => Promise<bigint>,
    private readonly limits: MemberLimits,
  ) {}

  /** A place in line for a client write, kept across its retries. */
  ticket(): number {
    return ++this.tickets;
  }

  /**
   * `sample` is job.ops at any revision (only its shape counts), to size the job's sub-txn.
   * Writes queue in ticket order: a write retried after a failed pin keeps its place ahead of
   * later ones, so writes contending for one hot key are served oldest first (none starves).
   */
  submit(job: WriteJob, sample: RequestOp[], ticket = this.ticket()): Promise<WriteResult> {
    return new Promise((resolve, reject) => {
      const need = txnNeed(pinned(job.pins, [...sample, putOp(markerKey(0), encodeClock(0n))], job.elseOps));
      const p: Pending = { job, ticket, need, resolve, reject };
      let i = this.queue.length;
      while (i > 0 && this.queue[i - 1].ticket > ticket) i--;
      this.queue.splice(i, 0, p);
      if (!this.running) void this.run();
    });
  }

  /**
   * One batch in flight at a time; the next batch's revisions are allocated while it flies
   * (allocated later, so they are higher), which hides the coordinator round trip.
   */
  private async run(): Promise<void> {
    this.running = true;
    let next: Promise<Allocated> | null = null;
    while (next || this.queue.length) {
      const cur: Allocated = await (next ?? this.allocateFor(this.take()));
      next = null;
      if (cur.error !== undefined) {
        for (const p of cur.batch) p.reject(cur.error);
        continue;
      }
      const sending = this.send(cur.batch, cur.first);
      if (this.queue.length) next = this.allocateFor(this.take());
      try {
        if (!(await sending)) {
          // Another proxy's write or a fence moved the clock past R1: same plans, new revisions.
          writeRetries.inc({ reason: 'fence' }, cur.batch.length);
          this.queue.unshift(...cur.batch);
        }
      } catch (err) {
        for (const p of cur.batch) p.reject(err);
      }
    }
    this.running = false;
  }

  private allocateFor(batch: Pending[]): Promise<Allocated> {
    return this.allocate(batch.length).then(
      (first) => ({ batch, first }),
      (error: unknown) => ({ batch, first: 0n, error }),
    );
  }

  /** The longest prefix of the queue that fits one member txn with disjoint keys. */
  private take(): Pending[] {
    const batch: Pending[] = [];
    const keys = new Set<string>();
    let bytes = 0;
    let widest = 0;
    while (this.queue.length) {
      const p = this.queue[0];
      const j = p.job;
      if (batch.length > 0) {
        if (j.keys === null || batch.some((b) => b.job.keys === null)) break;
        if (j.keys.some((k) => keys.has(k))) break;
        const w = Math.max(widest, p.need);
        if (TOP_FIXED_OPS + batch.length + 1 + w > this.limits.maxTxnOps) break;
        if (bytes + j.bytes > this.limits.maxRequestBytes - BYTES_MARGIN) break;
      }
      this.queue.shift();
      batch.push(p);
      if (j.deletes) break;
      for (const k of j.keys ?? []) keys.add(k);
      bytes += j.bytes;
      widest = Math.max(widest, p.need);
    }
    return batch;
  }

  /** Sends one batch at revisions first..; false when its fence failed (nothing applied). */
  private async send(batch: Pending[], first: bigint): Promise<boolean> {
    const last = first + BigInt(batch.length - 1);
    const subs: RequestOp[] = batch.map((p, i) => {
      const rev = first + BigInt(i);
      return { request_txn: pinned(p.job.pins, [...p.job.ops(rev), putOp(markerKey(i), encodeClock(rev))], p.job.elseOps) };
    });
    memberWrites.inc({ shard: this.shardName });
    const res = await this.upstream.txn(
      {
        compare: [cmp(CompareTarget.VALUE, CompareResult.LESS, CLOCK_KEY, { value: encodeClock(first) })],
        success: [rangeOp(CLOCK_KEY), putOp(CLOCK_KEY, encodeClock(last)), ...subs],
        failure: [rangeOp(CLOCK_KEY)],
      },
      false,
    );
    if (!res.succeeded) return false;
    const before = clockOf(res, 0).clock;
    const memberRev = BigInt(res.header?.revision ?? '0');
    batch.forEach((p, i) => {
      const outer = res.responses[TOP_FIXED_OPS + i]?.response_txn;
      const sub = innermost(outer);
      if (sub?.succeeded) {
        const responses = sub.responses.slice(0, sub.responses.length - 1);
        // Earlier writes of the batch are visible to this one: it stands just after them.
        const stand = first + BigInt(i) - 1n;
        p.resolve({ applied: true, rev: first + BigInt(i), before: stand > before ? stand : before, memberRev, responses });
      } else {
        p.resolve({ applied: false, clock: last, memberRev, responses: outer && !outer.succeeded ? outer.responses : [] });
      }
    });
    return true;
  }
}
