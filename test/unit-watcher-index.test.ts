import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prefixEnd } from '../src/shard/keyspace.js';
import { IntervalTreap } from '../src/watch/index/interval-treap.js';
import { WatcherIndex, type WatchedRange } from '../src/watch/index/watcher-index.js';
import { rng } from './helpers/rng.js';

/** Short keys over a tiny alphabet (0x00, 'a', 'b', 0xff) so ranges overlap and edges get hit. */
function randomKey(r: () => number, maxLen = 4): Buffer {
  const alphabet = [0x00, 0x61, 0x62, 0xff];
  const len = Math.floor(r() * (maxLen + 1));
  return Buffer.from(Array.from({ length: len }, () => alphabet[Math.floor(r() * alphabet.length)]!));
}

function randomRange(r: () => number): WatchedRange {
  const key = randomKey(r);
  const k = key.length ? key : Buffer.from([0]);
  const kind = r();
  if (kind < 0.25) return { key: k, end: null };
  if (kind < 0.55) return { key: k, end: prefixEnd(k) };
  if (kind < 0.65) return { key: k, end: Buffer.alloc(0) };
  return { key: k, end: randomKey(r) };
}

/** The hub's rule (watcher.ts covers()), applied to every watcher. */
function holds(range: WatchedRange, key: Buffer): boolean {
  if (range.end === null) return key.equals(range.key);
  if (Buffer.compare(key, range.key) < 0) return false;
  return range.end.length === 0 || Buffer.compare(key, range.end) < 0;
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  test(`watcher index: same watchers as a brute-force scan over random ranges (seed ${seed})`, () => {
    const r = rng(seed);
    const index = new WatcherIndex<number, string>();
    const ranges = new Map<number, WatchedRange>();
    let next = 0;
    for (let step = 0; step < 3000; step++) {
      const op = r();
      if (op < 0.45 || ranges.size === 0) {
        const id = next++;
        const range = randomRange(r);
        ranges.set(id, range);
        index.add(id, range, `v${id}`);
      } else if (op < 0.65) {
        const ids = [...ranges.keys()];
        const id = ids[Math.floor(r() * ids.length)]!;
        ranges.delete(id);
        assert.equal(index.remove(id), true);
        assert.equal(index.remove(id), false);
      } else {
        const key = randomKey(r, 5);
        const got: number[] = [];
        index.forEachHolding(key, (id, v) => {
          assert.equal(v, `v${id}`);
          got.push(id);
        });
        const want = [...ranges].filter(([, range]) => holds(range, key)).map(([id]) => id);
        assert.deepEqual(got.sort((a, b) => a - b), want.sort((a, b) => a - b), `key ${key.toString('hex')}`);
      }
      assert.equal(index.size, ranges.size);
    }
  });
}

test('interval treap: stabbing equals a scan, with unbounded ends and many equal starts', () => {
  const r = rng(99);
  const t = new IntervalTreap<number>();
  const live = new Map<number, { s: string; e: string | null; h: ReturnType<typeof t.insert> }>();
  const str = () => randomKey(r, 3).toString('latin1');
  for (let i = 0; i < 4000; i++) {
    if (r() < 0.6 || live.size === 0) {
      const s = r() < 0.3 ? 'a' : str();
      const e = r() < 0.2 ? null : str();
      live.set(i, { s, e, h: t.insert(s, e, i) });
    } else {
      const ids = [...live.keys()];
      const id = ids[Math.floor(r() * ids.length)]!;
      assert.equal(t.remove(live.get(id)!.h), true);
      live.delete(id);
    }
    const key = str();
    const got: number[] = [];
    t.stab(key, (v) => got.push(v));
    const want = [...live].filter(([, x]) => x.s <= key && (x.e === null || key < x.e)).map(([id]) => id);
    assert.deepEqual(got.sort((a, b) => a - b), want.sort((a, b) => a - b));
    assert.equal(t.size, live.size);
  }
});

test('watcher index: a re-added watcher keeps one entry (its new range)', () => {
  const index = new WatcherIndex<string, number>();
  index.add('w', { key: Buffer.from('a/'), end: prefixEnd(Buffer.from('a/')) }, 1);
  index.add('w', { key: Buffer.from('b'), end: null }, 2);
  const seen: Array<[string, number]> = [];
  index.forEachHolding(Buffer.from('a/x'), (w, v) => seen.push([w, v]));
  index.forEachHolding(Buffer.from('b'), (w, v) => seen.push([w, v]));
  assert.deepEqual(seen, [['w', 2]]);
  assert.equal(index.size, 1);
});
