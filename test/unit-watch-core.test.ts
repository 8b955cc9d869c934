/**
 * The watch path's concurrent core without etcd: the merger's watermark release, the hub's
 * matching and progress ticks (node's mock timers stand in for the clock), and a watch
 * session's flow control against a client stream that stops taking writes.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import fc from 'fast-check';
import type * as grpc from '@grpc/grpc-js';
import type { KeyValue } from '../src/etcd/types.js';
import { MemoryBudget } from '../src/budget/memory-budget.js';
import type { EventBatch, MetaEvent } from '../src/watch/event.js';
import { WatchHub, type WatchSink } from '../src/watch/hub.js';
import type { MergedStream } from '../src/watch/merged-stream.js';
import { Merger } from '../src/watch/merger.js';
import { WatchSession, type SessionDeps, type WatchResponseMsg } from '../src/watch/session.js';
import { Watcher, type WatcherSpec } from '../src/watch/watcher.js';
import type { WatchCluster } from '../src/watch/cluster-view.js';
import type { ReplaySlots } from '../src/watch/replay-slots.js';
import { watchResyncs } from '../src/metrics/registry.js';

const log = pino({ level: 'silent' });

function kv(key: Buffer, rev: bigint): KeyValue {
  return { key, value: Buffer.from(`v${rev}`), create_revision: rev.toString(), mod_revision: rev.toString(), version: '1', lease: '0' };
}

function ev(rev: bigint, key = `k${rev}`, type = 0, shard = 0): MetaEvent {
  const k = Buffer.from(key);
  return { type, rev, shard, key: k, kv: kv(k, rev), prevKv: null, size: 100 };
}

const revs = (b: EventBatch[]) => b.map((x) => [x.rev, x.events.map((e) => e.rev)]);

// ------------------------------------------------------------------------------------ merger

test('merger: a watermark alone (no events) releases what the others held', () => {
  const out: EventBatch[] = [];
  const m = new Merger(3, 0n, (b) => out.push(b));
  m.push(0, [ev(1n), ev(4n)], 4n);
  m.push(1, [ev(2n)], 2n);
  assert.deepEqual(out, [], 'shard 2 stands at 0');
  m.push(2, [], 3n);
  assert.deepEqual(revs(out), [[2n, [1n, 2n]]], 'up to the lowest watermark (shard 1 at 2)');
  m.push(1, [], 10n);
  assert.deepEqual(revs(out), [[2n, [1n, 2n]], [3n, []]], 'an empty batch still moves the released revision');
  m.push(2, [], 10n);
  assert.deepEqual(revs(out).at(-1), [4n, [4n]]);
  assert.equal(m.released, 4n);
});

test('merger: a watermark never goes back; events of one revision keep their order', () => {
  const out: EventBatch[] = [];
  const m = new Merger(2, 0n, (b) => out.push(b));
  m.push(0, [ev(2n, 'a'), ev(2n, 'b'), ev(2n, 'c')], 5n);
  m.push(0, [], 3n);
  assert.equal(m.watermark(0), 5n);
  m.push(1, [ev(1n, 'x', 0, 1), ev(3n, 'y', 0, 1)], 6n);
  assert.deepEqual(
    out.flatMap((b) => b.events.map((e) => `${e.rev}${e.key}`)),
    ['1x', '2a', '2b', '2c', '3y'],
  );
  assert.equal(m.released, 5n);
});

test('merger: rewind drops a shard\'s held events and holds the release until they are back', () => {
  const out: EventBatch[] = [];
  const held = { bytes: 0, charge: (_u: 'held', n: number) => (held.bytes += n), release: (_u: 'held', n: number) => (held.bytes -= n) };
  const m = new Merger(2, 10n, (b) => out.push(b), held);
  m.push(0, [ev(11n), ev(12n)], 12n);
  assert.equal(held.bytes, 200);
  assert.equal(m.heldBytes, 200);
  assert.deepEqual(m.holding(), [0]);
  m.rewind(0);
  assert.equal(held.bytes, 0);
  assert.equal(m.watermark(0), 10n);
  m.push(1, [], 20n);
  assert.deepEqual(out, [], 'shard 0 is back at the released revision');
  m.push(0, [ev(11n), ev(12n)], 12n);
  assert.deepEqual(revs(out), [[12n, [11n, 12n]]]);
  assert.equal(held.bytes, 0);
  m.push(0, [ev(15n)], 15n);
  m.close();
  assert.equal(held.bytes, 0, 'close gives back what is still held');
});

test('merger: any interleaving of shard pushes releases every event once, in revision order, never above a watermark', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }).chain((shards) =>
        fc.tuple(
          fc.constant(shards),
          // Each revision 1..40 belongs to one shard (a write lives on one shard), or to none.
          fc.array(fc.integer({ min: -1, max: shards - 1 }), { minLength: 40, maxLength: 40 }),
          fc.array(fc.integer({ min: 0, max: shards - 1 }), { minLength: 1, maxLength: 200 }),
        ),
      ),
      ([shards, owner, order]) => {
        const streams: MetaEvent[][] = Array.from({ length: shards }, () => []);
        owner.forEach((s, i) => {
          if (s >= 0) streams[s].push(ev(BigInt(i + 1), `k${i}`, 0, s));
        });
        const out: EventBatch[] = [];
        const m = new Merger(shards, 0n, (b) => out.push(b));
        const at = new Array<number>(shards).fill(0);
        const mark = new Array<bigint>(shards).fill(0n);
        const push = (s: number, n: number, upTo: bigint) => {
          const part = streams[s].slice(at[s], at[s] + n);
          at[s] += part.length;
          mark[s] = upTo;
          m.push(s, part, upTo);
          const low = mark.reduce((a, b) => (b < a ? b : a));
          assert.ok(m.released <= low || m.released === 0n);
        };
        for (const s of order) {
          // Up to two more events, with a watermark at the last one pushed (or just below the next).
          const next = streams[s][at[s] + 2];
          const upTo = next ? next.rev - 1n : 40n;
          push(s, 2, upTo > mark[s] ? upTo : mark[s]);
        }
        for (let s = 0; s < shards; s++) push(s, streams[s].length, 40n);
        const all = out.flatMap((b) => b.events.map((e) => e.rev));
        const want = owner.flatMap((s, i) => (s >= 0 ? [BigInt(i + 1)] : []));
        assert.deepEqual(all, want);
        for (let i = 1; i < out.length; i++) assert.ok(out[i].rev > out[i - 1].rev);
        for (const b of out) for (const e of b.events) assert.ok(e.rev <= b.rev);
        assert.equal(m.released, 40n);
      },
    ),
    { numRuns: 200 },
  );
});

// ------------------------------------------------------------------------------------ hub

/** The merged stream as the hub sees it: batches pushed by the test. */
class FakeStream {
  released = 0n;
  private readonly batchFns: Array<(b: EventBatch) => void> = [];
  private readonly resetFns: Array<(rev: bigint) => void> = [];
  waited: bigint[] = [];

