/**
 * Applies source revisions to one shard, in order, as the proxy's own writer would have written
 * them: each member txn puts the shard clock first (the batch's last revision), then the writes;
 * a put's envelope carries its own revision, and a revision that deletes closes its batch (the
 * watch decoder dates deletes by the clock). A source revision is never split over member
 * txns, so one that does not fit the members' limits stops the import with a clear error.
 *
 * Every txn requires the clock to be exactly what this applier last wrote: the importer is the
 * shard's only writer (proxies refuse to start while the import marker is in place), and
 * anything else is a conflict that stops the import. Revisions at or below the shard's clock
 * are already there (an earlier run of the import applied them) and are skipped.
 */
import { CompareResult, CompareTarget, type RequestOp } from '../etcd/types.js';
import { decodeClock, encodeClock } from '../shard/envelope.js';
import { CLOCK_KEY } from '../shard/keyspace.js';
import { cmp, putOp, rangeOp } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';
import type { MemberLimits } from '../shard/writer.js';
import { deleteRangeOp, type MemberWrite } from './member-writes.js';

export interface RevisionWrites {
  rev: bigint;
  writes: MemberWrite[];
}

/** Someone else wrote to a shard during the import, or a revision cannot be written. */
export class ImportConflict extends Error {
  override readonly name = 'ImportConflict';
}

const TXN_MARGIN = 4096;

interface Batch {
  first: bigint;
  last: bigint;
  ops: RequestOp[];
  keys: Set<string>;
  bytes: number;
  closed: boolean;
}

export class ShardApplier {
  /** Member txns sent. */
  txns = 0;

  constructor(
    readonly name: string,
    private readonly upstream: Upstream,
    private readonly limits: MemberLimits,
    /** The shard clock: the last source revision this shard holds. */
    public clock: bigint,
  ) {}

  /** Reads the shard clock as it stands (at start, or after a restart). */
  static async open(name: string, upstream: Upstream, limits: MemberLimits): Promise<ShardApplier> {
    const res = await upstream.txn({ compare: [], success: [rangeOp(CLOCK_KEY)], failure: [] }, true);
    return new ShardApplier(name, upstream, limits, decodeClock(res.responses[0]?.response_range?.kvs[0]?.value));
  }

  /**
   * The current member values of `keys` (latin1 member key to value, null for a key the shard
   * does not hold), read in read-only txns within the members' limits.
   */
  async read(keys: Buffer[]): Promise<Map<string, Buffer | null>> {
    const out = new Map<string, Buffer | null>();
    const per = Math.max(1, this.limits.maxTxnOps);
    for (let at = 0; at < keys.length; at += per) {
      const part = keys.slice(at, at + per);
      const res = await this.upstream.txn({ compare: [], success: part.map((k) => rangeOp(k)), failure: [] }, true);
      part.forEach((k, i) => out.set(k.toString('latin1'), res.responses[i]?.response_range?.kvs[0]?.value ?? null));
    }
    return out;
  }

