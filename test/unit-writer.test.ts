/**
 * The shard writer's ownership rules, against a fake member (no etcd): the epoch fence in every
 * batch, a deposed writer failing its owned writes with NotOwnerError (nothing applied), and
 * settle() vouching for a revision only once the batches that could hold it were answered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Compare, RequestOp, TxnRequest, TxnResponse } from '../src/etcd/types.js';
import { decodeClock, encodeClock } from '../src/shard/envelope.js';
import { sysKey } from '../src/shard/keyspace.js';
import { putOp } from '../src/upstream/ops.js';
import type { Upstream } from '../src/upstream/upstream.js';
import type { WriteJob } from '../src/shard/writer.js';
import { NotOwnerError, ShardWriter } from '../src/shard/writer.js';

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

function setup() {
  const member = new FakeMember();
  let next = 100n;
  const writer = new ShardWriter(
    's1',
    member as unknown as Upstream,
    async (n) => {
      const first = next;
      next += BigInt(n);
      return first;
    },
    { maxTxnOps: 128, maxRequestBytes: 1 << 20 },
    EPOCH,
  );
  return { member, writer };
}

function job(key: string, epoch?: bigint): { job: WriteJob; sample: RequestOp[] } {
  const ops = (rev: bigint) => [putOp(Buffer.from(key), encodeClock(rev))];
  return { job: { ops, pins: [], elseOps: [], keys: [key], deletes: false, bytes: 64, epoch }, sample: ops(0n) };
}

const submit = (w: ShardWriter, key: string, epoch?: bigint) => {
  const j = job(key, epoch);
  return w.submit(j.job, j.sample);
};

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
  await new Promise((r) => setTimeout(r, 10)); // allocated (revision 100) and in flight
  let vouched: bigint | null | undefined;
  const s = writer.settle(100n).then((m) => (vouched = m));
  await new Promise((r) => setTimeout(r, 10));
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
  const second = turns.take(['k']).then((done) => (order.push('second'), done));
  const other = await turns.take(['x']);
  order.push('other');
  other();
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, ['other'], 'the second write to k waits for the first');
  first();
  (await second)();
  assert.deepEqual(order, ['other', 'second']);
  (await turns.take(['k']))();
});