  onBatch(fn: (b: EventBatch) => void): void {
    this.batchFns.push(fn);
  }

  onReset(fn: (rev: bigint) => void): void {
    this.resetFns.push(fn);
  }

  async waitFor(rev: bigint): Promise<void> {
    this.waited.push(rev);
  }

  release(b: EventBatch): void {
    this.released = b.rev;
    for (const f of this.batchFns) f(b);
  }
}

function spec(id: bigint, key: string, end: string | null, more: Partial<WatcherSpec> = {}): WatcherSpec {
  return { id, key: Buffer.from(key), end: end === null ? null : Buffer.from(end), prevKv: false, noPut: false, noDelete: false, progressNotify: false, fragment: false, ...more };
}

class RecordingSink implements WatchSink {
  got = new Map<bigint, string[]>();
  ticks: bigint[] = [];
  resets = 0;

  deliver(w: Watcher, events: MetaEvent[]): void {
    this.got.set(w.id, [...(this.got.get(w.id) ?? []), ...events.map((e) => `${e.rev}:${e.key}`)]);
  }

  progressTick(rev: bigint): void {
    this.ticks.push(rev);
  }

  reset(): void {
    this.resets++;
  }
}

/** `clock`: what the coordinator clock read finds (an Error: the read fails). */
function hubWith(stream: FakeStream, clock: bigint | Error = 0n, intervalMs = 60_000): WatchHub {
  const read = async () => {
    if (clock instanceof Error) throw clock;
    return clock;
  };
  return new WatchHub(stream as unknown as MergedStream, { read }, log, { historyEvents: 100, historyBytes: 1 << 20, progressNotifyIntervalMs: intervalMs });
}

