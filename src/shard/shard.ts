/**
 * One member cluster holding part of the keyspace. Every write to it goes through a txn
 * fenced on its clock key (DESIGN invariant 2); reads pair the user data with the clock so
 * the proxy knows which meta revision the member state stands at.
 */
import type { RangeResponse, RequestOp, TxnResponse, Compare } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { fenceWrites } from '../metrics/registry.js';
import type { ShardWriter } from './writer.js';
import { ShardReader } from './reader.js';
import { decodeClock, encodeClock } from './envelope.js';
import type { Keyspace } from './keyspace.js';
import { CLOCK_KEY, sysKey } from './keyspace.js';
import type { Upstream } from '../upstream/upstream.js';
import { cmp, createIfAbsent, putOp, rangeOp } from '../upstream/ops.js';
import { epochKey } from './epoch.js';
import { clockOf } from './clock-read.js';
import type { ClockRead } from './clock-read.js';

export type { ClockRead };

export const SHARD_ID_KEY = sysKey('shard-name');
/** Range ops per read-only member txn: below etcd's default --max-txn-ops (128) with the clock read. */
const READ_CHUNK = 100;

/** A compare that holds only while nothing at all was written to the shard since `clock`. */
export function clockEquals(clock: bigint): Compare {
  return cmp(CompareTarget.VALUE, CompareResult.EQUAL, CLOCK_KEY, { value: encodeClock(clock) });
}

export class Shard {
  private readonly linearizableReads: ShardReader;
  private readonly serializableReads: ShardReader;
  /**
   * Writes of user keys in flight that took no key turns (range writes, lease reaps), from
   * before they are queued until the hints show what they did: while one is, the owner's
   * hints may lag the member (kv/owner-answer.ts).
   */
  private unturned = 0;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly upstream: Upstream,
    readonly keyspace: Keyspace,
    /** Group commit for this shard's writes (it asks the clock only when a write comes). */
    readonly writer: ShardWriter,
  ) {
    this.linearizableReads = new ShardReader(upstream, [rangeOp(CLOCK_KEY)], READ_CHUNK + 1);
    this.serializableReads = new ShardReader(upstream, [rangeOp(CLOCK_KEY, Buffer.alloc(0), { serializable: true })], READ_CHUNK + 1);
  }

  /** Runs a write that takes no key turns (see `unturned`). */
  async withoutTurns<T>(write: () => Promise<T>): Promise<T> {
    this.unturned++;
    try {
      return await write();
    } finally {
      this.unturned--;
    }
  }

  /** Whether a write that took no key turns is in flight. */
  get unturnedWrites(): boolean {
    return this.unturned > 0;
  }

  /**
   * Records the shard's name in the member (so a config that swaps endpoints between names is
   * caught) and creates its clock key: a VALUE compare on a missing key is always false.
   */
  async init(): Promise<void> {
    const owner = await createIfAbsent(this.upstream, SHARD_ID_KEY, Buffer.from(this.name));
    if (owner !== null && owner.toString() !== this.name) {
      throw new Error(`shard ${this.name}: its endpoints hold the data of shard "${owner.toString()}"; refusing to mix shards`);
    }
    // 1, not 0: an empty etcd stands at revision 1, and reads report the shard clock.
    await createIfAbsent(this.upstream, CLOCK_KEY, encodeClock(1n));
    // No owner yet (ownership/ raises it): a VALUE compare on a missing key would always fail.
    await createIfAbsent(this.upstream, epochKey(this.keyspace), encodeClock(0n));
  }

  /**
   * A read-only member txn: the clock first, then `ops`. Linearizable unless serializable.
   * Concurrent reads share member txns (reader.ts).
   * More ops than one txn level may hold (etcd's default --max-txn-ops is 128) are read in
   * several txns: the first at the current revision, the others at that same member revision,
   * so together they are one snapshot.
   */
  async read(ops: RequestOp[], serializable = false): Promise<{ clock: ClockRead; responses: TxnResponse['responses'] }> {
    const withSer = serializable ? ops.map((o) => (o.request_range ? { request_range: { ...o.request_range, serializable } } : o)) : ops;
    const res = await (serializable ? this.serializableReads : this.linearizableReads).read(withSer.slice(0, READ_CHUNK));
    const clock = clockOf(res, 0);
    const responses = res.responses.slice(1);
    for (let i = READ_CHUNK; i < withSer.length; i += READ_CHUNK) {
      const at = withSer.slice(i, i + READ_CHUNK).map((o) => ({ request_range: { ...o.request_range, revision: clock.memberRev.toString() } }) as RequestOp);
      const more = await this.upstream.txn({ compare: [], success: at, failure: [] }, true);
      responses.push(...more.responses);
    }
    return { clock, responses };
  }

  readClockOps(): RequestOp[] {
    return [rangeOp(CLOCK_KEY)];
  }

  async currentClock(serializable = false): Promise<ClockRead> {
    return (await this.read([], serializable)).clock;
  }

  /**
   * Raises the shard clock to `target` if it is lower, reading `ops` in the same txn: the
   * result is the shard's state at exactly meta revision `target` when it succeeds (no write
   * at or below `target` can land afterwards), or at the returned clock (>= target) when not.
   * `prior` is the clock the fence found (the state read is also the state at every revision
   * from `prior` to `target`).
   */
  async fenceAndRead(
    target: bigint,
    ops: RequestOp[],
  ): Promise<{ clock: ClockRead; prior: bigint; responses: TxnResponse['responses']; fenced: boolean }> {
    const res = await this.upstream.txn(
      {
        compare: [cmp(CompareTarget.VALUE, CompareResult.LESS, CLOCK_KEY, { value: encodeClock(target) })],
        success: [rangeOp(CLOCK_KEY), putOp(CLOCK_KEY, encodeClock(target)), ...ops],
        failure: [rangeOp(CLOCK_KEY), ...ops],
      },
      false,
    );
    if (res.succeeded) {
      fenceWrites.inc({ shard: this.name });
      const clock = { clock: target, memberRev: BigInt(res.header?.revision ?? '0') };
      return { clock, prior: clockOf(res, 0).clock, responses: res.responses.slice(2), fenced: true };
    }
    const clock = clockOf(res, 0);
    return { clock, prior: clock.clock, responses: res.responses.slice(1), fenced: false };
  }

  /** The clock value stored at a past member revision (0 before the shard was initialised). */
  async clockAt(memberRev: bigint): Promise<bigint> {
    const res: RangeResponse = await this.upstream.range({ key: CLOCK_KEY, revision: memberRev.toString() });
    return decodeClock(res.kvs[0]?.value);
  }
}

