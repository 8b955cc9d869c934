import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StateHints } from '../src/kv/hints.js';

test('state hints keep their own copy of a key and value (never a slice that pins a message or pool slab)', () => {
  const hints = new StateHints();
  const message = Buffer.alloc(64 * 1024, 0x61);
  const key = message.subarray(10, 20);
  const value = message.subarray(100, 200);
  hints.set('k', { key, create: 1n, mod: 2n, version: 1n, lease: 0n, value, memberMod: 3n });
  const got = hints.get('k');
  assert.ok(got);
  assert.deepEqual(got.key, key);
  assert.deepEqual(got.value, value);
  assert.notEqual(got.key.buffer, message.buffer, 'the key is not a view of the message');
  assert.notEqual(got.value.buffer, message.buffer, 'the value is not a view of the message');
  assert.equal(got.key.buffer.byteLength, key.length + value.length, 'one small allocation holds both');
  assert.equal(got.mod, 2n);
  hints.set('gone', null);
  assert.equal(hints.get('gone'), null);
});

test('a hint is exact only as the very state an owner write left, for that writer generation', () => {
  const hints = new StateHints(3);
  const kv = (mod: bigint) => ({ key: Buffer.from('k'), create: 1n, mod, version: 1n, lease: 0n, value: Buffer.from('v'), memberMod: mod });
  hints.set('k', kv(2n), undefined, 7);
  const got = hints.get('k') ?? null;
  assert.ok(hints.isExact('k', got, 7));
  assert.ok(!hints.isExact('k', got, 8), 'another generation (a lost ownership, an unknown batch outcome)');
  assert.ok(!hints.isExact('k', kv(2n), 7), 'an equal state that is not the hint itself');
  hints.set('k', kv(3n), 3n);
  assert.ok(!hints.isExact('k', hints.get('k') ?? null, 7), "a read's state is a guess");
  hints.set('gone', null, undefined, 7);
  assert.ok(hints.isExact('gone', null, 7), 'a delete the owner applied leaves an exact absence');
  hints.set('gone', null);
  assert.ok(!hints.isExact('gone', null, 7), "a reap's absence is not the owner write's");
  hints.set('a', kv(4n), undefined, 7);
  hints.set('b', kv(5n), undefined, 7);
  hints.set('c', kv(6n), undefined, 7);
  assert.ok(!hints.isExact('k', null, 7) && hints.get('k') === undefined, 'evicted: nothing is exact');
});