test('hub: each released event goes to exactly the live watchers whose range and filters take it', () => {
  const stream = new FakeStream();
  const hub = hubWith(stream);
  try {
    const sink = new RecordingSink();
    hub.register(sink);
    const watchers = [
      new Watcher(spec(1n, 'b', null), 1n), // the key alone
      new Watcher(spec(2n, 'a', 'c'), 1n), // [a, c)
      new Watcher(spec(3n, 'b', ''), 1n), // b and every key after it
      new Watcher(spec(4n, 'a', 'z', { noPut: true }), 1n), // deletes only
      new Watcher(spec(5n, 'a', 'z'), 3n), // from revision 3
      new Watcher(spec(6n, 'b', null), 1n), // removed before the batch
    ];
    for (const w of watchers) hub.addLive(w, sink);
    hub.removeLive(watchers[5]);
    stream.release({ rev: 4n, events: [ev(1n, 'a'), ev(2n, 'b'), ev(3n, 'c', 1), ev(4n, 'bb')] });
    assert.deepEqual(Object.fromEntries(sink.got), {
      '1': ['2:b'],
      '2': ['1:a', '2:b', '4:bb'],
      '3': ['2:b', '3:c', '4:bb'],
      '4': ['3:c'],
      '5': ['3:c', '4:bb'],
    });
    // Whatever was matched, the history holds the whole batch.
    assert.deepEqual(hub.history.since(1n, 10)?.events.map((e) => e.rev), [1n, 2n, 3n, 4n]);
  } finally {
    hub.close();
  }
});

test('hub: a progress tick waits for the merged stream to reach the coordinator clock, then tells every sink', async () => {
  mock.timers.enable({ apis: ['setInterval'] });
  const stream = new FakeStream();
  stream.released = 7n;
  const hub = hubWith(stream, 9n, 1000);
  try {
    const sink = new RecordingSink();
    hub.register(sink);
    mock.timers.tick(999);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(sink.ticks, [], 'not before the interval');
    mock.timers.tick(1);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(stream.waited, [9n], 'waited for the clock read after the tick');
    assert.deepEqual(sink.ticks, [7n]);
    hub.unregister(sink);
    mock.timers.tick(1000);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(sink.ticks, [7n], 'an unregistered sink hears nothing');
  } finally {
    hub.close();
    mock.timers.reset();
  }
});

// ------------------------------------------------------------------------------------ session

/** A client stream whose write() answers false while `full` (grpc-js's backpressure). */
class FakeCall extends EventEmitter {
  written: WatchResponseMsg[] = [];
  full = false;

  write(msg: unknown): boolean {
    this.written.push(msg as WatchResponseMsg);
    return !this.full;
  }

  drain(): void {
    this.full = false;
    this.emit('drain');
  }
}

function session(stream: FakeStream, hub: WatchHub, maxPendingEvents: number): { call: FakeCall; s: WatchSession; budget: MemoryBudget } {
  const call = new FakeCall();
  const budget = new MemoryBudget(1 << 30, { smallBytes: 1024, waitMs: 1000 });
  const store = { compactedRevision: -1n, refreshCompacted: async () => -1n };
  const slots = { acquire: async () => undefined, release: () => undefined };
  const deps: SessionDeps = {
    hub,
    store: store as unknown as WatchCluster,
    log,
    header: (rev) => ({ cluster_id: '0', member_id: '0', revision: rev.toString(), raft_term: '0' }),
    maxPendingEvents,
    maxResponseBytes: 1 << 20,
    budget,
    replaySlots: slots as unknown as ReplaySlots,
  };
  return { call, s: new WatchSession(call as unknown as grpc.ServerDuplexStream<unknown, unknown>, deps), budget };
}

const eventRevs = (msgs: WatchResponseMsg[], id: string) => msgs.filter((m) => String(m.watch_id) === id).flatMap((m) => m.events.map((e) => e.kv.mod_revision));

