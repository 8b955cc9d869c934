/**
 * The state a transaction's evaluation depends on, read from one shard in one member txn:
 * every key it compares or puts, every range it compares, and whether its deletes hit anything.
 */
import type { Compare, RequestOp, TxnRequest, TxnResponse } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import type { Keyspace, MemberRange } from '../shard/keyspace.js';
import type { MetaKV } from '../shard/meta-kv.js';
import { fromMember } from '../shard/meta-kv.js';
import { CLOCK_KEY } from '../shard/keyspace.js';
import { clockEquals } from '../shard/shard.js';
import { cmp, rangeOp } from '../upstream/ops.js';
import type { StateHints } from './hints.js';

type Read =
  | { kind: 'key'; id: string; key: Buffer }
  | { kind: 'range'; id: string; range: MemberRange | null }
  | { kind: 'count'; id: string; range: MemberRange | null };

/**
 * Compared ranges up to this many keys are pinned key by key (the writer chains pins over
 * nested txn levels); larger ones pin the shard clock, which any write to the shard breaks.
 */
const RANGE_PIN_KEYS = 512;

const PLACEHOLDER_READ = rangeOp(CLOCK_KEY, Buffer.alloc(0), { count_only: true });

/** Identifies a (key, range_end) pair; the length prefix keeps keys containing 0x00 apart. */
export function rangeId(key: Buffer, end: Buffer): string {
  return `${key.length}:${key.toString('latin1')}${end.toString('latin1')}`;
}

/** What to read for a txn (both branches, nested txns included: the path is not known yet). */
export class StateReads {
  readonly reads: Read[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly ks: Keyspace) {}

  static forTxn(txn: TxnRequest, ks: Keyspace): StateReads {
    const s = new StateReads(ks);
    s.addTxn(txn);
    return s;
  }

  private add(r: Read): void {
    const tag = `${r.kind}:${r.id}`;
    if (this.seen.has(tag)) return;
    this.seen.add(tag);
    this.reads.push(r);
  }

  private addKey(key: Buffer): void {
    this.add({ kind: 'key', id: key.toString('latin1'), key });
  }

  private addTxn(txn: TxnRequest): void {
    for (const c of txn.compare) {
      if (c.range_end.length === 0) this.addKey(c.key);
      else this.add({ kind: 'range', id: rangeId(c.key, c.range_end), range: this.ks.toMemberRange(c.key, c.range_end) });
    }
    for (const op of [...txn.success, ...txn.failure]) this.addOp(op);
  }

  private addOp(op: RequestOp): void {
    if (op.request_put) this.addKey(op.request_put.key);
    else if (op.request_delete_range) {
      const d = op.request_delete_range;
      if (d.range_end.length === 0) this.addKey(d.key);
      else this.add({ kind: 'count', id: rangeId(d.key, d.range_end), range: this.ks.toMemberRange(d.key, d.range_end) });
    } else if (op.request_txn) this.addTxn(op.request_txn);
  }

  /**
   * Member read ops, in `reads` order. A read that can select nothing (a reserved key, an
   * empty range) keeps its place with a count of the clock; parse() ignores its answer.
   */
  memberOps(): RequestOp[] {
    return this.reads.map((r) => {
      if (r.kind === 'key') return this.ks.writable(r.key) ? rangeOp(this.ks.toMember(r.key)) : PLACEHOLDER_READ;
      if (!r.range) return PLACEHOLDER_READ;
      return rangeOp(r.range.start, r.range.end, { count_only: r.kind === 'count' });
    });
  }

  /**
   * Member keys this plan depends on, for batching (see shard/writer.ts); null when it reads or
   * deletes a whole range.
   */
  batchKeys(): string[] | null {
    if (this.reads.some((r) => r.kind !== 'key')) return null;
    return this.reads.map((r) => (r.kind === 'key' ? this.ks.toMember(r.key).toString('latin1') : ''));
  }

  /**
   * The state from hints alone, when the txn only depends on single keys and every one is
   * known (or, with guessAbsent, unknown keys are taken as missing). Null when it cannot.
   */
  fromHints(hints: StateHints, guessAbsent: boolean): TxnState | null {
    const keys = new Map<string, MetaKV | null>();
    for (const r of this.reads) {
      if (r.kind !== 'key' || !this.ks.writable(r.key)) return null;
      const h = hints.get(this.ks.toMember(r.key).toString('latin1'));
      if (h === undefined && !guessAbsent) return null;
      keys.set(r.id, h ?? null);
    }
    return new TxnState(0n, 0n, keys, new Map(), new Map(), false);
  }

