/**
 * MetaStore's late-bound write routing: null (every replica writes every shard) until proxy.ts
 * binds it once the owners exist, bound once only; maxPins is fixed at construction.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClockAllocator } from '../src/clock/allocator.js';
import { MetaStore, type WriteRouting } from '../src/kv/store.js';
import { defaultPartitionMap } from '../src/partition/map.js';
import { Router } from '../src/partition/router.js';
import { Keyspace } from '../src/shard/keyspace.js';
import type { Upstream } from '../src/upstream/upstream.js';

function store(opts?: { maxPins?: number }): MetaStore {
  // Neither is called here: the store only keeps them.
  const clock = {} as ClockAllocator;
  const coordinator = {} as Upstream;
  return new MetaStore([], new Router(defaultPartitionMap(4, 0, ['s1'])), clock, new Keyspace(), coordinator, opts);
}

const routing: WriteRouting = {
  route: async () => ({ local: true, epoch: 1n }),
  forward: async () => {
    throw new Error('not here');
  },
  refresh: async () => undefined,
  settle: async () => null,
  reap: async () => ({ deleted: 0, rev: 0n }),
};

test('meta store: write routing is null until bound, then the bound one; binding twice is refused', () => {
  const s = store();
  assert.equal(s.routing, null);
  s.routeWritesThrough(routing);
  assert.equal(s.routing, routing);
  assert.throws(() => s.routeWritesThrough(routing), /already set/);
  assert.equal(s.routing, routing);
});

test('meta store: maxPins comes from the constructor (64 by default)', () => {
  assert.equal(store().maxPins, 64);
  assert.equal(store({ maxPins: 3 }).maxPins, 3);
});
