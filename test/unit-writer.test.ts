/**
 * The shard writer against a fake member and a fake revision clock (no etcd), both held and
 * released by the test, so every step is an observable event rather than a sleep:
 * - batching: a batch is the longest queue prefix with disjoint keys; a write on a whole range
 *   (keys null) goes alone; a delete closes its batch; the members' maxTxnOps and request size
 *   bound a batch; ticket order holds across retries; a failed fence re-queues the batch, which
 *   gets new revisions; one batch is in flight while the next one's revisions are allocated;
 * - ownership: the epoch fence in every batch, a deposed writer failing its owned writes with
 *   NotOwnerError (nothing applied), and settle() vouching for a revision only once the batches
 *   that could hold it were answered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Compare, RequestOp, TxnRequest, TxnResponse } from '../src/etcd/types.js';
import { decodeClock, encodeClock } from '../src/shard/envelope.js';
import { sysKey } from '../src/shard/keyspace.js';
import { pinned, txnNeed } from '../src/shard/pin-chain.js';
import { putOp } from '../src/upstream/ops.js';
import type { Upstream } from '../src/upstream/upstream.js';
import type { WriteJob, WriteResult } from '../src/shard/writer.js';
import { NotOwnerError, ShardWriter } from '../src/shard/writer.js';
import { writeLinger } from '../src/metrics/registry.js';

const EPOCH = sysKey('epoch');

/** A member that applies a batch when its compares hold on its clock and epoch; every call can be held. */
class FakeMember {
  clock = 1n;
  epoch = 0n;
  memberRev = 10n;
  sent: TxnRequest[] = [];
  private gates: Array<() => void> = [];
  hold = false;

  async txn(req: TxnRequest): Promise<TxnResponse> {
    this.sent.push(req);
    if (this.hold) await new Promise<void>((r) => this.gates.push(r));
    const ok = req.compare.every((c: Compare) => this.holds(c));
    const range = (v: bigint) => ({ response_range: { kvs: [{ value: encodeClock(v) }] } });
    if (!ok) return { header: { revision: String(this.memberRev) }, succeeded: false, responses: [range(this.clock), range(this.epoch)] } as unknown as TxnResponse;
    this.memberRev++;
    const before = this.clock;
    const put = req.success.find((op) => op.request_put)?.request_put;
    this.clock = decodeClock(put?.value);
    const subs = req.success.filter((op) => op.request_txn).map(() => ({ response_txn: { succeeded: true, responses: [] } }));
    return { header: { revision: String(this.memberRev) }, succeeded: true, responses: [range(before), {}, ...subs] } as unknown as TxnResponse;
  }

  release(): void {
    this.hold = false;
    for (const g of this.gates.splice(0)) g();
  }

  private holds(c: Compare): boolean {
    const want = decodeClock(c.value);
    const have = Buffer.from(c.key).equals(EPOCH) ? this.epoch : this.clock;
    return c.result === 0 ? have === want : have < want;
  }
}

/**
 * The coordinator clock as the writer sees it (`allocate`): revisions from 100 on, handed out at
 * once, or, while `hold` is set, only when the test releases them.
 */
class FakeClock {
  next = 100n;
  hold = false;
  /** Batch sizes asked for, in order. */
  asked: number[] = [];
  /** skipPast calls (a failed fence reports the member's clock). */
  skipped: bigint[] = [];
  private gates: Array<() => void> = [];

  allocate = async (n: number): Promise<bigint> => {
    this.asked.push(n);
    if (this.hold) await new Promise<void>((r) => this.gates.push(r));
    if (this.skipped.length) {
      const past = this.skipped[this.skipped.length - 1] + 1n;
      if (this.next < past) this.next = past;
    }
    const first = this.next;
    this.next += BigInt(n);
    return first;
  };

  get waiting(): number {
    return this.gates.length;
  }

  release(): void {
    this.hold = false;
    for (const g of this.gates.splice(0)) g();
  }
}

function setup(limits = { maxTxnOps: 128, maxRequestBytes: 1 << 20 }) {
  const member = new FakeMember();
  const clock = new FakeClock();
  const writer = new ShardWriter('s1', member as unknown as Upstream, clock.allocate, limits, EPOCH, (rev) => clock.skipped.push(rev));
  return { member, writer, clock };
}

