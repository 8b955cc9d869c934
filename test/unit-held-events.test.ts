import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EventBatch, MetaEvent } from '../src/watch/event.js';
import { Merger } from '../src/watch/merger.js';
import pino from 'pino';
import { MemoryBudget } from '../src/budget/memory-budget.js';
import { HeldEventsGuard } from '../src/watch/held-events.js';
import type { ShardFeed } from '../src/watch/feed.js';
import type { Shard } from '../src/shard/shard.js';

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

test('held events: dropped past the budget while a shard is stopped; once it answers, the re-read is paced, not dropped again', async () => {
  const budget = new MemoryBudget(8000, { smallBytes: 10, waitMs: 1000 });
  const calls: string[] = [];
  const feeds = [0, 1, 2].map(
    (i) =>
      ({
        rewind: () => void calls.push(`rewind ${i}`),
        start: () => void calls.push(`start ${i}`),
        pause: () => void calls.push(`pause ${i}`),
        resume: () => void calls.push(`resume ${i}`),
        released: () => undefined,
      }) as unknown as ShardFeed,
  );
  let answering = false;
  const shards = [0, 1, 2].map(
    (i) =>
      ({
        index: i,
        name: `s${i}`,
        currentClock: () => (answering ? Promise.resolve({ clock: 0n, memberRev: 0n }) : new Promise(() => undefined)),
      }) as unknown as Shard,
  );
  let guard: HeldEventsGuard | null = null;
  const m = new Merger(3, 10n, (b) => guard?.released(b.rev), budget);
  guard = new HeldEventsGuard(budget, { merger: () => m, feeds: () => feeds, shards }, pino({ level: 'silent' }));
  try {
    // Shard 0 is stopped: shard 1's events wait until they pass the budget, then are dropped.
    let rev = 11n;
    while (!calls.includes('rewind 1')) {
      m.push(1, [ev(rev, 1)], rev);
      rev++;
      guard.check();
    }
    assert.equal(m.heldBytes, 0);
    assert.equal(m.watermark(1), 10n);
    // Shard 0 answers: the stopped feed starts again, and its backlog is paced.
    answering = true;
    await waitUntil(() => calls.includes('start 1'));
    let again = 11n;
    while (!calls.includes('pause 1')) {
      m.push(1, [ev(again, 1)], again);
      again++;
      guard.check();
    }
    assert.ok(m.heldBytes > 8000 / 8 && m.heldBytes < 8000 / 4, `paused past an 8th of the budget: ${m.heldBytes}`);
    assert.equal(calls.filter((c) => c === 'rewind 1').length, 1, 'not dropped again');
    // Shard 2 is idle and shard 0's watermark moves: the held events go out and the feed reads on.
    m.push(2, [], again);
    assert.ok(!calls.includes('resume 1'), 'still waiting for shard 0');
    m.push(0, [], again);
    assert.equal(m.heldBytes, 0);
    assert.ok(calls.includes('resume 1'));
  } finally {
    guard.close();
    m.close();
  }
});

async function waitUntil(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