  /** Writes `revs` (ascending) that this shard does not hold yet. */
  async apply(revs: RevisionWrites[]): Promise<void> {
    const maxOps = this.limits.maxTxnOps - 1;
    const maxBytes = this.limits.maxRequestBytes - TXN_MARGIN;
    let batch: Batch | null = null;
    for (const r of revs) {
      if (r.rev <= this.clock || !r.writes.length) continue;
      const ops = r.writes.reduce((n, w) => n + w.ops.length, 0);
      const bytes = r.writes.reduce((n, w) => n + w.bytes, 0);
      if (ops > maxOps && r.writes.every((w) => w.deletes)) {
        // A large range delete (etcdctl del --prefix): as few member range deletes as the keys allow.
        if (batch) await this.send(batch);
        batch = null;
        const runs = await this.deleteRuns(r.writes);
        if (runs.length <= maxOps) {
          await this.send({ first: r.rev, last: r.rev, ops: runs, keys: new Set(), bytes: 0, closed: true });
          continue;
        }
      }
      if (ops > maxOps || bytes > maxBytes) {
        throw new ImportConflict(
          `source revision ${r.rev} needs ${ops} member ops and ${bytes} bytes in shard ${this.name}, over the members' limits ` +
            `(maxTxnOps ${this.limits.maxTxnOps}, maxRequestBytes ${this.limits.maxRequestBytes}): raise the members' --max-txn-ops/--max-request-bytes and memberLimits, then run the import again`,
        );
      }
      const keys = r.writes.flatMap((w) => w.keys);
      if (batch && (batch.closed || batch.ops.length + ops > maxOps || batch.bytes + bytes > maxBytes || keys.some((k) => batch!.keys.has(k)))) {
        await this.send(batch);
        batch = null;
      }
      batch ??= { first: r.rev, last: r.rev, ops: [], keys: new Set(), bytes: 0, closed: false };
      for (const w of r.writes) batch.ops.push(...w.ops);
      for (const k of keys) batch.keys.add(k);
      batch.bytes += bytes;
      batch.last = r.rev;
      if (r.writes.some((w) => w.deletes)) batch.closed = true;
    }
    if (batch) await this.send(batch);
  }

  /**
   * The keys a source revision deletes, as member range deletes of runs of consecutive member
   * keys (read now: the importer is the only writer and every earlier revision was sent). The
   * member deletes them in key order, as etcd's DeleteRange does. Their lease index entries stay
   * behind: an entry is only a hint, checked against the key's envelope (lease/keys.ts).
   */
  private async deleteRuns(writes: MemberWrite[]): Promise<RequestOp[]> {
    const doomed = writes.map((w) => w.ops[0].request_delete_range!.key).sort(Buffer.compare);
    const first = doomed[0];
    const end = Buffer.concat([doomed[doomed.length - 1], Buffer.from([0])]);
    const res = await this.upstream.range({ key: first, range_end: end, keys_only: true });
    const ops: RequestOp[] = [];
    let i = 0;
    let runStart: Buffer | null = null;
    let runLast: Buffer | null = null;
    const close = () => {
      if (runStart && runLast) ops.push(deleteRangeOp(runStart, Buffer.concat([runLast, Buffer.from([0])])));
      runStart = runLast = null;
    };
    for (const kv of res.kvs) {
      if (i < doomed.length && kv.key.equals(doomed[i])) {
        runStart ??= kv.key;
        runLast = kv.key;
        i++;
      } else close();
    }
    close();
    if (i !== doomed.length) throw new ImportConflict(`shard ${this.name}: a source delete names keys the shard does not hold: it is not the source's copy`);
    return ops;
  }

  /**
   * Sends one batch. A write whose outcome is unknown (the member did not answer) is settled by
   * reading the clock: the batch landed if the clock is its last revision, else it is sent again.
   */
  private async send(b: Batch): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.sendOnce(b);
      } catch (err) {
        if (err instanceof ImportConflict || attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 200 * attempt));
        const now = await ShardApplier.open(this.name, this.upstream, this.limits).catch(() => null);
        if (now?.clock === b.last) {
          this.clock = b.last;
          return;
        }
      }
    }
  }

  private async sendOnce(b: Batch): Promise<void> {
    const res = await this.upstream.txn(
      {
        compare: [cmp(CompareTarget.VALUE, CompareResult.EQUAL, CLOCK_KEY, { value: encodeClock(this.clock) })],
        success: [putOp(CLOCK_KEY, encodeClock(b.last)), ...b.ops],
        failure: [rangeOp(CLOCK_KEY)],
      },
      false,
    );
    this.txns++;
    if (!res.succeeded) {
      const found = decodeClock(res.responses[0]?.response_range?.kvs[0]?.value);
      throw new ImportConflict(`shard ${this.name}: its clock is ${found}, expected ${this.clock}: something else writes to it (a proxy, or another import)`);
    }
    this.clock = b.last;
  }
}
