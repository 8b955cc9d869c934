import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assembleRange, memberShape } from '../src/kv/range-result.js';
import type { MemberRangeShape, ShardRangePart } from '../src/kv/range-result.js';
import type { RangeRequest } from '../src/etcd/types.js';
import { SortOrder, SortTarget } from '../src/etcd/types.js';
import type { MetaKV } from '../src/shard/meta-kv.js';
import { rangeRequest } from '../src/etcd/defaults.js';

function req(f: Partial<RangeRequest> = {}): RangeRequest {
  return rangeRequest(Buffer.from([0]), Buffer.from([0]), f);
}

function kv(key: string, mod: number, create: number, version: number, value: string): MetaKV {
  return {
    key: Buffer.from(key),
    mod: BigInt(mod),
    create: BigInt(create),
    version: BigInt(version),
    value: Buffer.from(value),
    lease: 0n,
    memberMod: 1000n + BigInt(mod),
  };
}

function part(kvs: MetaKV[], count = BigInt(kvs.length)): ShardRangePart {
  return { kvs, count };
}

const keys = (o: { kvs: { key: Buffer }[] }) => o.kvs.map((k) => k.key.toString());

/** What a member holding `held` answers for the shape the proxy asks of it (as etcd would). */
function memberPart(held: MetaKV[], shape: MemberRangeShape): ShardRangePart {
  const asc = [...held].sort((x, y) => Buffer.compare(x.key, y.key));
  const count = BigInt(asc.length);
  if (shape.countOnly) return { kvs: [], count };
  const ordered = shape.sortDescendingByKey ? asc.reverse() : asc;
  const kvs = shape.limit > 0n ? ordered.slice(0, Number(shape.limit)) : ordered;
  return { kvs, count };
}

/** The proxy's answer for `r` over shards holding `held`. */
function run(r: RangeRequest, held: MetaKV[][]) {
  const shape = memberShape(r);
  return assembleRange(r, held.map((h) => memberPart(h, shape)));
}

// Nine keys over three shards, interleaved in key order.
//            key  mod create ver value
const A = kv('a', 30, 3, 1, 'v5');
const B = kv('b', 12, 12, 4, 'v2');
const C = kv('c', 25, 25, 1, 'v9');
const D = kv('d', 18, 10, 2, 'v1');
const E = kv('e', 40, 1, 7, 'v3');
const F = kv('f', 5, 5, 1, 'v8');
const G = kv('g', 33, 20, 3, 'v4');
const H = kv('h', 21, 21, 1, 'v7');
const I = kv('i', 9, 2, 5, 'v6');
const shards = () => [part([A, D, G]), part([B, E, H]), part([C, F, I])];
const held = () => [[A, D, G], [B, E, H], [C, F, I]];

