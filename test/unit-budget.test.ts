import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { MemoryBudget } from '../src/budget/memory-budget.js';
import { EtcdError } from '../src/etcd/errors.js';

const budget = (limit = 1000, waitMs = 60_000) => new MemoryBudget(limit, { smallBytes: 10, waitMs });

test('budget: responses that fit are granted at once; bigger ones wait their turn in order', async () => {
  const b = budget();
  const a = await b.reserve(600);
  const order: string[] = [];
  const second = b.reserve(500).then((r) => (order.push('second'), r));
  const third = b.reserve(300).then((r) => (order.push('third'), r));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], 'both wait: the first does not fit, the third is behind it');
  assert.equal(b.inUse, 600);
  a.release();
  const [r2, r3] = await Promise.all([second, third]);
  assert.deepEqual(order, ['second', 'third']);
  assert.equal(b.inUse, 800);
  r2.release();
  r2.release(); // idempotent
  r3.release();
  assert.equal(b.inUse, 0);
});

test('budget: small responses never wait, even with the budget spent', async () => {
  const b = budget();
  const big = await b.reserve(1000);
  const small = await b.reserve(10);
  assert.equal(b.inUse, 1010);
  assert.equal(b.over, true);
  small.release();
  big.release();
  assert.equal(b.over, false);
});

test('budget: a response larger than the budget goes alone', async () => {
  const b = budget();
  const huge = await b.reserve(5000);
  const next = b.reserve(100);
  let granted = false;
  void next.then(() => (granted = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(granted, false);
  huge.release();
  (await next).release();
  assert.equal(b.inUse, 0);
});

test('budget: more than 8 budgets waiting, or waiting too long, gets etcd\'s "too many requests"', async () => {
  const b = budget(1000, 50);
  const held = await b.reserve(900);
  const waiting = b.reserve(7500);
  await assert.rejects(b.reserve(800), (err: unknown) => err instanceof EtcdError && err.code === status.RESOURCE_EXHAUSTED && err.message === 'etcdserver: too many requests');
  await assert.rejects(waiting, /etcdserver: too many requests/);
  held.release();
  assert.equal(b.inUse, 0);
});

test('budget: a cancelled wait leaves the queue and the one behind it moves up', async () => {
  const b = budget();
  const held = await b.reserve(500);
  const ac = new AbortController();
  const cancelled = b.reserve(600, ac.signal);
  const behind = b.reserve(400);
  ac.abort();
  await assert.rejects(cancelled, (err: unknown) => err instanceof EtcdError && err.code === status.CANCELLED);
  const r = await behind;
  assert.equal(b.inUse, 900);
  r.release();
  held.release();
});

test('budget: charges by use, resize, and release listeners once under the limit', async () => {
  const b = budget();
  let woke = 0;
  b.onRelease(() => woke++);
  b.charge('watch', 700);
  b.charge('held', 400);
  assert.equal(b.over, true);
  assert.equal(b.usedBy('watch'), 700);
  const r = b.reserveNow(0);
  r.resize(50);
  assert.equal(b.usedBy('responses'), 50);
  b.release('held', 400);
  assert.equal(woke, 1);
  r.release();
  b.release('watch', 700);
  assert.equal(b.inUse, 0);
});

test('budget: a read in progress grows its reservation only while it fits, or while it is the only big one', async () => {
  const b = budget();
  const a = await b.reserve(300);
  assert.equal(a.growTo(200), true, 'shrinking is not growing');
  assert.equal(a.bytes, 300);
  assert.equal(a.growTo(2000), true, 'alone: an answer larger than the budget still goes');
  assert.equal(b.inUse, 2000);
  a.release();
  const c = await b.reserve(600);
  const d = await b.reserve(300);
  assert.equal(d.growTo(400), true, 'fits: 600 + 400');
  assert.equal(d.growTo(401), false, 'past the budget with another big response in flight');
  assert.equal(b.inUse, 1000, 'a refused growth charges nothing');
  const small = await b.reserve(5);
  c.release();
  assert.equal(d.growTo(2000), true, 'the only big response again (small ones do not count)');
  d.release();
  small.release();
  assert.equal(b.inUse, 0);
});

test('budget: the cache loader\'s pages are charged as their own use', () => {
  const b = budget();
  b.charge('load', 700);
  assert.equal(b.usedBy('load'), 700);
  assert.equal(b.room, 300);
  b.release('load', 700);
  assert.equal(b.inUse, 0);
});