interface JobShape {
  /** Member keys it depends on; null: a whole range. */
  keys?: string[] | null;
  deletes?: boolean;
  bytes?: number;
  epoch?: bigint;
}

function job(key: string, epochOrShape?: bigint | JobShape): { job: WriteJob; sample: RequestOp[] } {
  const shape: JobShape = typeof epochOrShape === 'bigint' ? { epoch: epochOrShape } : (epochOrShape ?? {});
  const ops = (rev: bigint) => [putOp(Buffer.from(key), encodeClock(rev))];
  const keys = shape.keys === undefined ? [key] : shape.keys;
  return { job: { ops, pins: [], elseOps: [], keys, deletes: shape.deletes ?? false, bytes: shape.bytes ?? 64, epoch: shape.epoch }, sample: ops(0n) };
}

const submit = (w: ShardWriter, key: string, epoch?: bigint | JobShape, ticket?: number) => {
  const j = job(key, epoch);
  return w.submit(j.job, j.sample, ticket);
};

/** Resolves once `cond` holds, checked after each turn of the event loop (everything here is in memory). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  assert.fail(`never happened: ${what}`);
}

/** The keys of each member txn sent, batch by batch (the first put of each sub-txn). */
function batches(member: FakeMember): string[][] {
  return member.sent.map((req) =>
    req.success.filter((op) => op.request_txn).map((op) => String(op.request_txn?.success[0]?.request_put?.key ?? '')),
  );
}

/** The revision each key's write was applied at. */
async function revs(writes: Record<string, Promise<WriteResult>>): Promise<Record<string, bigint>> {
  const out: Record<string, bigint> = {};
  for (const [k, w] of Object.entries(writes)) {
    const r = await w;
    assert.ok(r.applied, `${k} applied`);
    out[k] = r.rev;
  }
  return out;
}

/**
 * Queues `keys` behind one write held in flight at the member, then lets everything run: the
 * batches the queue was cut into, after the held one.
 */
async function batchesOf(shapes: Array<[string, JobShape?]>, limits?: { maxTxnOps: number; maxRequestBytes: number }) {
  const { member, writer } = setup(limits);
  member.hold = true;
  const first = submit(writer, 'held');
  await until(() => member.sent.length === 1, 'the first batch is sent');
  const writes = shapes.map(([k, shape]) => submit(writer, k, shape));
  member.release();
  await first;
  await Promise.all(writes);
  return batches(member).slice(1);
}

test('writer: an owner writes under its epoch; the batch requires it', async () => {
  const { member, writer } = setup();
  member.epoch = 7n;
  writer.setEpoch(7n, member.memberRev);
  const r = await submit(writer, 'a', 7n);
  assert.equal(r.applied, true);
  const epochCompare = member.sent[0]!.compare.find((c) => Buffer.from(c.key).equals(EPOCH));
  assert.ok(epochCompare, 'the batch carries the epoch compare');
  assert.equal(decodeClock(epochCompare.value), 7n);
});

test('writer: a write routed under another epoch is refused before anything is sent', async () => {
  const { member, writer } = setup();
  writer.setEpoch(7n);
  await assert.rejects(submit(writer, 'a', 6n), NotOwnerError);
  assert.equal(member.sent.length, 0);
});

test('writer: a deposed owner (the member holds a newer epoch) applies nothing and fails its owned writes', async () => {
  const { member, writer } = setup();
  member.epoch = 9n; // another replica took over
  writer.setEpoch(7n);
  let deposedTo = 0n;
  writer.onDeposed((e) => (deposedTo = e));
  await assert.rejects(submit(writer, 'a', 7n), NotOwnerError);
  assert.equal(deposedTo, 9n);
  assert.equal(writer.ownerEpoch, null);
  assert.equal(member.clock, 1n, 'nothing applied');
  // Writes without an epoch (no ownership in use) still go through.
  assert.equal((await submit(writer, 'b')).applied, true);
});

