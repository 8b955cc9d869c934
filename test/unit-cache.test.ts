import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rangeRequest } from '../src/etcd/defaults.js';
import { etcdService } from '../src/etcd/proto.js';
import type { KeyValue, RangeRequest, RangeResponse } from '../src/etcd/types.js';
import { SortOrder, SortTarget, wire64 } from '../src/etcd/types.js';
import { assembleRange, memberShape } from '../src/kv/range-result.js';
import type { MetaKV } from '../src/shard/meta-kv.js';
import { fromWire, toWire } from '../src/shard/meta-kv.js';
import { rangeFromView, type CacheView } from '../src/cache/range-from-view.js';
import { Snapshots } from '../src/cache/snapshots.js';
import { ShardStore } from '../src/cache/key-tree.js';
import { decodeKeyValue, encodeKeyValue, encodeRangeResponse } from '../src/wire/encoded-kv.js';
import type { MetaEvent } from '../src/watch/event.js';
import { History } from '../src/watch/history.js';

const rangeDef = etcdService('KV').service.Range;
const decodeResponse = (buf: Buffer) => rangeDef.responseDeserialize(buf) as RangeResponse;

function meta(key: string, mod: bigint, opts: Partial<MetaKV> = {}): MetaKV {
  return { key: Buffer.from(key, 'latin1'), create: mod, mod, version: 1n, lease: 0n, value: Buffer.from(`v-${key}-${mod}`), memberMod: 0n, ...opts };
}

function plain(kv: KeyValue) {
  return { ...fromWire(kv), key: kv.key.toString('latin1'), value: kv.value.toString('latin1') };
}

test('wire: encoded KeyValues and RangeResponses decode with the proto definitions to the same fields', () => {
  const kvs = [
    meta('a', 1n),
    meta('\u0000\u00ff\u0080', 7n, { create: 3n, version: 5n, lease: 7587862015512139313n, value: Buffer.alloc(0) }),
    meta('big', 2n ** 40n, { create: 2n ** 53n + 1n, value: Buffer.alloc(70_000, 1) }),
  ];
  const header = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: '123', raft_term: '0' };
  const enc = kvs.map((kv) => encodeKeyValue(kv));
  for (const [i, e] of enc.entries()) {
    const back = decodeKeyValue(e);
    assert.deepEqual({ ...back, memberMod: 0n }, { ...kvs[i], memberMod: 0n });
  }
  const res = decodeResponse(encodeRangeResponse(header, enc, true, 12345678901234n));
  assert.deepEqual(res.header, header);
  assert.equal(res.more, true);
  assert.equal(res.count, '12345678901234');
  assert.deepEqual(res.kvs.map(plain), kvs.map((kv) => plain(toWire(kv))));
  // keys_only drops the value; an empty response still carries its header.
  assert.equal(decodeResponse(encodeRangeResponse(header, [encodeKeyValue(kvs[0], false)], false, 1n)).kvs[0].value.length, 0);
  const empty = decodeResponse(encodeRangeResponse({ ...header, revision: '0' }, [], false, 0n));
  assert.deepEqual([empty.kvs, empty.more, empty.count, empty.header?.revision], [[], false, '0', '0']);
});

/** Three shards' trees plus the same keys as MetaKV lists (what the members would answer). */
function fixture() {
  const stores = [new ShardStore(), new ShardStore(), new ShardStore()];
  const byShard: MetaKV[][] = [[], [], []];
  const keys = ['a', 'a/1', 'a/2', 'a/3', 'b', 'b/x', 'c', 'c\u0000', 'c\u00ff', 'd', 'e/1', 'e/2', 'z', '\u00ff\u00fe'];
  keys.forEach((k, i) => {
    const kv = meta(k, BigInt(10 + ((i * 7) % keys.length)), { version: BigInt(1 + (i % 4)), create: BigInt(1 + (i % 5)), value: Buffer.from(`val${(i * 5) % 7}`) });
    const s = (i * 5) % 3;
    stores[s].put(k, encodeKeyValue(kv));
    byShard[s].push(kv);
  });
  for (const list of byShard) list.sort((x, y) => Buffer.compare(x.key, y.key));
  return { view: { rev: 99n, trees: stores.map((s) => s.live) } as CacheView, byShard };
}

