import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EventBatch, MetaEvent } from '../src/watch/event.js';
import { Merger } from '../src/watch/merger.js';

const ev = (rev: bigint, shard: number, size = 100): MetaEvent => {
  const key = Buffer.from(`k${rev}`);
  return { type: 0, rev, shard, key, kv: { key, value: Buffer.alloc(0), create_revision: String(rev), mod_revision: String(rev), version: '1', lease: '0' }, prevKv: null, size };
};

test('merger: held bytes are charged while events wait and released when they go out', () => {
  const charged = { held: 0 };
  const out: EventBatch[] = [];
  const m = new Merger(2, 10n, (b) => out.push(b), {
    charge: (_u, n) => void (charged.held += n),
    release: (_u, n) => void (charged.held -= n),
  });
  m.push(1, [ev(11n, 1), ev(12n, 1)], 12n);
  assert.equal(m.heldBytes, 200);
  assert.equal(charged.held, 200);
  assert.deepEqual(m.holding(), [1]);
  m.push(0, [], 12n);
  assert.deepEqual(out.map((b) => b.events.map((e) => e.rev)), [[11n, 12n]]);
  assert.equal(m.heldBytes, 0);
  assert.equal(charged.held, 0);
});

test('merger: a rewound shard drops what it held and cannot let anything above the released revision out until it is back', () => {
  const out: EventBatch[] = [];
  let held = 0;
  const m = new Merger(3, 10n, (b) => out.push(b), { charge: (_u, n) => void (held += n), release: (_u, n) => void (held -= n) });
  m.push(1, [ev(11n, 1), ev(13n, 1)], 13n);
  m.push(2, [ev(12n, 2)], 14n);
  // Shard 0 (stopped) holds everything back; the held events are dropped.
  m.rewind(1);
  m.rewind(2);
  assert.equal(m.heldBytes, 0);
  assert.equal(held, 0);
  assert.equal(m.watermark(1), 10n);
  assert.equal(m.watermark(2), 10n);
  // Shard 0 comes back: nothing goes out until the rewound shards have read their events again.
  m.push(0, [], 20n);
  assert.equal(out.length, 0);
  m.push(1, [ev(11n, 1), ev(13n, 1)], 20n);
  assert.equal(out.length, 0);
  m.push(2, [ev(12n, 2)], 20n);
  assert.deepEqual(out.map((b) => b.events.map((e) => e.rev)), [[11n, 12n, 13n]]);
  m.close();
  assert.equal(held, 0);
});