test('writer: settle() vouches only after the batches in flight were answered, and only for the owner', async () => {
  const { member, writer } = setup();
  assert.equal(await writer.settle(50n), null, 'not the owner: cannot vouch');
  member.epoch = 7n;
  writer.setEpoch(7n, member.memberRev);
  assert.equal(await writer.settle(50n), 10n, 'idle owner: at once, at the claim revision');

  member.hold = true;
  const w = submit(writer, 'a', 7n);
  await until(() => member.sent.length === 1, 'allocated (revision 100) and in flight');
  let vouched: bigint | null | undefined;
  const s = writer.settle(100n).then((m) => (vouched = m));
  await new Promise<void>((r) => setImmediate(r));
  assert.equal(vouched, undefined, 'waits for the batch holding revision 100');
  // A target below every allocated revision in flight needs no wait.
  assert.equal(await writer.settle(99n), 10n);
  member.release();
  assert.equal((await w).applied, true);
  await s;
  assert.equal(vouched, 11n, 'the member revision the batch landed at');
});

test('writer: after a batch whose outcome is unknown (the member call failed), it cannot vouch until a later batch is answered', async () => {
  const { member, writer } = setup();
  member.epoch = 7n;
  writer.setEpoch(7n, member.memberRev);
  const real = member.txn.bind(member);
  member.txn = async () => {
    throw new Error('connection reset');
  };
  await assert.rejects(submit(writer, 'a', 7n));
  assert.equal(await writer.settle(200n), null, 'the failed batch may still land: no vouching');
  member.txn = real;
  assert.equal((await submit(writer, 'b', 7n)).applied, true);
  assert.notEqual(await writer.settle(200n), null, 'a later batch answered: the clock is past it');
});

test('key turns: writes to one key wait for each other in order, other keys do not wait, a key named twice does not deadlock', async () => {
  const { KeyTurns } = await import('../src/kv/key-turns.js');
  const turns = new KeyTurns();
  const order: string[] = [];
  const first = await turns.take(['k', 'k']);
  const second = turns.take(['k']).then((turn) => (order.push('second'), turn));
  const other = await turns.take(['x']);
  order.push('other');
  other.leave();
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, ['other'], 'the second write to k waits for the first');
  first.leave();
  first.leave(); // idempotent: must not let a third write past the second
  const third = turns.take(['k']).then((turn) => (order.push('third'), turn));
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, ['other', 'second'], 'the third write waits for the second');
  (await second).leave();
  (await third).leave();
  (await turns.take(['k'])).leave();
});

test('key turns: a txn that left its turn (read-only attempt) takes it again behind the writes queued meanwhile', async () => {
  const { KeyTurns } = await import('../src/kv/key-turns.js');
  const turns = new KeyTurns();
  const order: string[] = [];
  const reader = await turns.take(['k']);
  const writer = turns.take(['k']).then((turn) => (order.push('writer'), turn));
  reader.leave();
  assert.equal(reader.held, false);
  const back = reader.retake().then(() => order.push('reader again'));
  const w = await writer;
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, ['writer'], 'the retake waits for the write queued while the reader was out');
  w.leave();
  await back;
  assert.deepEqual(order, ['writer', 'reader again']);
  assert.equal(reader.held, true);
  await reader.retake(); // held: no-op, no deadlock on itself
  reader.leave();
  (await turns.take(['k'])).leave();
});

test('writer batching: a batch is the longest queue prefix with disjoint keys, at consecutive revisions', async () => {
  const { member, writer } = setup();
  member.hold = true;
  const held = submit(writer, 'held');
  await until(() => member.sent.length === 1, 'the first batch is sent');
  // b2 reads b, which an earlier write of the batch changes: it starts the next batch.
  const writes = { b: submit(writer, 'b'), c: submit(writer, 'c'), b2: submit(writer, 'b2', { keys: ['b', 'x'] }), d: submit(writer, 'd') };
  member.release();
  await held;
  const at = await revs(writes);
  assert.deepEqual(batches(member), [['held'], ['b', 'c'], ['b2', 'd']]);
  assert.deepEqual([at.b, at.c, at.b2, at.d], [101n, 102n, 103n, 104n], 'each write at its own revision, in queue order');
  // The member's clock is the last revision of each batch.
  assert.equal(member.clock, 104n);
});

test('writer batching: a write on a whole range (keys null) is batched alone', async () => {
  assert.deepEqual(await batchesOf([['r', { keys: null }], ['a'], ['b']]), [['r'], ['a', 'b']]);
  assert.deepEqual(await batchesOf([['a'], ['r', { keys: null }], ['b']]), [['a'], ['r'], ['b']]);
});

