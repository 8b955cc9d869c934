import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hash64, initHash } from '../src/partition/hash.js';
import { defaultPartitionMap, mapMismatch, parsePartitionMap } from '../src/partition/map.js';
import { Router } from '../src/partition/router.js';
import { rng } from './helpers/rng.js';

const b = (s: string) => Buffer.from(s);


function randomKey(r: () => number): Buffer {
  const len = 1 + Math.floor(r() * 40);
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) out[i] = Math.floor(r() * 256);
  return out;
}

before(async () => {
  await initHash();
});

describe('hash64', () => {
  test('is xxhash64 with seed 0 over raw bytes (reference vectors)', () => {
    assert.equal(hash64(Buffer.alloc(0)), 0xef46db3751d8e999n);
    assert.equal(hash64(b('abc')), 0x44bc2cf5ad770999n);
  });

  test('a non-UTF-8 key hashes its bytes, not its UTF-8 replacement string', () => {
    const raw = Buffer.from([0xff, 0xfe]);
    const replaced = Buffer.from(raw.toString('utf8'), 'utf8');
    assert.deepEqual([...replaced], [0xef, 0xbf, 0xbd, 0xef, 0xbf, 0xbd]);
    const h = hash64(raw);
    assert.equal(hash64(Buffer.from([0xff, 0xfe])), h, 'consistent across buffers with the same bytes');
    assert.equal(hash64(new Uint8Array([0xff, 0xfe])), h, 'a Uint8Array hashes like a Buffer');
    assert.notEqual(hash64(replaced), h);

    const router = new Router(defaultPartitionMap(1 << 20, 0, ['a', 'b', 'c']));
    assert.equal(router.partitionOf(raw), Number(h % BigInt(1 << 20)));
    assert.equal(router.partitionOf(replaced), Number(hash64(replaced) % BigInt(1 << 20)));
    assert.notEqual(router.partitionOf(raw), router.partitionOf(replaced));
  });
});

describe('Router', () => {
  test('the same key always maps to the same shard, across Router instances', () => {
    const map = defaultPartitionMap(64, 0, ['s0', 's1', 's2']);
    const r1 = new Router(map);
    const r2 = new Router(defaultPartitionMap(64, 0, ['s0', 's1', 's2']));
    const r = rng(1);
    for (let i = 0; i < 500; i++) {
      const k = randomKey(r);
      const s = r1.shardOf(k);
      assert.equal(r1.shardOf(Buffer.from(k)), s);
      assert.equal(r2.shardOf(k), s);
      assert.equal(s, map.owner[Number(hash64(k) % 64n)]);
    }
    assert.equal(r1.shardCount, 3);
  });

  test('30k random keys spread roughly evenly over 3 shards', () => {
    const router = new Router(defaultPartitionMap(256, 0, ['s0', 's1', 's2']));
    const counts = [0, 0, 0];
    const r = rng(42);
    const N = 30_000;
    for (let i = 0; i < N; i++) counts[router.shardOf(randomKey(r))]++;
    assert.equal(counts[0] + counts[1] + counts[2], N);
    for (const c of counts) {
      assert.ok(Math.abs(c - N / 3) <= N / 30, `shard counts ${counts.join(', ')} not within ±10% of ${N / 3}`);
    }
  });

  test('routingPrefixSegments=2: keys under one prefix share a shard; short keys hash whole', () => {
    const P = 1 << 16;
    const router = new Router(defaultPartitionMap(P, 2, ['s0', 's1', 's2']));
    assert.deepEqual(router.routingPrefix(b('/a/x')), b('/a/'));
    assert.deepEqual(router.routingPrefix(b('/a/x/y/z')), b('/a/'));
    assert.equal(router.routingPrefix(b('/a')), null);
    assert.equal(router.routingPrefix(b('a/b')), null);
    assert.equal(router.routingPrefix(b('ab')), null);

    const prefixPart = Number(hash64(b('/a/')) % BigInt(P));
    for (const k of ['/a/x', '/a/y', '/a/', '/a/x/y/z', '/a/\u00ff']) {
      assert.equal(router.partitionOf(b(k)), prefixPart, k);
    }
    assert.equal(router.shardOf(b('/a/x')), router.shardOf(b('/a/y')));
    // Fewer than 2 slashes: the whole key is hashed.
    for (const k of ['/a', 'a/b', 'plain']) {
      assert.equal(router.partitionOf(b(k)), Number(hash64(b(k)) % BigInt(P)), k);
    }
    // Without a routing prefix, the same keys spread (sanity: the prefix is what groups them).
    const whole = new Router(defaultPartitionMap(P, 0, ['s0', 's1', 's2']));
    const parts = new Set(Array.from({ length: 50 }, (_, i) => whole.partitionOf(b(`/a/${i}`))));
    assert.ok(parts.size > 40, `expected spread without routing prefix, got ${parts.size} partitions`);
    assert.equal(whole.routingPrefix(b('/a/x')), null);
  });

  test('shardsForRange', () => {
    const router = new Router(defaultPartitionMap(64, 2, ['s0', 's1', 's2']));
    const all = [0, 1, 2];
    // A single key.
    assert.deepEqual(router.shardsForRange(b('/a/x'), Buffer.alloc(0)), [router.shardOf(b('/a/x'))]);
    assert.deepEqual(router.shardsForRange(b('k'), Buffer.alloc(0)), [router.shardOf(b('k'))]);
    // A prefix range exactly covering the routing prefix, and a range inside it.
    const aShard = router.shardOf(b('/a/'));
    assert.deepEqual(router.shardsForRange(b('/a/'), b('/a0')), [aShard]);
    assert.deepEqual(router.shardsForRange(b('/a/b'), b('/a/c')), [aShard]);
    assert.deepEqual(router.shardsForRange(b('/a/b/'), b('/a/b0')), [aShard]);
    // From-key and all-keys.
    assert.deepEqual(router.shardsForRange(b('/a/'), Buffer.from([0])), all);
    assert.deepEqual(router.shardsForRange(Buffer.from([0]), Buffer.from([0])), all);
    // Crossing the routing prefix.
    assert.deepEqual(router.shardsForRange(b('/a/'), b('/a1')), all);
    assert.deepEqual(router.shardsForRange(b('/a/x'), b('/b/')), all);
    assert.deepEqual(router.shardsForRange(b('/a/'), b('/a0\0')), all);
    // A key without a full routing prefix cannot bound the range.
    assert.deepEqual(router.shardsForRange(b('/a'), b('/a/z')), all);
    assert.deepEqual(router.shardsForRange(b('a'), b('b')), all);
  });

  test('shardsForRange with a routing prefix holding 0xff bytes', () => {
    const router = new Router(defaultPartitionMap(64, 1, ['s0', 's1', 's2']));
    const k = Buffer.from([0xff, 0xff, 0x2f, 0x78]); // prefix ff ff 2f, prefix end ff ff 30
    assert.deepEqual(router.routingPrefix(k), Buffer.from([0xff, 0xff, 0x2f]));
    assert.deepEqual(router.shardsForRange(k, Buffer.from([0xff, 0xff, 0x30])), [router.shardOf(k)]);
    assert.deepEqual(router.shardsForRange(k, Buffer.from([0xff, 0xff, 0x2f, 0xff, 0xff])), [router.shardOf(k)]);
    assert.deepEqual(router.shardsForRange(k, Buffer.from([0xff, 0xff, 0x30, 0x00])), [0, 1, 2]);
  });

  test('shardsForRange with one shard returns [0] for every range', () => {
    const router = new Router(defaultPartitionMap(8, 0, ['only']));
    assert.deepEqual(router.shardsForRange(b('a'), Buffer.from([0])), [0]);
    assert.deepEqual(router.shardsForRange(b('a'), Buffer.alloc(0)), [0]);
  });
});