/** The member path's answer: each shard's part (key order, etcd's count), merged by assembleRange. */
function expected(byShard: MetaKV[][], r: RangeRequest) {
  const lo = r.key;
  const inRange = (k: Buffer) =>
    r.range_end.length === 0 ? k.equals(lo) : Buffer.compare(k, lo) >= 0 && (r.range_end.equals(Buffer.from([0])) || Buffer.compare(k, r.range_end) < 0);
  // Each member answers the pushed-down shape: key order (descending if asked), at most limit+1.
  const shape = memberShape(r);
  const parts = byShard.map((list) => {
    let kvs = list.filter((kv) => inRange(kv.key));
    const count = BigInt(kvs.length);
    if (shape.sortDescendingByKey) kvs = [...kvs].reverse();
    if (shape.limit > 0n) kvs = kvs.slice(0, Number(shape.limit));
    return { kvs: shape.countOnly ? [] : kvs, count };
  });
  const out = assembleRange(r, parts);
  return { kvs: out.kvs.map(plain), more: out.more, count: out.count };
}

test('range from the trees: every option gives what the member path (assembleRange) gives', () => {
  const { view, byShard } = fixture();
  const B = (s: string) => Buffer.from(s, 'latin1');
  const ranges: Array<[string, string]> = [['a', ''], ['a/', 'a0'], ['a', '\u0000'], ['\u0000', '\u0000'], ['b', 'e'], ['c', 'c'], ['q', ''], ['e', 'a'], ['c\u0000', 'c\u00ff\u0000']];
  let n = 0;
  for (const [key, end] of ranges) {
    for (const limit of ['0', '1', '2', '5']) {
      for (const order of [SortOrder.NONE, SortOrder.ASCEND, SortOrder.DESCEND]) {
        for (const target of [SortTarget.KEY, SortTarget.VERSION, SortTarget.CREATE, SortTarget.MOD, SortTarget.VALUE]) {
          for (const extra of [{}, { keys_only: true }, { count_only: true }, { min_mod_revision: '12' }, { max_create_revision: '3' }]) {
            const r = rangeRequest(B(key), B(end), { limit, sort_order: order, sort_target: target, ...extra });
            const got = rangeFromView(view, r, [0, 1, 2]);
            const res = decodeResponse(encodeRangeResponse({ cluster_id: '1', member_id: '2', revision: '99', raft_term: '3' }, got.kvs, got.more, got.count));
            const want = expected(byShard, r);
            assert.deepEqual({ kvs: res.kvs.map(plain), more: res.more, count: BigInt(res.count) }, want, JSON.stringify({ key, end, limit, order, target, extra }));
            n++;
          }
        }
      }
    }
  }
  assert.ok(n > 2000);
});

function event(shard: number, type: number, key: string, rev: bigint, kv: MetaKV | null, prev: MetaKV | null): MetaEvent {
  const wire = kv ? toWire(kv) : { key: Buffer.from(key), create_revision: wire64(0n), mod_revision: wire64(rev), version: wire64(0n), value: Buffer.alloc(0), lease: wire64(0n) };
  return { type, rev, shard, key: Buffer.from(key, 'latin1'), kv: wire, prevKv: prev ? toWire(prev) : null, size: 64 };
}