test('session: while the client stream is full, responses queue in order and are written on drain', async () => {
  const stream = new FakeStream();
  const hub = hubWith(stream);
  try {
    const { call, s, budget } = session(stream, hub, 1000);
    s.create(spec(1n, 'a', 'z'), 0n);
    assert.equal(call.written.length, 1);
    assert.equal(call.written[0].created, true);
    call.full = true;
    stream.release({ rev: 1n, events: [ev(1n, 'a')] }); // written; the stream is now full
    stream.release({ rev: 2n, events: [ev(2n, 'b')] });
    stream.release({ rev: 3n, events: [ev(3n, 'c')] });
    s.cancel(1n);
    assert.equal(call.written.length, 2, 'nothing more is written while the stream is full');
    call.drain();
    // The cancel dropped the watcher's queued events; its cancel response still comes, last.
    assert.deepEqual(eventRevs(call.written, '1'), ['1']);
    assert.equal(call.written.at(-1)?.canceled, true);
    assert.equal(budget.usedBy('watch'), 0, 'queued bytes were given back');
    s.close();
  } finally {
    hub.close();
  }
});

test('session: a watch created without a start revision starts after the coordinator clock, not after what the merged stream released', async () => {
  const stream = new FakeStream();
  stream.released = 3n;
  // Revisions 4 and 5 were acknowledged (the clock stands at 5) but are not released yet.
  const hub = hubWith(stream, 5n);
  try {
    const { call, s } = session(stream, hub, 1000);
    s.create(spec(2n, 'a', 'z'), 4n); // an earlier watcher on the same stream, from revision 4
    const current = await s.currentRevision();
    assert.equal(current, 5n);
    s.create(spec(1n, 'a', 'z'), current + 1n, current);
    assert.equal(call.written[1].created, true);
    assert.equal(call.written[1].header?.revision, '5', 'the created response reports the current revision, as etcd does');
    stream.release({ rev: 4n, events: [ev(4n, 'a4')] });
    stream.release({ rev: 6n, events: [ev(5n, 'a5'), ev(6n, 'a6')] });
    assert.deepEqual(eventRevs(call.written, '1'), ['6'], 'writes acknowledged before the create are not sent');
    assert.deepEqual(eventRevs(call.written, '2'), ['4', '5', '6']);
    const headers = call.written.map((m) => BigInt(m.header?.revision ?? '0'));
    assert.deepEqual(headers, [3n, 5n, 5n, 6n, 6n], 'header revisions never go back on a stream');
    s.close();
  } finally {
    hub.close();
  }
});

test('session: with the coordinator unreachable, a watch without a start revision starts after what was released', async () => {
  const stream = new FakeStream();
  stream.released = 3n;
  const hub = hubWith(stream, new Error('coordinator down'));
  try {
    const { s } = session(stream, hub, 1000);
    assert.equal(await s.currentRevision(), 3n);
    s.close();
  } finally {
    hub.close();
  }
});

test('session: a watcher that falls behind its client is fed again from history, nothing lost or repeated', async () => {
  const stream = new FakeStream();
  const hub = hubWith(stream);
  try {
    const resyncs = async () => (await watchResyncs.get()).values.reduce((n, v) => n + v.value, 0);
    const resyncsBefore = await resyncs();
    const { call, s, budget } = session(stream, hub, 3);
    s.create(spec(1n, 'a', 'z'), 0n);
    s.create(spec(2n, 'q', null), 0n); // a sibling on another key
    call.full = true;
    for (let r = 1n; r <= 8n; r++) stream.release({ rev: r, events: [ev(r, r === 5n ? 'q' : `a${r}`)] });
    // More than 3 events queued for watcher 1: its queue was dropped and it left the live set.
    assert.equal(await resyncs(), resyncsBefore + 1);
    const before = call.written.length;
    call.drain();
    for (let i = 0; i < 20 && eventRevs(call.written, '1').length < 8; i++) await new Promise((r) => setImmediate(r));
    assert.ok(call.written.length > before);
    assert.deepEqual(eventRevs(call.written, '1'), ['1', '2', '3', '4', '5', '6', '7', '8']);
    assert.deepEqual(eventRevs(call.written, '2'), ['5']);
    // Back to live: the next release reaches it directly.
    stream.release({ rev: 9n, events: [ev(9n, 'a9')] });
    assert.deepEqual(eventRevs(call.written, '1').at(-1), '9');
    assert.equal(budget.usedBy('watch'), 0);
    s.close();
  } finally {
    hub.close();
  }
});
