import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher, coalesced, type Waiter } from '../src/batching/batcher.js';

/** A promise settled from outside (a batch held in flight until the test lets it finish). */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('callers that arrive while a batch is in flight share the next one; one batch at a time', async () => {
  const batches: number[][] = [];
  const gates: Array<ReturnType<typeof gate>> = [];
  let inFlight = 0;
  let most = 0;
  const b = new Batcher<number, string>(async (batch) => {
    inFlight++;
    most = Math.max(most, inFlight);
    batches.push(batch.map((w) => w.item));
    const g = gate();
    gates.push(g);
    await g.promise;
    for (const w of batch) w.resolve(`r${w.item}`);
    inFlight--;
  });
  const first = b.submit(1);
  await tick();
  const later = [b.submit(2), b.submit(3), b.submit(4)];
  await tick();
  assert.deepEqual(batches, [[1]]);
  assert.equal(b.queued, 3);
  gates[0].open();
  assert.equal(await first, 'r1');
  await tick();
  assert.deepEqual(batches, [[1], [2, 3, 4]]);
  gates[1].open();
  assert.deepEqual(await Promise.all(later), ['r2', 'r3', 'r4']);
  assert.equal(most, 1);
  await b.idle();
  assert.equal(b.busy, false);
});

test('coalesced: each caller gets a value read after it asked', async () => {
  let reads = 0;
  const gates: Array<ReturnType<typeof gate>> = [];
  const read = coalesced(async () => {
    const n = ++reads;
    const g = gate();
    gates.push(g);
    await g.promise;
    return n;
  });
  const a = read();
  await tick();
  // b and c ask while read 1 is in flight: read 1 may have started before they asked.
  const b = read();
  const c = read();
  gates[0].open();
  assert.equal(await a, 1);
  await tick();
  gates[1].open();
  assert.deepEqual(await Promise.all([b, c]), [2, 2]);
  assert.equal(reads, 2);
});

test('a runner that throws rejects its batch; the next batch still runs', async () => {
  let calls = 0;
  const g = gate();
  const b = new Batcher<string, string>(async (batch) => {
    calls++;
    if (calls === 1) {
      await g.promise;
      throw new Error('upstream down');
    }
    for (const w of batch) w.resolve(w.item.toUpperCase());
  });
  const failed = [assert.rejects(b.submit('a'), /upstream down/)];
  await tick();
  const ok = b.submit('b');
  g.open();
  await failed[0];
  assert.equal(await ok, 'B');
});

test('take bounds a batch; the rest wait for the following batches, in order', async () => {
  const batches: string[][] = [];
  const hold = gate();
  const b = new Batcher<string, number>(
    async (batch) => {
      batches.push(batch.map((w) => w.item));
      if (batches.length === 1) await hold.promise;
      batch.forEach((w, i) => w.resolve(i));
    },
    { take: (queued) => (queued[0] === 'big' ? 1 : 2) },
  );
  const all = [b.submit('x')];
  await tick();
  all.push(b.submit('big'), b.submit('y'), b.submit('z'), b.submit('w'), b.submit('v'));
  hold.open();
  await Promise.all(all);
  assert.deepEqual(batches, [['x'], ['big'], ['y', 'z'], ['w', 'v']]);
});

test('take answering 0 still takes one waiter (no stall)', async () => {
  const b = new Batcher<number, number>(async (batch) => batch.forEach((w) => w.resolve(w.item)), { take: () => 0 });
  assert.deepEqual(await Promise.all([b.submit(1), b.submit(2)]), [1, 2]);
});

test('requeued waiters go in the next batch, ahead of newer callers', async () => {
  const batches: string[][] = [];
  const holds = [gate(), gate()];
  let b!: Batcher<string, string>;
  b = new Batcher<string, string>(async (batch) => {
    const n = batches.push(batch.map((w) => w.item));
    if (n <= 2) await holds[n - 1].promise;
    if (n === 2) {
      // 'retry' failed its pin: back in the queue, keeping its place.
      b.requeue(batch.filter((w) => w.item === 'retry'));
      for (const w of batch) w.resolve(`${w.item} in batch 2`);
      return;
    }
    for (const w of batch) w.resolve(`${w.item} in batch ${n}`);
  });
  const block = b.submit('block');
  await tick();
  const r = b.submit('retry');
  const o = b.submit('ok');
  holds[0].open();
  await block;
  await tick();
  const newer = b.submit('newer');
  holds[1].open();
  assert.equal(await o, 'ok in batch 2');
  assert.equal(await r, 'retry in batch 3');
  assert.equal(await newer, 'newer in batch 3');
  assert.deepEqual(batches, [['block'], ['retry', 'ok'], ['retry', 'newer']]);
});

test('a waiter the runner forgets to settle is rejected, not left hanging', async () => {
  const b = new Batcher<number, number>(async (batch: Waiter<number, number>[]) => {
    for (const w of batch) if (w.item % 2) w.resolve(w.item);
  });
  const [a, c] = [b.submit(1), assert.rejects(b.submit(2), /left a waiter unsettled/)];
  assert.equal(await a, 1);
  await c;
});

test('drop rejects queued waiters only; idle waits for the batch in flight', async () => {
  const hold = gate();
  const b = new Batcher<number, number>(async (batch) => {
    await hold.promise;
    batch.forEach((w) => w.resolve(w.item));
  });
  const inFlight = b.submit(1);
  await tick();
  const q = [b.submit(2), b.submit(3), b.submit(4)];
  const dropped = [assert.rejects(q[0], /epoch lost/), assert.rejects(q[2], /epoch lost/)];
  assert.equal(b.drop((n) => n % 2 === 0, new Error('epoch lost')), 2);
  assert.equal(b.queued, 1);
  let idle = false;
  const idleDone = b.idle().then(() => (idle = true));
  await tick();
  assert.equal(idle, false);
  hold.open();
  assert.equal(await inFlight, 1);
  await Promise.all(dropped);
  assert.equal(await q[1], 3);
  await idleDone;
  assert.equal(b.busy, false);
});

test('beforeBatch: callers arriving during the linger join that batch', async () => {
  const batches: number[][] = [];
  const lingers: Array<ReturnType<typeof gate>> = [];
  const b = new Batcher<number, number>(
    async (batch) => {
      batches.push(batch.map((w) => w.item));
      batch.forEach((w) => w.resolve(w.item));
    },
    {
      beforeBatch: () => {
        const g = gate();
        lingers.push(g);
        return g.promise;
      },
    },
  );
  const all = [b.submit(1)];
  await tick();
  all.push(b.submit(2), b.submit(3));
  lingers[0].open();
  await Promise.all(all);
  assert.deepEqual(batches, [[1, 2, 3]]);
});