test('snapshots: past states rebuilt by undoing the history, kept for the pages that follow', () => {
  const stores = [new ShardStore(), new ShardStore()];
  const history = new History(1000, 10n);
  const state = new Map<bigint, string>();
  const dump = (v: CacheView) =>
    v.trees
      .flatMap((t) => t.toArray().map(([k, e]) => `${k}=${decodeKeyValue(e).value.toString()}@${decodeKeyValue(e).mod}`))
      .sort()
      .join(',');
  const live = () => ({ rev, trees: stores.map((s) => s.live) });
  // Revision 10: a and b exist.
  let rev = 10n;
  const a10 = meta('a', 10n);
  const b10 = meta('b', 10n);
  stores[0].put('a', encodeKeyValue(a10));
  stores[1].put('b', encodeKeyValue(b10));
  state.set(10n, dump(live()));
  const batches: MetaEvent[][] = [
    [event(0, 0, 'a', 11n, meta('a', 11n, { create: 10n, version: 2n }), a10)],
    [event(1, 1, 'b', 12n, null, b10), event(0, 0, 'c', 12n, meta('c', 12n), null)],
    [event(1, 0, 'b', 13n, meta('b', 13n), null)],
  ];
  for (const evs of batches) {
    rev = evs[0].rev;
    for (const e of evs) {
      if (e.type === 0) stores[e.shard].put(e.key.toString('latin1'), encodeKeyValue(fromWire(e.kv)));
      else stores[e.shard].delete(e.key.toString('latin1'));
    }
    history.append({ events: evs, rev });
    state.set(rev, dump(live()));
  }
  const snaps = new Snapshots({ snapshots: 4, snapshotIdleMs: 60_000, maxUndoEvents: 100 });
  for (const r of [12n, 10n, 11n]) {
    const v = snaps.at(r, live, rev, history);
    assert.ok(v, `state at ${r}`);
    assert.equal(dump(v), state.get(r), `state at ${r}`);
  }
  // The live trees were not touched by the undo.
  assert.equal(dump(live()), state.get(13n));
  assert.equal(snaps.size, 3);
  // Below the history, or too many events back: read the members.
  assert.equal(snaps.at(9n, live, rev, history), null);
  assert.equal(new Snapshots({ snapshots: 4, snapshotIdleMs: 60_000, maxUndoEvents: 1 }).at(10n, live, rev, history), null);
  // A kept clone stays as it was while the live tree moves on.
  snaps.keep(13n, () => ({ rev: 13n, trees: stores.map((s) => s.snapshot()) }));
  stores[0].put('a', encodeKeyValue(meta('a', 14n)));
  assert.equal(dump(snaps.at(13n, live, 14n, history)!), state.get(13n));
  // Kept views older than maxUndoEvents events are dropped (their copied nodes are bounded).
  // The state at 10 is 4 events older than the live trees were when it was rebuilt.
  const before = snaps.size;
  snaps.advance(96);
  assert.equal(snaps.size, before);
  snaps.advance(1);
  assert.equal(snaps.size, before - 1);
  snaps.advance(200);
  assert.equal(snaps.size, 0);
});

test('a read at a past revision: the state at that revision under the current revision (etcd), after catching up with the clock', async () => {
  const { CacheReader } = await import('../src/cache/reads.js');
  type Reader = InstanceType<typeof CacheReader>;
  const store0 = new ShardStore();
  store0.put('k', encodeKeyValue(meta('k', 10n)));
  const past: CacheView = { rev: 10n, trees: [store0.snapshot()] };
  store0.put('k', encodeKeyValue(meta('k', 15n, { create: 10n, version: 2n })));
  // The trees stand at 15; the coordinator clock says 20 (writes at 16..20 still on their way).
  let rev = 15n;
  const waiters: Array<{ rev: bigint; resolve: () => void }> = [];
  const cache = {
    ready: true,
    get revision() {
      return rev;
    },
    memo: new Map(),
    current: () => ({ rev, trees: [store0.live] }),
    at: (r: bigint) => (r === 10n ? past : null),
    keepCurrent: () => undefined,
  };
  const stream = {
    released: 15n,
    waitFor: (r: bigint) => new Promise<void>((resolve) => waiters.push({ rev: r, resolve })),
  };
  const store = {
    compactedRevision: 0n,
    noteCompacted: () => undefined,
    router: { shardsForRange: () => [0] },
  };
  const reader = new CacheReader(
    cache as unknown as Reader['cache'],
    store as unknown as ConstructorParameters<typeof CacheReader>[1],
    stream as unknown as ConstructorParameters<typeof CacheReader>[2],
    { read: async () => ({ clock: 20n, compacted: 0n }) },
    { waitMs: 5000 },
  );
  const answer = reader.range(rangeRequest(Buffer.from('k'), Buffer.alloc(0), { revision: '10' }));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(waiters.map((w) => w.rev), [20n], 'waits for the clock read, not for the requested revision');
  rev = 21n;
  waiters[0]!.resolve();
  const out = await answer;
  assert.ok(out);
  assert.equal(out.rev, 21n, 'header: the revision the cache stands at when it answers');
  assert.equal(decodeKeyValue(out.kvs[0]!).mod, 10n, 'the state at the requested revision');
});