test('writer batching: a delete closes its batch', async () => {
  assert.deepEqual(await batchesOf([['a', { deletes: true }], ['b']]), [['a'], ['b']]);
  assert.deepEqual(await batchesOf([['a'], ['b', { deletes: true }], ['c'], ['d']]), [['a', 'b'], ['c', 'd']]);
});

test("writer batching: a batch stays within the members' --max-txn-ops and request size", async () => {
  const sample = job('k').sample;
  const need = txnNeed(pinned([], sample, []));
  // Range clock + Put clock + one sub-txn per write, and the widest sub-txn's own ops: three writes fit.
  const byOps = await batchesOf([['a'], ['b'], ['c'], ['d'], ['e']], { maxTxnOps: 2 + 3 + need, maxRequestBytes: 1 << 20 });
  assert.deepEqual(byOps, [['a', 'b', 'c'], ['d', 'e']]);
  // 16 KiB are kept for the txn's framing; 64 bytes each, three writes fit in 200 more.
  const bySize = await batchesOf([['a'], ['b'], ['c'], ['d'], ['e']], { maxTxnOps: 128, maxRequestBytes: 16 * 1024 + 200 });
  assert.deepEqual(bySize, [['a', 'b', 'c'], ['d', 'e']]);
  // A write bigger than the limit still goes, alone (the member refuses it if it must).
  const alone = await batchesOf([['big', { bytes: 1 << 20 }], ['a']], { maxTxnOps: 128, maxRequestBytes: 16 * 1024 + 200 });
  assert.deepEqual(alone, [['big'], ['a']]);
});

test('writer batching: writes queue in ticket order, so a retried write keeps its place ahead of later ones', async () => {
  const { member, writer } = setup();
  member.hold = true;
  const held = submit(writer, 'held');
  await until(() => member.sent.length === 1, 'the first batch is sent');
  const early = writer.ticket(); // taken when the write first arrived, before 'late' arrived
  const late = submit(writer, 'late');
  const retried = submit(writer, 'retried', undefined, early);
  member.release();
  await held;
  const at = await revs({ late, retried });
  assert.deepEqual(batches(member)[1], ['retried', 'late']);
  assert.ok(at.retried < at.late);
});

test('writer batching: a failed fence (the shard clock moved past R1) re-queues the batch in order, with new revisions', async () => {
  const { member, writer, clock } = setup();
  clock.hold = true;
  const writes = { a: submit(writer, 'a'), b: submit(writer, 'b') };
  await until(() => clock.waiting === 1, 'revisions asked for a');
  // Another proxy (or a fence) writes the shard at 150 before this batch lands.
  member.clock = 150n;
  clock.release();
  const at = await revs(writes);
  // b's revisions were allocated while a flew (below 150 too), so its fence fails as well.
  assert.ok(clock.skipped.length >= 1 && clock.skipped.every((r) => r === 150n), 'later revisions must be above the clock the member reported');
  assert.deepEqual(batches(member)[0], ['a']);
  assert.ok(batches(member).filter((b) => b.includes('a')).length === 2, 'a was sent again, with the same plan');
  assert.ok(at.a > 150n && at.b > at.a, 'the retries got new revisions above the member clock, in arrival order');
  assert.equal(member.clock, at.b);
});

test('writer batching: one batch in flight; the next batch takes its revisions meanwhile and goes once the first is answered', async () => {
  const { member, writer, clock } = setup();
  clock.hold = true;
  member.hold = true;
  const a = submit(writer, 'a');
  await until(() => clock.waiting === 1, 'revisions asked for a');
  const writes = { b: submit(writer, 'b'), c: submit(writer, 'c') };
  clock.release();
  await until(() => member.sent.length === 1, 'a is sent');
  // While a flies, b and c got their revisions (one allocation for the batch), but wait to be sent.
  await until(() => clock.asked.length === 2, 'revisions asked for the next batch');
  assert.deepEqual(clock.asked, [1, 2]);
  await new Promise<void>((r) => setImmediate(r));
  assert.equal(member.sent.length, 1, 'only one batch in flight');
  member.release();
  const at = await revs({ a, ...writes });
  assert.deepEqual(batches(member), [['a'], ['b', 'c']]);
  assert.deepEqual([at.a, at.b, at.c], [100n, 101n, 102n], 'the next batch was allocated later, so its revisions are higher');
});

