/**
 * Unit tests of SharedReads (src/kv/shared-reads.ts): identical read-only member txns share one
 * member call, and a caller never gets an answer read before it asked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TxnResponse } from '../src/etcd/types.js';
import { SharedReads } from '../src/kv/shared-reads.js';

function member() {
  const calls: Array<{ req: object; answer: (n: number) => void }> = [];
  const shared = new SharedReads(
    (req) => new Promise<TxnResponse>((resolve) => calls.push({ req, answer: (n) => resolve({ succeeded: true, responses: [], header: { revision: String(n) } } as unknown as TxnResponse) })),
  );
  return { calls, shared };
}

const txn = (key: string) => ({ compare: [], success: [{ request_range: { key: Buffer.from(key) } }], failure: [] });
const rev = (r: TxnResponse) => Number(r.header!.revision);
const tick = () => new Promise((r) => setImmediate(r));

test('shared reads: callers that ask while a read is in flight share the next one, never the one in flight', async () => {
  const { calls, shared } = member();
  const first = shared.read(txn('k'));
  await tick();
  assert.equal(calls.length, 1);
  // Asked after the first read was sent: must not get its answer.
  const later = [shared.read(txn('k')), shared.read(txn('k')), shared.read(txn('k'))];
  await tick();
  assert.equal(calls.length, 1, 'nothing more is sent while the read is in flight');
  calls[0]!.answer(1);
  assert.equal(rev(await first), 1);
  await tick();
  assert.equal(calls.length, 2, 'the three waiting callers share one read');
  calls[1]!.answer(2);
  assert.deepEqual((await Promise.all(later)).map(rev), [2, 2, 2]);
  await tick();
  assert.equal(shared.size, 0, 'nothing is kept once idle');
});

test('shared reads: different member txns (other key, other bytes) are not shared', async () => {
  const { calls, shared } = member();
  const a = shared.read(txn('k'));
  const b = shared.read(txn('j'));
  const c = shared.read({ ...txn('k'), success: [{ request_range: { key: Buffer.from('k'), range_end: Buffer.from('l') } }] });
  await tick();
  assert.equal(calls.length, 3);
  calls.forEach((c, i) => c.answer(10 + i));
  assert.deepEqual((await Promise.all([a, b, c])).map(rev), [10, 11, 12]);
});

test('shared reads: a failed read fails every caller that shared it, and the next caller reads anew', async () => {
  let n = 0;
  const shared = new SharedReads(async () => {
    n++;
    if (n === 1) throw new Error('member gone');
    return { succeeded: true, responses: [], header: { revision: '7' } } as unknown as TxnResponse;
  });
  await assert.rejects(shared.read(txn('k')), /member gone/);
  assert.equal(rev(await shared.read(txn('k'))), 7);
});

test('shared reads: int64s as bigint and bytes are told apart from strings in the request signature', async () => {
  const { calls, shared } = member();
  const reads = [
    shared.read({ revision: 5n }),
    shared.read({ revision: '5' }),
    shared.read({ key: Buffer.from('k') }),
    shared.read({ key: 'k' }),
  ];
  await tick();
  assert.equal(calls.length, 4);
  calls.forEach((c, i) => c.answer(i));
  assert.deepEqual((await Promise.all(reads)).map(rev), [0, 1, 2, 3]);
});
