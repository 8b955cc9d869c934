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