/** A writer whose clock hands out revisions from a block from `from` on (takeFenced) while `usable()`, else null. */
function blockWriter(from: bigint, usable: () => boolean = () => true) {
  const member = new FakeMember();
  const clock = new FakeClock();
  let block = from;
  const fenced: number[] = [];
  const takeFenced = (n: number) => {
    if (!usable()) return null;
    fenced.push(n);
    const first = block;
    block += BigInt(n);
    return first;
  };
  const limits = { maxTxnOps: 128, maxRequestBytes: 1 << 20 };
  const writer = new ShardWriter('s1', member as unknown as Upstream, clock.allocate, limits, EPOCH, (rev) => clock.skipped.push(rev), takeFenced);
  return { member, clock, writer, fenced };
}

/**
 * A writer whose clock hands out revisions from a block with no coordinator call (takeFenced:
 * from 200 on) once `usable` is set, with `a` in flight at the member and `b` allocated behind
 * it from the coordinator before that.
 */
async function extendSetup() {
  let usable = false;
  const { member, clock, writer, fenced } = blockWriter(200n, () => usable);
  member.hold = true;
  const a = submit(writer, 'a');
  const b = submit(writer, 'b');
  await until(() => member.sent.length === 1 && clock.asked.length === 2, 'a flies, b has its revisions');
  usable = true;
  const queue = (key: string, keys?: string[]) => {
    const j = job(key, keys ? { keys } : undefined);
    return writer.submit(j.job, j.sample);
  };
  return { member, writer, clock, a, b, queue, fenced };
}

test('writer batching: writes that queued while a batch flew join the next batch, at higher revisions from the block', async () => {
  const { member, clock, a, b, queue, fenced } = await extendSetup();
  const writes = { c: queue('c'), d: queue('d'), e: queue('e') };
  await new Promise<void>((r) => setImmediate(r));
  member.release();
  const at = await revs({ a, b, ...writes });
  assert.deepEqual(batches(member), [['a'], ['b', 'c', 'd', 'e']]);
  assert.deepEqual([at.a, at.b, at.c, at.d, at.e], [100n, 101n, 200n, 201n, 202n]);
  assert.deepEqual(fenced, [3]);
  assert.deepEqual(clock.asked, [1, 1], 'the coordinator was asked for a and b only');
  // The member txn sets the shard clock to the batch's last revision, fenced on its first.
  const second = member.sent[1];
  assert.equal(decodeClock(second.compare[0].value), 101n);
  assert.equal(decodeClock(second.success.find((op) => op.request_put)?.request_put?.value), 202n);
});

test('writer batching: a write on a key the next batch already writes does not join it', async () => {
  const { member, a, b, queue } = await extendSetup();
  const writes = { c: queue('c', ['b']), d: queue('d') };
  await new Promise<void>((r) => setImmediate(r));
  member.release();
  await Promise.all([a, b, ...Object.values(writes)]);
  assert.deepEqual(batches(member), [['a'], ['b'], ['c', 'd']]);
});

test('writer batching: with the block usable (takeFenced), batches take revisions from it with no coordinator call', async () => {
  const { member, clock, writer } = blockWriter(500n);
  member.hold = true;
  const a = submit(writer, 'a');
  await until(() => member.sent.length === 1, 'a flies');
  const writes = ['b', 'c', 'd'].map((k) => submit(writer, k));
  await new Promise<void>((r) => setImmediate(r));
  member.release();
  const out = await Promise.all([a, ...writes]);
  assert.deepEqual(clock.asked, [], 'the coordinator was never asked');
  assert.deepEqual(batches(member), [['a'], ['b', 'c', 'd']]);
  assert.deepEqual(out.map((r) => (r.applied ? r.rev : null)), [500n, 501n, 502n, 503n]);
});