describe('partition map', () => {
  test('defaultPartitionMap assigns partitions round-robin and copies the shard list', () => {
    const shards = ['a', 'b', 'c'];
    const m = defaultPartitionMap(7, 1, shards);
    assert.deepEqual(m, { format: 1, partitions: 7, routingPrefixSegments: 1, shards: ['a', 'b', 'c'], owner: [0, 1, 2, 0, 1, 2, 0] });
    assert.notEqual(m.shards, shards);
    shards.push('d');
    assert.deepEqual(m.shards, ['a', 'b', 'c']);
    assert.deepEqual(defaultPartitionMap(4, 0, ['x', 'y']).owner, [0, 1, 0, 1]);
  });

  test('mapMismatch names the first difference, or returns null', () => {
    const rec = defaultPartitionMap(64, 0, ['a', 'b']);
    assert.equal(mapMismatch(rec, defaultPartitionMap(64, 0, ['a', 'b'])), null);
    assert.equal(mapMismatch(rec, defaultPartitionMap(128, 0, ['a', 'b'])), 'partitions: recorded 64, configured 128');
    assert.equal(mapMismatch(rec, defaultPartitionMap(64, 2, ['a', 'b'])), 'routingPrefixSegments: recorded 0, configured 2');
    assert.equal(mapMismatch(rec, defaultPartitionMap(64, 0, ['b', 'a'])), 'shards: recorded [a, b], configured [b, a]');
    assert.equal(mapMismatch(rec, defaultPartitionMap(64, 0, ['a', 'b', 'c'])), 'shards: recorded [a, b], configured [a, b, c]');
    // Partitions are checked first.
    assert.equal(mapMismatch(rec, defaultPartitionMap(32, 3, ['z'])), 'partitions: recorded 64, configured 32');
  });

  test('parsePartitionMap round-trips and rejects malformed maps', () => {
    const m = defaultPartitionMap(5, 2, ['a', 'b']);
    assert.deepEqual(parsePartitionMap(Buffer.from(JSON.stringify(m))), m);
    assert.throws(() => parsePartitionMap(Buffer.from(JSON.stringify({ ...m, owner: [0] }))), /malformed/);
    assert.throws(() => parsePartitionMap(Buffer.from(JSON.stringify({ ...m, format: 2 }))), /malformed/);
  });
});