  /** Remembers what a read returned, for later writes of the same keys. */
  remember(state: TxnState, hints: StateHints): void {
    for (const r of this.reads) {
      if (r.kind === 'key' && this.ks.writable(r.key)) hints.set(this.ks.toMember(r.key).toString('latin1'), state.keys.get(r.id) ?? null, state.memberRev);
    }
  }

  /** `verified`: read at a linearizable point (a guess otherwise: see TxnState.verified). */
  parse(responses: TxnResponse['responses'], clock: bigint, memberRev: bigint, verified: boolean): TxnState {
    const keys = new Map<string, MetaKV | null>();
    const ranges = new Map<string, MetaKV[]>();
    const counts = new Map<string, bigint>();
    this.reads.forEach((r, i) => {
      const rr = responses[i]?.response_range;
      const empty = r.kind === 'key' ? !this.ks.writable(r.key) : !r.range;
      const kvs = !rr || empty ? [] : rr.kvs.map((kv) => fromMember(kv, this.ks));
      if (r.kind === 'key') keys.set(r.id, kvs[0] ?? null);
      else if (r.kind === 'range') ranges.set(r.id, kvs);
      else counts.set(r.id, empty || !rr ? 0n : BigInt(rr.count));
    });
    return new TxnState(clock, memberRev, keys, ranges, counts, verified);
  }

  /**
   * Member compares that hold only while the state read is unchanged: each key's member mod
   * revision; a compared range (whose members could come and go) by "nothing in it changed
   * since the read" plus each of its keys. Past `maxPins` (or a range of over RANGE_PIN_KEYS
   * keys), the shard clock itself.
   */
  pins(state: TxnState, maxPins = Number.POSITIVE_INFINITY): Compare[] {
    const out = this.keyPins(state);
    // Past what the member's op limit can hold (chained), pin the whole shard instead.
    return out.length > maxPins ? [clockEquals(state.clock)] : out;
  }

  private keyPins(state: TxnState): Compare[] {
    const out: Compare[] = [];
    for (const r of this.reads) {
      if (r.kind === 'key' && this.ks.writable(r.key)) {
        const kv = state.keys.get(r.id) ?? null;
        out.push(cmp(CompareTarget.MOD, CompareResult.EQUAL, this.ks.toMember(r.key), { mod_revision: (kv?.memberMod ?? 0n).toString() }));
      }
    }
    for (const r of this.reads) {
      // A delete planned on an empty range must find it still empty (nothing put there since).
      if (r.kind === 'count' && r.range && (state.counts.get(r.id) ?? 0n) === 0n) {
        out.push(cmp(CompareTarget.MOD, CompareResult.LESS, r.range.start, { range_end: r.range.end, mod_revision: (state.memberRev + 1n).toString() }));
      }
      if (r.kind !== 'range' || !r.range) continue;
      const kvs = state.ranges.get(r.id) ?? [];
      if (kvs.length > RANGE_PIN_KEYS) {
        // Too many keys to pin one by one: pin the whole shard (strict, but bounded in size).
        out.push(clockEquals(state.clock));
        continue;
      }
      // Nothing in the range created or changed since the read, and every key read still there.
      out.push(cmp(CompareTarget.MOD, CompareResult.LESS, r.range.start, { range_end: r.range.end, mod_revision: (state.memberRev + 1n).toString() }));
      for (const kv of kvs) {
        out.push(cmp(CompareTarget.MOD, CompareResult.EQUAL, this.ks.toMember(kv.key), { mod_revision: kv.memberMod.toString() }));
      }
    }
    return out;
  }
}

export class TxnState {
  constructor(
    /** The shard clock the state was read at. */
    readonly clock: bigint,
    /** The member revision it was read at. */
    readonly memberRev: bigint,
    readonly keys: Map<string, MetaKV | null>,
    readonly ranges: Map<string, MetaKV[]>,
    readonly counts: Map<string, bigint>,
    /**
     * Read at a linearizable point. Writes and answers never rely on an unverified state
     * without pins; errors that depend on state are only returned from a verified one.
     */
    readonly verified: boolean,
  ) {}

  key(k: Buffer): MetaKV | null {
    return this.keys.get(k.toString('latin1')) ?? null;
  }

  compared(c: Compare): MetaKV[] {
    if (c.range_end.length === 0) {
      const kv = this.key(c.key);
      return kv ? [kv] : [];
    }
    return this.ranges.get(rangeId(c.key, c.range_end)) ?? [];
  }

  /** Whether a delete would remove at least one key. */
  deletesSomething(key: Buffer, end: Buffer): boolean {
    if (end.length === 0) return this.key(key) !== null;
    return (this.counts.get(rangeId(key, end)) ?? 0n) > 0n;
  }
}