test('writer: settle() waits for allocations already asked for, and keeps later ones above its target', async () => {
  const { member, writer, clock } = setup();
  member.epoch = 7n;
  writer.setEpoch(7n, member.memberRev);
  clock.hold = true;
  const a = submit(writer, 'a', 7n);
  await until(() => clock.waiting === 1, 'revisions asked for a');
  let vouched: bigint | null | undefined;
  const s = writer.settle(300n).then((m) => (vouched = m));
  await new Promise<void>((r) => setImmediate(r));
  assert.equal(vouched, undefined, 'the allocation in flight may be at or below the target');
  assert.deepEqual(clock.skipped, [300n], 'allocations from now on are above the target');
  clock.release();
  assert.equal((await a).applied, true);
  await s;
  assert.equal(vouched, 11n, 'the member revision the batch landed at');
});

test('writer: giving up the ownership fails the queued owned writes (NotOwnerError, nothing applied); unowned ones still go', async () => {
  const { member, writer } = setup();
  member.epoch = 7n;
  writer.setEpoch(7n, member.memberRev);
  member.hold = true;
  const held = submit(writer, 'held', 7n);
  await until(() => member.sent.length === 1, 'the first batch is sent');
  const owned = submit(writer, 'owned', 7n);
  const unowned = submit(writer, 'unowned');
  writer.setEpoch(null);
  await assert.rejects(owned, NotOwnerError);
  member.release();
  // The batch in flight was sent under epoch 7, which the member still holds: it lands.
  assert.equal((await held).applied, true);
  assert.equal((await unowned).applied, true);
  assert.deepEqual(batches(member), [['held'], ['unowned']]);
  assert.equal(member.sent[1]!.compare.length, 1, 'no epoch compare without an epoch');
});

test('writer: drained() resolves once nothing is queued or in flight', async () => {
  const { member, writer } = setup();
  member.hold = true;
  const w = submit(writer, 'a');
  await until(() => member.sent.length === 1, 'a is sent');
  let drained = false;
  const d = writer.drained(60_000).then(() => (drained = true));
  await new Promise<void>((r) => setImmediate(r));
  assert.equal(drained, false, 'a batch is in flight');
  member.release();
  await w;
  await d;
  assert.equal(drained, true);
});

/** Observations of etcd_metaproxy_write_linger_seconds so far. */
async function lingers(): Promise<number> {
  const m = await writeLinger.get();
  return m.values.filter((v) => v.metricName === 'etcd_metaproxy_write_linger_seconds_count').reduce((n, v) => n + v.value, 0);
}

/**
 * A member that answers each txn `ms` after it was sent (its round trip: a slow disk, a CPU
 * quota), and clients that each write again once their write was answered, in the event loop's
 * next turn (after the writer went on: a batch either waits for them or goes without them).
 */
async function closedLoop(keys: string[], writesEach: number, ms: number) {
  const { member, writer } = blockWriter(100n);
  const txn = member.txn.bind(member);
  member.txn = async (req) => {
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    return txn(req);
  };
  await Promise.all(
    keys.map(async (k) => {
      for (let i = 0; i < writesEach; i++) {
        assert.ok((await submit(writer, k)).applied);
        await new Promise((r) => setImmediate(r));
      }
    }),
  );
  return batches(member);
}

test('writer linger: with a slow member, the next batch waits for the writers of the batch just answered, so they share member txns', async () => {
  const before = await lingers();
  const sent = await closedLoop(['a', 'b', 'c', 'd'], 8, 30);
  assert.ok((await lingers()) > before, 'batches waited');
  // Once three round trips showed the member slow, each batch waits for the writers of the one
  // before, rather than going with the first of them to come back and leaving the others for
  // the batch after (as the second and third batch did).
  assert.deepEqual(sent.slice(0, 3), [['a', 'b', 'c', 'd'], ['a'], ['b', 'c', 'd']]);
  assert.deepEqual(sent.slice(3), Array.from({ length: 6 }, () => ['a', 'b', 'c', 'd']));
});

test('writer linger: no wait with a fast member, nor for a hot key (its next write could not join the batch anyway)', async () => {
  const before = await lingers();
  const fast = await closedLoop(['a', 'b', 'c', 'd'], 6, 0);
  assert.equal(await lingers(), before, 'a member answering at once makes no batch wait');
  assert.ok(fast.length > 4, 'with no wait the writers that come back go in later batches');
  const hot = await closedLoop(['k'], 5, 30);
  assert.deepEqual(hot, [['k'], ['k'], ['k'], ['k'], ['k']]);
  assert.equal(await lingers(), before, 'one writer of one key never waits for itself');
});
