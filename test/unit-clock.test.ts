import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { ClockAllocator, REBUILD_GAP } from '../src/clock/allocator.js';
import { CLOCK_KEY as COORDINATOR_CLOCK_KEY } from '../src/shard/keyspace.js';
import { decodeClock } from '../src/shard/envelope.js';
import { Upstream } from '../src/upstream/upstream.js';
import { startEtcd } from '../src/local/etcd-process.js';
import type { EtcdProcess } from '../src/local/etcd-process.js';
import { clockAllocations, clockConfirmations } from '../src/metrics/registry.js';

const CLOCK_KEY = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), Buffer.from('metaproxy/clock')]);

let dir: string;
let etcd: EtcdProcess;
let up: Upstream;
let client: Etcd3;
const allocators: Upstream[] = [];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metaproxy-clock-'));
  etcd = await startEtcd({ name: 'coordinator', dataDir: path.join(dir, 'data'), unsafeNoFsync: true });
  up = new Upstream({ name: 'coordinator', endpoints: [etcd.clientUrl], requestTimeoutMs: 3000 });
  client = new Etcd3({ hosts: etcd.clientUrl });
});

after(async () => {
  up?.close();
  for (const u of allocators) u.close();
  client?.close();
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** An empty coordinator for each test. */
beforeEach(async () => {
  await client.delete().key(CLOCK_KEY).exec();
});

async function allocations(): Promise<number> {
  return (await clockAllocations.get()).values[0]?.value ?? 0;
}

async function stored(): Promise<bigint> {
  const v = await client.get(CLOCK_KEY).buffer();
  assert.ok(v, 'the clock key exists');
  return decodeClock(v);
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const none = async (): Promise<bigint[]> => [];

describe('ClockAllocator', () => {
  test('the clock key is 0xffffff "metaproxy/clock"', () => {
    assert.deepEqual(COORDINATOR_CLOCK_KEY, CLOCK_KEY);
  });

  test('init on an empty coordinator starts at 1; the first next() is 2', async () => {
    const clock = new ClockAllocator(up);
    await clock.init(none);
    assert.equal(await stored(), 1n);
    assert.equal(await clock.current(), 1n);
    assert.equal(await clock.next(), 2n);
    assert.equal(await clock.next(), 3n);
    assert.equal(await stored(), 3n);
  });

  test('init on a coordinator that has a clock continues from it when the shards are behind it', async () => {
    const first = new ClockAllocator(up);
    await first.init(none);
    await first.next();
    await first.next(); // clock = 3
    const second = new ClockAllocator(up);
    await second.init(async () => [2n, 3n]);
    assert.equal(await second.next(), 4n);
  });

  test('init moves a clock that is behind the shards (a coordinator restored from an old backup) past them', async () => {
    const first = new ClockAllocator(up);
    await first.init(none);
    await first.next(); // clock = 2
    const second = new ClockAllocator(up);
    await second.init(async () => [10_000n]);
    assert.equal(await second.next(), 10_000n + REBUILD_GAP + 1n);
  });

  test('200 concurrent next() calls: distinct consecutive revisions in few round trips', async () => {
    const clock = new ClockAllocator(up);
    await clock.init(none);
    const before = await allocations();
    const revs = await Promise.all(Array.from({ length: 200 }, () => clock.next()));
    const trips = (await allocations()) - before;
    assert.equal(new Set(revs.map(String)).size, 200);
    const sorted = [...revs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(sorted, Array.from({ length: 200 }, (_, i) => 2n + BigInt(i)));
    // Callers are served in arrival order.
    assert.deepEqual(revs, sorted);
    assert.ok(trips >= 1 && trips < 20, `${trips} coordinator round trips for 200 allocations`);
    assert.equal(await stored(), 201n);
  });

  test('a batch larger than maxBatch is split across round trips', async () => {
    const clock = new ClockAllocator(up, 16);
    await clock.init(none);
    const before = await allocations();
    const revs = await Promise.all(Array.from({ length: 50 }, () => clock.next()));
    const trips = (await allocations()) - before;
    assert.deepEqual(revs, Array.from({ length: 50 }, (_, i) => 2n + BigInt(i)));
    assert.ok(trips >= 4, `50 allocations with maxBatch 16 need at least 4 round trips, got ${trips}`);
  });

  test('two allocators on one coordinator never hand out the same revision', async () => {
    const upA = new Upstream({ name: 'coordinator', endpoints: [etcd.clientUrl], requestTimeoutMs: 3000 });
    const upB = new Upstream({ name: 'coordinator', endpoints: [etcd.clientUrl], requestTimeoutMs: 3000 });
    allocators.push(upA, upB);
    const a = new ClockAllocator(upA);
    const b = new ClockAllocator(upB);
    await a.init(none);
    await b.init(none);
    const got: bigint[] = [];
    for (let wave = 0; wave < 5; wave++) {
      const revs = await Promise.all([
        ...Array.from({ length: 30 }, () => a.next()),
        ...Array.from({ length: 30 }, () => b.next()),
      ]);
      got.push(...revs);
    }
    assert.equal(got.length, 300);
    assert.equal(new Set(got.map(String)).size, 300, 'duplicate revisions handed out');
    const max = got.reduce((x, y) => (x > y ? x : y));
    assert.equal(await stored(), max);
    // Every revision allocated by either came out of the shared clock: none above it, none below 2.
    assert.ok(got.every((r) => r >= 2n && r <= max));
  });

  test('init with shard clocks [5, 9] on an empty coordinator starts at 9 + REBUILD_GAP', async () => {
    const clock = new ClockAllocator(up);
    await clock.init(async () => [5n, 9n]);
    assert.equal(await stored(), 9n + REBUILD_GAP);
    assert.equal(await clock.next(), 9n + REBUILD_GAP + 1n);
  });

  test('a clock deleted while running is rebuilt above the shard clocks', async () => {
    let shardMax = 0n;
    const clock = new ClockAllocator(up);
    await clock.init(async () => [shardMax]);
    const r1 = await clock.next();
    assert.equal(r1, 2n);
    // The coordinator loses its clock (e.g. restarted on tmpfs); the shards have seen up to 700.
    shardMax = 700n;
    await client.delete().key(CLOCK_KEY).exec();
    const before = await allocations();
    const r2 = await within(clock.next(), 5000, 'next() after the clock was deleted');
    assert.equal(r2, 700n + REBUILD_GAP + 1n);
    assert.ok((await allocations()) - before <= 3, 'rebuilt in a bounded number of round trips');
    assert.equal(await stored(), r2);
    assert.equal(await within(clock.next(), 5000, 'next() after the rebuild'), r2 + 1n);
  });

  test('a clock deleted while running continues above what this allocator handed out', async () => {
    // Even when the shards report nothing newer (e.g. writes still in flight), a rebuilt clock
    // must not hand out a revision this proxy already handed out.
    const clock = new ClockAllocator(up);
    await clock.init(none);
    const handed = await Promise.all(Array.from({ length: 10 }, () => clock.next()));
    assert.equal(handed[9], 11n);
    await client.delete().key(CLOCK_KEY).exec();
    const r = await within(clock.next(), 5000, 'next() after the clock was deleted');
    assert.ok(r > 11n, `revision ${r} was already handed out before the clock was lost`);
  });

  test('a malformed clock value makes next() fail instead of looping on the coordinator', async () => {
    const own = new Upstream({ name: 'coordinator', endpoints: [etcd.clientUrl], requestTimeoutMs: 3000 });
    try {
      const clock = new ClockAllocator(own);
      await clock.init(none);
      await clock.next();
      // Not 8 bytes: decodes as 0, which no CAS on the stored value can ever match.
      await client.put(CLOCK_KEY).value(Buffer.from([1, 2, 3])).exec();
      const before = await allocations();
      const outcome = await within(
        clock.next().then(
          (rev) => `resolved ${rev}`,
          (err: Error) => `rejected: ${err.message}`,
        ),
        2000,
        'next() with a malformed clock value',
      ).catch((err: Error) => err.message);
      const trips = (await allocations()) - before;
      assert.ok(trips < 20, `${trips} coordinator round trips in 2 s (${outcome})`);
      assert.match(outcome, /^(resolved|rejected)/);
    } finally {
      own.close(); // ends a runaway loop: calls on a closed channel fail
    }
  });

  describe('revision blocks (a replica that owns every shard)', () => {
    const BLOCK_KEY = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), Buffer.from('metaproxy/clock-block')]);
    beforeEach(async () => {
      await client.delete().key(BLOCK_KEY).exec();
    });

    function holder(self: string, others: Map<string, ClockAllocator>, exclusive = () => true): ClockAllocator {
      const clock = new ClockAllocator(up);
      clock.useBlocks({
        exclusive: () => exclusive(),
        self,
        askHolder: async (url, end) => {
          const h = others.get(url);
          if (!h) throw new Error(`${url} unreachable`);
          return h.issuedFrom(end);
        },
      });
      return clock;
    }

    test('one reservation serves many batches; each batch pays a read, not a proposal', async () => {
      const clock = holder('http://a', new Map());
      await clock.init(none);
      const before = await allocations();
      const revs: bigint[] = [];
      for (let i = 0; i < 20; i++) revs.push(await clock.next(3));
      assert.deepEqual(revs, Array.from({ length: 20 }, (_, i) => 2n + 3n * BigInt(i)));
      assert.equal((await allocations()) - before, 1, 'one compare-and-swap reserved the block');
      assert.ok((await stored()) > 61n, 'the coordinator holds the block end');
      assert.equal(await clock.current(), 61n, 'the current revision is the last handed out, not the block end');
      assert.equal(clock.known(), 61n);
    });

    test('another replica reads the current revision from the holder', async () => {
      const others = new Map<string, ClockAllocator>();
      const a = holder('http://a', others);
      others.set('http://a', a);
      await a.init(none);
      await a.next(5);
      const b = holder('http://b', others, () => false);
      await b.init(none);
      assert.equal(b.known(), 0n, 'no header revision from the block end');
      assert.equal(await b.current(), 6n);
      assert.equal(await a.next(), 7n, 'the holder goes on in its block');
    });

    test('a holder that cannot answer has its block ended by the reader; it then allocates above', async () => {
      const others = new Map<string, ClockAllocator>();
      const a = holder('http://a', others);
      await a.init(none);
      await a.next(5); // a is not in `others`: unreachable
      const b = holder('http://b', others, () => false);
      await b.init(none);
      const cur = await b.current();
      assert.ok(cur > 6n, `the reader ended the block past its end (${cur})`);
      const next = await a.next();
      assert.ok(next > cur, `after the block was ended the holder allocates above it (${next} > ${cur})`);
    });

    test('skipPast moves later revisions above a vouched target inside the block', async () => {
      const a = holder('http://a', new Map());
      await a.init(none);
      assert.equal(await a.next(), 2n);
      a.skipPast(40n);
      assert.equal(await a.next(), 41n);
      assert.equal(await a.current(), 41n);
    });

    test('a proof read finds the block intact while nobody allocated past it', async () => {
      const a = holder('http://a', new Map());
      await a.init(none);
      assert.equal(await a.proof(), null, 'no block yet: no proof');
      await a.next();
      assert.ok((await a.proof()) !== null, 'a proof for the reserved block');
    });

    test('a proof read after another replica allocated vouches for nothing', async () => {
      const a = holder('http://a', new Map());
      await a.init(none);
      await a.next();
      const stale = await a.proof();
      assert.ok(stale !== null);
      // Another replica allocates past the block (e.g. it took a shard over).
      const other = new ClockAllocator(up);
      await other.init(none);
      const theirs = await other.next();
      assert.equal(await a.proof(), null, 'the clock moved past the block');
      const mine = await a.next();
      assert.ok(mine > theirs, `${mine} > ${theirs}`);
    });

    /** A fence that records its targets and the coordinator's clock when it was called. */
    function recordingFence(): { calls: Array<{ target: bigint; clockThen: bigint }>; fence: (target: bigint) => Promise<void> } {
      const calls: Array<{ target: bigint; clockThen: bigint }> = [];
      return { calls, fence: async (target) => void calls.push({ target, clockThen: await stored() }) };
    }

    test('with shard fences, a batch takes revisions from the block with no coordinator call at all', async () => {
      const a = holder('http://a', new Map());
      const { calls, fence } = recordingFence();
      assert.equal(a.takeFenced(1), null, 'no fence configured: not without a proof');
      a.useShardFence(fence);
      await a.init(none);
      assert.equal(a.takeFenced(1), null, 'no block yet');
      const r1 = await a.next(); // reserves the block
      const allocs = await allocations();
      const confirmations = async () => (await clockConfirmations.get()).values[0]?.value ?? 0;
      const confirmed = await confirmations();
      assert.equal(a.takeFenced(2), r1 + 1n);
      assert.equal(a.takeFenced(1), r1 + 3n);
      assert.equal((await allocations()) - allocs, 0, 'no compare-and-swap');
      assert.equal((await confirmations()) - confirmed, 0, 'no clock read');
      assert.deepEqual(calls, [], 'its own block: nothing fenced');
      assert.equal(await a.current(), r1 + 3n);
    });

    test('another replica fences every shard to the block end before it moves the clock past it', async () => {
      const a = holder('http://a', new Map());
      a.useShardFence(async () => assert.fail('the holder fences nothing for its own block'));
      await a.init(none);
      const mine = await a.next(5);
      const end = await stored();
      assert.ok(end > mine + 4n, 'the clock holds the block end');
      const b = new ClockAllocator(up);
      const { calls, fence } = recordingFence();
      b.useShardFence(fence);
      await b.init(none);
      const theirs = await b.next();
      assert.deepEqual(calls, [{ target: end, clockThen: end }], 'fenced to the block end while the clock still stood there');
      assert.equal(theirs, end + 1n);
      // The clock has moved past the block: later allocations from there fence nothing.
      await b.next();
      assert.equal(calls.length, 1);
      // The holder's next coordinator allocation goes above (its block is gone once it reads).
      const again = await a.next(1024);
      assert.ok(again > theirs, `${again} > ${theirs}`);
    });

    test('a holder restarted under the same URL fences before it moves the clock past its old block', async () => {
      const a = holder('http://a', new Map());
      await a.init(none);
      await a.next();
      const end = await stored();
      const restarted = holder('http://a', new Map(), () => false);
      const { calls, fence } = recordingFence();
      restarted.useShardFence(fence);
      await restarted.init(none);
      assert.equal(await restarted.next(), end + 1n);
      assert.deepEqual(calls.map((c) => c.target), [end], 'the old process may still hand out its block');
    });

    test('a rebuilt clock: the first allocation past it fences every shard (blocks below it may still be handed out)', async () => {
      const a = new ClockAllocator(up);
      const { calls, fence } = recordingFence();
      a.useShardFence(fence);
      await a.init(async () => [5000n]); // no clock: rebuilt above the shards
      const start = await stored();
      assert.equal(start, 5000n + REBUILD_GAP);
      assert.equal(await a.next(), start + 1n);
      assert.deepEqual(calls.map((c) => c.target), [start]);
      assert.equal(await a.current(), start + 1n, 'the moved clock names no holder to ask');
    });

    test('no longer exclusive: the next batch allocates on the coordinator (the block is not used)', async () => {
      let exclusive = true;
      const a = holder('http://a', new Map(), () => exclusive);
      await a.init(none);
      await a.next();
      exclusive = false;
      const before = await allocations();
      const r = await a.next();
      assert.equal((await allocations()) - before, 1);
      assert.equal(await stored(), r, 'allocated past the block');
    });
  });
});
