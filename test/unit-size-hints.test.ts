import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SizeHints } from '../src/budget/size-hints.js';

const k = Buffer.from('a');
const e = Buffer.from('b');

test('size hints: a range not seen is probed by one read; the others wait for its size', async () => {
  const hints = new SizeHints(10, 1000);
  const probe = await hints.estimate(k, e);
  assert.equal(probe.bytes, 1000);
  let second: number | null = null;
  const waiting = hints.estimate(k, e).then((s) => (second = s.bytes));
  await new Promise((r) => setImmediate(r));
  assert.equal(second, null, 'the second read waits for the probe');
  probe.settle(5000);
  await waiting;
  assert.equal(second, 5000, 'then reserves what the probe took');
  // Another range is probed independently; a known size is given at once (at least the floor).
  assert.equal((await hints.estimate(e, k)).bytes, 1000);
  probe.settle(3);
  assert.equal((await hints.estimate(k, e)).bytes, 5000, 'a second settle of the same read counts for nothing');
});

test('size hints: a failed probe lets the next read probe; a cancelled wait is rejected', async () => {
  const hints = new SizeHints(10, 1000);
  const probe = await hints.estimate(k, e);
  const ac = new AbortController();
  const cancelled = hints.estimate(k, e, ac.signal);
  const next = hints.estimate(k, e);
  ac.abort();
  await assert.rejects(cancelled, /context canceled/);
  probe.settle(null);
  const again = await next;
  assert.equal(again.bytes, 1000, 'the next read probes again');
  again.settle(2);
  assert.equal((await hints.estimate(k, e)).bytes, 10, 'a small answer reserves the floor');
});
