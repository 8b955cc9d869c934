/**
 * A replica reads the shards it does not own from their owner's member watch (watch/relay.ts):
 * each member then has one watcher whatever the number of replicas. What a client watching the
 * follower sees must be exactly what it sees on the owner, and on a plain etcd given the same
 * writes: every event once, in revision order, with its previous value. Covers an idle shard's
 * watermark (progress requests answered through the relay), and the owner leaving (the follower
 * goes back to its own member watches with nothing lost).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, etcdWatchers, metaPerFile, waitFor, type Meta } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';
import { WatchStream } from './watch-client.js';

let meta: Meta;
let owner: RawClient;
let follower: RawClient;
let oracle: RawClient;

const suite = metaPerFile({ tag: 'watch-relay', shards: 3, proxies: 2, oracleName: 'relay-oracle' });
before(async () => {
  const s = await suite.started();
  meta = s.meta;
  [owner, follower] = s.clients as [RawClient, RawClient];
  oracle = s.oracle!.client;
}, { timeout: 120_000 });

/** Watchers each member serves (etcd's own gauge). */
const memberWatchers = () => etcdWatchers(meta.cluster.shards.map((s) => s.clientUrl));

interface Seen {
  type: string;
  key: string;
  value: string;
  prev: string | null;
  version: string;
}

/** Events of watch 0, as comparable records (revisions are compared relative to the first). */
function seen(w: WatchStream): Array<Seen & { rev: bigint }> {
  return (w.events(0) as Array<{ type: string | number; kv: { key: Buffer; value: Buffer; mod_revision: string; version: string }; prev_kv?: { value: Buffer } | null }>).map((e) => ({
    type: String(e.type),
    key: e.kv.key.toString(),
    value: e.kv.value.toString(),
    prev: e.prev_kv ? e.prev_kv.value.toString() : null,
    version: e.kv.version,
    rev: BigInt(e.kv.mod_revision),
  }));
}

function watch(c: RawClient, prefix: string): WatchStream {
  const w = new WatchStream(c);
  suite.cleanup.add('close watch', () => w.close());
  w.create({ key: prefix, rangeEnd: prefixEnd(prefix), prevKv: true });
  return w;
}

test('the follower reads every member through the owner: one watcher per member, the same events as on the owner and on etcd', { timeout: 120_000 }, async () => {
  // The follower moves its feeds over once its read cache is in (its member watches then need no prev_kv).
  await waitFor(async () => (await memberWatchers()).every((n) => n === 1), 30_000, 'every member to serve a single watcher');

  const P = 'relay/a/';
  const ws = [watch(owner, P), watch(follower, P), watch(oracle, P)];
  for (const w of ws) await w.nth(1);
  // Concurrent writers through both replicas would commit in an order etcd cannot replay: one
  // writer alternates replicas, so the same sequence goes to etcd.
  const ops: Array<[string, string | null]> = [];
  for (let i = 0; i < 150; i++) ops.push([`${P}k${i % 40}`, i % 7 === 6 ? null : `v${i}`]);
  for (const [i, [key, value]] of ops.entries()) {
    for (const c of [i % 2 ? follower : owner, oracle]) {
      const r = value === null ? await c.kv('DeleteRange', { key: b(key) }) : await c.kv('Put', { key: b(key), value: b(value) });
      assert.ok(r.ok, r.ok ? '' : r.details);
    }
  }
  const [lastKey, lastValue] = ops[ops.length - 1]!;
  await ws[2]!.until(() => seen(ws[2]!).some((e) => e.key === lastKey && e.value === lastValue), 20_000, 'etcd to send the last event');
  const count = seen(ws[2]!).length;
  for (const w of ws) await w.until(() => seen(w).length >= count, 20_000, 'every watcher to see every event');
  const strip = (w: WatchStream) => seen(w).map(({ rev: _rev, ...rest }) => rest);
  assert.deepEqual(strip(ws[1]!), strip(ws[2]!), 'the follower saw what etcd sent');
  assert.deepEqual(strip(ws[0]!), strip(ws[2]!), 'the owner saw what etcd sent');
  assert.deepEqual(seen(ws[1]!).map((e) => e.rev), seen(ws[0]!).map((e) => e.rev), 'at the same revisions on both replicas');
  assert.deepEqual(await memberWatchers(), [1, 1, 1], 'still one watcher per member');
});

test('an idle shard does not hold the follower back: writes to one key show at once through the follower', { timeout: 60_000 }, async () => {
  const P = 'relay/b/';
  const w = watch(follower, P);
  await w.nth(1);
  for (let i = 0; i < 20; i++) {
    const r = await follower.kv('Put', { key: b(`${P}one`), value: b(`x${i}`) });
    assert.ok(r.ok, r.ok ? '' : r.details);
    // Each event needs every other shard's watermark past it: vouched for by the owner, with a
    // progress answer that came through the relay.
    await w.until(() => seen(w).length === i + 1, 10_000, `event ${i} on the follower`);
  }
});

test('the owner leaves: the follower takes the shards over and goes back to its own member watches, its watchers missing nothing', { timeout: 120_000 }, async () => {
  const P = 'relay/c/';
  const w = watch(follower, P);
  await w.nth(1);
  let n = 0;
  const put = async () => {
    const r = await follower.kv('Put', { key: b(`${P}k${n}`), value: b(`v${n}`) }, { deadlineMs: 10_000 });
    if (r.ok) n++;
    return r.ok;
  };
  for (let i = 0; i < 20; i++) assert.ok(await put());
  await meta.proxies[0]!.close();
  await waitFor(put, 30_000, 'a write after the owner left');
  await waitFor(async () => (await memberWatchers()).every((x) => x === 1), 30_000, 'every member to serve the survivor alone');
  for (let i = 0; i < 20; i++) await waitFor(put, 10_000, 'writes through the survivor');
  await w.until(() => seen(w).length === n, 20_000, 'the watcher to see every write');
  const keys = seen(w).map((e) => e.key);
  assert.deepEqual(keys, Array.from({ length: n }, (_, i) => `${P}k${i}`), 'every write once, in order');
  const revs = seen(w).map((e) => e.rev);
  for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! > revs[i - 1]!, 'revisions increase');
});