describe('assembleRange: merge, count, limit', () => {
  test('k-way merges sorted shard parts into key order', () => {
    const out = assembleRange(req(), shards());
    assert.deepEqual(keys(out), ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    assert.equal(out.count, 9n);
    assert.equal(out.more, false);
    // Outgoing int64s are numbers when exact (wire64): compare their decimal forms.
    const e = out.kvs[4];
    assert.deepEqual(
      { ...e, create_revision: String(e.create_revision), mod_revision: String(e.mod_revision), version: String(e.version), lease: String(e.lease) },
      { key: Buffer.from('e'), create_revision: '1', mod_revision: '40', version: '7', value: Buffer.from('v3'), lease: '0' },
    );
  });

  test('uneven and empty parts', () => {
    const out = assembleRange(req(), [part([]), part([B, C, D, H]), part([A, I]), part([])]);
    assert.deepEqual(keys(out), ['a', 'b', 'c', 'd', 'h', 'i']);
    assert.equal(out.count, 6n);
    assert.deepEqual(keys(assembleRange(req(), [part([])])), []);
  });

  test('count is the sum of part counts, unaffected by limit', () => {
    const out = run(req({ limit: '2' }), held());
    assert.deepEqual(keys(out), ['a', 'b']);
    assert.equal(out.count, 9n);
    assert.equal(out.more, true);
    // Counts as reported by the members, whatever they returned.
    const odd = assembleRange(req({ limit: '2' }), [part([A, D], 5n), part([B], 4n), part([], 1n)]);
    assert.equal(odd.count, 10n);
  });

  test('more: true only when keys beyond the limit exist', () => {
    assert.equal(run(req({ limit: '9' }), held()).more, false);
    assert.equal(run(req({ limit: '100' }), held()).more, false);
    assert.equal(run(req({ limit: '8' }), held()).more, true);
    // All keys on one shard, the others empty.
    const one = run(req({ limit: '2' }), [[A, D, G], [], []]);
    assert.deepEqual(keys(one), ['a', 'd']);
    assert.equal(one.more, true);
    assert.equal(one.count, 3n);
    const exact = run(req({ limit: '3' }), [[A, D, G], [], []]);
    assert.equal(exact.more, false);
  });

  test('limit 0 means no limit and more=false', () => {
    const out = run(req({ limit: '0' }), held());
    assert.equal(out.kvs.length, 9);
    assert.equal(out.more, false);
  });

  test('a descending key-sorted limited range merges descending parts', () => {
    const r = req({ limit: '4', sort_order: SortOrder.DESCEND });
    const shape = memberShape(r);
    assert.equal(shape.sortDescendingByKey, true);
    assert.ok(shape.limit >= 4n, `members asked for ${shape.limit} keys`);
    const out = run(r, held());
    assert.deepEqual(keys(out), ['i', 'h', 'g', 'f']);
    assert.equal(out.more, true);
    assert.equal(out.count, 9n);
  });
});

describe('assembleRange: sort', () => {
  const order = (target: number, sortOrder: number, limit = '0') =>
    keys(assembleRange(req({ sort_target: target, sort_order: sortOrder, limit }), shards()));

  test('KEY', () => {
    assert.deepEqual(order(SortTarget.KEY, SortOrder.NONE), ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    assert.deepEqual(order(SortTarget.KEY, SortOrder.ASCEND), ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    assert.deepEqual(order(SortTarget.KEY, SortOrder.DESCEND), ['i', 'h', 'g', 'f', 'e', 'd', 'c', 'b', 'a']);
  });

  test('MOD', () => {
    // mods: f5 i9 b12 d18 h21 c25 a30 g33 e40
    assert.deepEqual(order(SortTarget.MOD, SortOrder.ASCEND), ['f', 'i', 'b', 'd', 'h', 'c', 'a', 'g', 'e']);
    assert.deepEqual(order(SortTarget.MOD, SortOrder.DESCEND), ['e', 'g', 'a', 'c', 'h', 'd', 'b', 'i', 'f']);
    assert.deepEqual(order(SortTarget.MOD, SortOrder.NONE), ['f', 'i', 'b', 'd', 'h', 'c', 'a', 'g', 'e'], 'NONE → ASCEND');
  });

  test('CREATE', () => {
    // creates: e1 i2 a3 f5 d10 b12 g20 h21 c25
    assert.deepEqual(order(SortTarget.CREATE, SortOrder.ASCEND), ['e', 'i', 'a', 'f', 'd', 'b', 'g', 'h', 'c']);
    assert.deepEqual(order(SortTarget.CREATE, SortOrder.DESCEND), ['c', 'h', 'g', 'b', 'd', 'f', 'a', 'i', 'e']);
    assert.deepEqual(order(SortTarget.CREATE, SortOrder.NONE), ['e', 'i', 'a', 'f', 'd', 'b', 'g', 'h', 'c'], 'NONE → ASCEND');
  });

  test('VALUE', () => {
    // values: d v1, b v2, e v3, g v4, a v5, i v6, h v7, f v8, c v9
    assert.deepEqual(order(SortTarget.VALUE, SortOrder.ASCEND), ['d', 'b', 'e', 'g', 'a', 'i', 'h', 'f', 'c']);
    assert.deepEqual(order(SortTarget.VALUE, SortOrder.DESCEND), ['c', 'f', 'h', 'i', 'a', 'g', 'e', 'b', 'd']);
    assert.deepEqual(order(SortTarget.VALUE, SortOrder.NONE), ['d', 'b', 'e', 'g', 'a', 'i', 'h', 'f', 'c'], 'NONE → ASCEND');
  });

  test('VERSION, ties keep key order', () => {
    // versions: a1 c1 f1 h1 | d2 | g3 | b4 | i5 | e7
    assert.deepEqual(order(SortTarget.VERSION, SortOrder.ASCEND), ['a', 'c', 'f', 'h', 'd', 'g', 'b', 'i', 'e']);
    assert.deepEqual(order(SortTarget.VERSION, SortOrder.NONE), ['a', 'c', 'f', 'h', 'd', 'g', 'b', 'i', 'e']);
    assert.deepEqual(order(SortTarget.VERSION, SortOrder.DESCEND), ['e', 'i', 'b', 'g', 'd', 'a', 'c', 'f', 'h']);
  });

  test('explicit sort order then limit: the limit applies to the sorted order of all keys', () => {
    const r = req({ sort_target: SortTarget.MOD, sort_order: SortOrder.DESCEND, limit: '3' });
    assert.deepEqual(memberShape(r), { limit: 0n, sortDescendingByKey: false, countOnly: false });
    const out = run(r, held());
    assert.deepEqual(keys(out), ['e', 'g', 'a']);
    assert.equal(out.more, true);
    assert.equal(out.count, 9n);
    assert.deepEqual(keys(run(req({ sort_target: SortTarget.CREATE, sort_order: SortOrder.ASCEND, limit: '2' }), held())), ['e', 'i']);
    // Key DESCEND with a limit: members answer with their top keys, descending.
    const kd = run(req({ sort_order: SortOrder.DESCEND, limit: '2' }), held());
    assert.deepEqual(keys(kd), ['i', 'h']);
    assert.equal(kd.more, true);
  });

  test('sort order NONE with a non-key target and a limit sorts only the first limit+1 keys (etcd quirk)', () => {
    // etcd (checked against 3.4) fetches limit+1 keys in key order when sort_order is NONE,
    // then sorts those ascending by the target and truncates to the limit.
    // First 3 keys a(mod 30) b(12) c(25) → by mod: b, c (not f(5), i(9) as a full sort would).
    const r = req({ sort_target: SortTarget.MOD, sort_order: SortOrder.NONE, limit: '2' });
    assert.deepEqual(memberShape(r), { limit: 3n, sortDescendingByKey: false, countOnly: false });
    const out = run(r, held());
    assert.deepEqual(keys(out), ['b', 'c']);
    assert.equal(out.more, true);
    assert.equal(out.count, 9n);
    // limit 8: first 9 keys = all, sorted by mod, truncated to 8.
    assert.deepEqual(keys(run(req({ sort_target: SortTarget.MOD, limit: '8' }), held())), ['f', 'i', 'b', 'd', 'h', 'c', 'a', 'g']);
    // With a revision filter etcd fetches everything: a full sort.
    const f = run(req({ sort_target: SortTarget.MOD, limit: '2', min_mod_revision: '1' }), held());
    assert.deepEqual(keys(f), ['f', 'i']);
  });

  test('key DESCEND without limit: members send ascending parts, the proxy sorts', () => {
    const r = req({ sort_order: SortOrder.DESCEND });
    assert.deepEqual(memberShape(r), { limit: 0n, sortDescendingByKey: false, countOnly: false });
  });
});

describe('assembleRange: filters', () => {
  const filtered = (f: Partial<RangeRequest>) => assembleRange(req(f), shards());

  test('min/max mod', () => {
    assert.deepEqual(keys(filtered({ min_mod_revision: '21' })), ['a', 'c', 'e', 'g', 'h']);
    assert.deepEqual(keys(filtered({ max_mod_revision: '18' })), ['b', 'd', 'f', 'i']);
    assert.deepEqual(keys(filtered({ min_mod_revision: '12', max_mod_revision: '25' })), ['b', 'c', 'd', 'h']);
  });

  test('min/max create', () => {
    assert.deepEqual(keys(filtered({ min_create_revision: '20' })), ['c', 'g', 'h']);
    assert.deepEqual(keys(filtered({ max_create_revision: '3' })), ['a', 'e', 'i']);
    assert.deepEqual(keys(filtered({ min_create_revision: '5', max_create_revision: '12' })), ['b', 'd', 'f']);
  });

  test('filters leave count alone and apply before the limit', () => {
    const out = filtered({ min_mod_revision: '21', limit: '2' });
    assert.deepEqual(keys(out), ['a', 'c']);
    assert.equal(out.count, 9n);
    assert.equal(out.more, true);
    const fits = filtered({ min_mod_revision: '21', limit: '5' });
    assert.equal(fits.kvs.length, 5);
    assert.equal(fits.more, false);
    assert.equal(fits.count, 9n);
  });

  test('filters combine with sort', () => {
    const out = filtered({ max_create_revision: '10', sort_target: SortTarget.MOD, sort_order: SortOrder.DESCEND });
    // create <= 10: a(mod30) d(18) e(40) f(5) i(9)
    assert.deepEqual(keys(out), ['e', 'a', 'd', 'i', 'f']);
  });
});

describe('assembleRange: keys_only and count_only', () => {
  test('keys_only strips values but keeps the other fields', () => {
    const out = assembleRange(req({ keys_only: true }), shards());
    assert.equal(out.kvs.length, 9);
    for (const k of out.kvs) assert.equal(k.value.length, 0);
    assert.equal(String(out.kvs[0].mod_revision), '30');
    assert.equal(String(out.kvs[0].version), '1');
  });

  test('count_only returns the count and no kvs', () => {
    const r = req({ count_only: true, limit: '2' });
    assert.deepEqual(memberShape(r), { limit: 0n, sortDescendingByKey: false, countOnly: true });
    const out = assembleRange(r, [part([], 4n), part([], 6n), part([], 0n)]);
    assert.deepEqual(out, { kvs: [], more: false, count: 10n });
    const f = assembleRange(req({ count_only: true, min_mod_revision: '100' }), [part([], 4n)]);
    assert.equal(f.count, 4n);
  });
});

describe('memberShape', () => {
  const no = { limit: 0n, sortDescendingByKey: false, countOnly: false };

  test('without a limit members return everything', () => {
    assert.deepEqual(memberShape(req()), no);
    assert.deepEqual(memberShape(req({ sort_order: SortOrder.DESCEND })), no);
    assert.deepEqual(memberShape(req({ limit: '-1' })), no);
  });

  test('the limit is pushed down for key order (either direction)', () => {
    for (const order of [SortOrder.NONE, SortOrder.ASCEND, SortOrder.DESCEND]) {
      const s = memberShape(req({ limit: '10', sort_order: order }));
      assert.ok(s.limit >= 10n, `order ${order}: members asked for ${s.limit}`);
      assert.equal(s.sortDescendingByKey, order === SortOrder.DESCEND);
      assert.equal(s.countOnly, false);
    }
  });

  test('not for an explicit sort on another target, nor with revision filters', () => {
    for (const t of [SortTarget.VERSION, SortTarget.CREATE, SortTarget.MOD, SortTarget.VALUE]) {
      assert.deepEqual(memberShape(req({ limit: '10', sort_target: t, sort_order: SortOrder.ASCEND })), no, `target ${t}`);
      assert.deepEqual(memberShape(req({ limit: '10', sort_target: t, sort_order: SortOrder.DESCEND })), no, `target ${t}`);
      // Order NONE: etcd looks at exactly limit+1 keys in key order.
      assert.deepEqual(memberShape(req({ limit: '10', sort_target: t })), { limit: 11n, sortDescendingByKey: false, countOnly: false });
    }
    for (const f of ['min_mod_revision', 'max_mod_revision', 'min_create_revision', 'max_create_revision'] as const) {
      assert.deepEqual(memberShape(req({ limit: '10', [f]: '5' })), no, f);
      assert.deepEqual(memberShape(req({ limit: '10', sort_order: SortOrder.DESCEND, [f]: '5' })), no, f);
    }
  });
});
