import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CHAIN_FORMAT, ENVELOPE_FORMAT, ENVELOPE_SIZE, decodeClock, decodeEnvelope, encodeClock, encodeEnvelope, firstRevision } from '../src/shard/envelope.js';
import { chainStateAt } from '../src/shard/meta-kv.js';
import { Keyspace, RESERVED, SYS_PREFIX, prefixEnd, sysKey } from '../src/shard/keyspace.js';
import { rng } from './helpers/rng.js';

const b = (s: string) => Buffer.from(s);
const hex = (x: Buffer | null | undefined) => (x ? x.toString('hex') : x);


describe('envelope format 2 (put chains)', () => {
  const earlier = [
    { rev: 100n, value: b('first') },
    { rev: 101n, value: Buffer.alloc(0) },
  ];

  test('round trip: the delta and the earlier puts, oldest first, then the last value', () => {
    const e = encodeEnvelope(102n, 90n, 0n, b('last'), 5n, earlier);
    assert.equal(e[0], CHAIN_FORMAT);
    const d = decodeEnvelope(e);
    assert.deepEqual(d, { mod: 102n, create: 90n, lease: 0n, value: b('last'), delta: 5n, chain: earlier });
    assert.equal(firstRevision(d), 100n);
  });

  test('a delta with no earlier puts keeps format 2; no delta and no chain is format 1', () => {
    assert.deepEqual(decodeEnvelope(encodeEnvelope(7n, 3n, 0n, b('v'), 2n)), { mod: 7n, create: 3n, lease: 0n, value: b('v'), delta: 2n });
    assert.equal(encodeEnvelope(7n, 3n, 0n, b('v'), 0n, [])[0], ENVELOPE_FORMAT);
  });

  test('a chain envelope cut short is returned as a foreign value, not a crash', () => {
    const e = encodeEnvelope(102n, 90n, 0n, b('last'), 5n, earlier);
    for (const cut of [36, 40, 47, 50]) {
      const d = decodeEnvelope(e.subarray(0, cut));
      assert.equal(d.mod, 0n, `cut at ${cut}`);
      assert.equal(d.value.length, cut);
    }
  });

  test('chainStateAt: the put of the chain at or below a revision, with its version; null before the chain', () => {
    const kv = { key: b('k'), create: 90n, mod: 102n, version: 8n, lease: 0n, value: b('last'), memberMod: 40n, delta: 5n, chain: earlier };
    assert.equal(chainStateAt(kv, 102n), kv);
    assert.equal(chainStateAt(kv, 500n), kv);
    const at101 = chainStateAt(kv, 101n);
    assert.deepEqual([at101?.mod, at101?.version, at101?.value.toString(), at101?.delta], [101n, 7n, '', 4n]);
    const at100 = chainStateAt(kv, 100n);
    assert.deepEqual([at100?.mod, at100?.version, at100?.value.toString()], [100n, 6n, 'first']);
    assert.equal(chainStateAt(kv, 99n), null);
  });
});

describe('envelope', () => {
  test('layout: format byte, mod, create, lease (int64 BE), then the value', () => {
    const e = encodeEnvelope(0x0102n, 0x0304n, 0x0506n, b('xy'));
    assert.equal(ENVELOPE_SIZE, 25);
    assert.equal(e.length, 27);
    assert.equal(
      e.toString('hex'),
      '01' + '0000000000000102' + '0000000000000304' + '0000000000000506' + '7879',
    );
    assert.equal(e[0], ENVELOPE_FORMAT);
  });

  test('round trip keeps large revisions and negative lease ids exact', () => {
    const cases: [bigint, bigint, bigint, Buffer][] = [
      [(1n << 62n) + 12345n, (1n << 62n) - 1n, -1n, b('hello')],
      [(1n << 63n) - 1n, 1n, -(1n << 63n), Buffer.alloc(0)],
      [2n, 2n, 0x694d7d0a2b3c4d5en, Buffer.from([0, 1, 0xff])],
      [9007199254740993n, 9007199254740993n, -9007199254740993n, Buffer.alloc(3000, 7)],
    ];
    for (const [mod, create, lease, value] of cases) {
      const d = decodeEnvelope(encodeEnvelope(mod, create, lease, value));
      assert.equal(d.mod, mod);
      assert.equal(d.create, create);
      assert.equal(d.lease, lease);
      assert.deepEqual(d.value, value);
    }
  });

  test('the decoded value does not alias the raw buffer', () => {
    const raw = encodeEnvelope(5n, 4n, 0n, b('abc'));
    const d = decodeEnvelope(raw);
    raw[ENVELOPE_SIZE] = 0x7a;
    assert.equal(d.value.toString(), 'abc');
  });

  test('a value without an envelope decodes as-is with zero meta fields', () => {
    for (const raw of [b('plain value written by etcdctl, longer than 25 bytes'), b('short'), Buffer.alloc(0)]) {
      const d = decodeEnvelope(raw);
      assert.deepEqual({ mod: d.mod, create: d.create, lease: d.lease }, { mod: 0n, create: 0n, lease: 0n });
      assert.deepEqual(d.value, raw);
    }
    // 25+ bytes but the wrong format byte.
    const wrong = encodeEnvelope(7n, 7n, 7n, b('v'));
    wrong[0] = 2;
    assert.equal(decodeEnvelope(wrong).mod, 0n);
    assert.deepEqual(decodeEnvelope(wrong).value, wrong);
    // 24 bytes starting with the format byte: too short for an envelope.
    const short = Buffer.alloc(24, 0);
    short[0] = 1;
    assert.equal(decodeEnvelope(short).mod, 0n);
    assert.equal(decodeEnvelope(short).value.length, 24);
  });

  test('clock encoding: 8 bytes big-endian, round trip, malformed → 0', () => {
    assert.equal(encodeClock(1n).toString('hex'), '0000000000000001');
    assert.equal(encodeClock(0x0102030405060708n).toString('hex'), '0102030405060708');
    assert.equal(decodeClock(encodeClock((1n << 62n) + 3n)), (1n << 62n) + 3n);
    assert.equal(decodeClock(undefined), 0n);
    assert.equal(decodeClock(Buffer.from([1, 2, 3])), 0n);
    assert.equal(decodeClock(Buffer.alloc(9, 1)), 0n);
  });

  test('clock encoding is order-preserving under Buffer.compare', () => {
    const r = rng(7);
    const vals: bigint[] = [0n, 1n, 255n, 256n, 65535n, 65536n, (1n << 62n) - 1n, 1n << 62n, (1n << 63n) - 1n];
    for (let i = 0; i < 2000; i++) {
      // Mix of magnitudes: random bit length up to 62.
      const bits = BigInt(Math.floor(r() * 63));
      const hi = BigInt(Math.floor(r() * 2 ** 31));
      const lo = BigInt(Math.floor(r() * 2 ** 31));
      vals.push(((hi << 31n) | lo) & ((1n << bits) - 1n));
    }
    for (let i = 0; i < vals.length; i++) {
      const a = vals[i];
      const c = vals[(i * 7919 + 13) % vals.length];
      const want = a < c ? -1 : a > c ? 1 : 0;
      assert.equal(Buffer.compare(encodeClock(a), encodeClock(c)), want, `${a} vs ${c}`);
    }
    const sorted = [...vals].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    const byBytes = vals.map(encodeClock).sort(Buffer.compare).map((x) => decodeClock(x));
    assert.deepEqual(byBytes, sorted);
  });
});

describe('prefixEnd', () => {
  test('edge cases', () => {
    assert.equal(hex(prefixEnd(b('abc'))), hex(b('abd')));
    assert.equal(hex(prefixEnd(b('/a/'))), hex(b('/a0')));
    assert.equal(hex(prefixEnd(Buffer.from([0x61, 0xff]))), '62');
    assert.equal(hex(prefixEnd(Buffer.from([0x61, 0xff, 0xff]))), '62');
    assert.equal(hex(prefixEnd(Buffer.from([0x00]))), '01');
    assert.equal(hex(prefixEnd(Buffer.from([0xfe, 0xff]))), 'ff');
    assert.equal(prefixEnd(Buffer.from([0xff])).length, 0);
    assert.equal(prefixEnd(Buffer.from([0xff, 0xff, 0xff])).length, 0);
    assert.equal(prefixEnd(Buffer.alloc(0)).length, 0);
  });

  test('does not modify its input', () => {
    const p = b('abc');
    prefixEnd(p);
    assert.equal(p.toString(), 'abc');
  });
});

describe('system keys', () => {
  test('sit under 0xffffff "metaproxy/"', () => {
    assert.equal(hex(RESERVED), 'ffffff');
    assert.equal(hex(SYS_PREFIX), 'ffffff' + b('metaproxy/').toString('hex'));
    assert.equal(hex(sysKey('clock')), 'ffffff' + b('metaproxy/clock').toString('hex'));
  });
});

describe('Keyspace without namespace', () => {
  const ks = new Keyspace();

  test('writable refuses keys at or above 0xffffff', () => {
    assert.equal(ks.writable(b('a')), true);
    assert.equal(ks.writable(Buffer.from([0xff, 0xff])), true);
    assert.equal(ks.writable(Buffer.from([0xff, 0xff, 0xfe, 0xff])), true);
    assert.equal(ks.writable(Buffer.from([0xff, 0xff, 0xff])), false);
    assert.equal(ks.writable(Buffer.from([0xff, 0xff, 0xff, 0x00])), false);
    assert.equal(ks.writable(sysKey('clock')), false);
  });

  test('toMember/fromMember are the identity', () => {
    assert.deepEqual(ks.toMember(b('k')), b('k'));
    assert.deepEqual(ks.fromMember(b('k')), b('k'));
  });

  test('toMemberRange: single key → [k, k\\0)', () => {
    const r = ks.toMemberRange(b('foo'), Buffer.alloc(0));
    assert.deepEqual(r && { start: hex(r.start), end: hex(r.end) }, { start: hex(b('foo')), end: hex(b('foo\0')) });
    assert.equal(ks.toMemberRange(Buffer.from([0xff, 0xff, 0xff, 0x61]), Buffer.alloc(0)), null);
  });

  test('toMemberRange: prefix range passes through', () => {
    const r = ks.toMemberRange(b('/a/'), b('/a0'));
    assert.deepEqual(r && [hex(r.start), hex(r.end)], [hex(b('/a/')), hex(b('/a0'))]);
  });

  test('toMemberRange: from-key and all keys are clipped below RESERVED', () => {
    const from = ks.toMemberRange(b('m'), Buffer.from([0]));
    assert.deepEqual(from && [hex(from.start), hex(from.end)], [hex(b('m')), 'ffffff']);
    const all = ks.toMemberRange(Buffer.from([0]), Buffer.from([0]));
    assert.deepEqual(all && [hex(all.start), hex(all.end)], ['00', 'ffffff']);
  });

  test('toMemberRange: an explicit end above RESERVED is clipped to it', () => {
    const r = ks.toMemberRange(b('a'), Buffer.from([0xff, 0xff, 0xff, 0xff]));
    assert.deepEqual(r && [hex(r.start), hex(r.end)], [hex(b('a')), 'ffffff']);
    const r2 = ks.toMemberRange(b('a'), Buffer.from([0xff, 0xff, 0xfe]));
    assert.deepEqual(r2 && [hex(r2.start), hex(r2.end)], [hex(b('a')), 'fffffe']);
  });

  test('toMemberRange: empty or reserved-only ranges are null', () => {
    assert.equal(ks.toMemberRange(b('b'), b('a')), null, 'range_end below key');
    assert.equal(ks.toMemberRange(b('a'), b('a')), null, 'range_end equal to key');
    assert.equal(ks.toMemberRange(Buffer.from([0xff, 0xff, 0xff]), Buffer.from([0])), null, 'from-key inside the reserved area');
    assert.equal(ks.toMemberRange(Buffer.from([0xff, 0xff, 0xff, 1]), Buffer.from([0xff, 0xff, 0xff, 9])), null);
  });
});

describe('Keyspace with a namespace', () => {
  const ks = new Keyspace(b('/ns/'));

  test('maps keys into the namespace and back', () => {
    assert.deepEqual(ks.toMember(b('k')), b('/ns/k'));
    assert.deepEqual(ks.fromMember(b('/ns/k')), b('k'));
    assert.deepEqual(ks.fromMember(ks.toMember(Buffer.from([0xff, 0xff, 0xff]))), Buffer.from([0xff, 0xff, 0xff]));
  });

  test('every key is writable (the namespace keeps it away from system keys)', () => {
    assert.equal(ks.writable(Buffer.from([0xff, 0xff, 0xff])), true);
  });

  test('toMemberRange', () => {
    const one = ks.toMemberRange(b('k'), Buffer.alloc(0));
    assert.deepEqual(one && [one.start.toString(), one.end.toString()], ['/ns/k', '/ns/k\0']);
    const pre = ks.toMemberRange(b('a/'), b('a0'));
    assert.deepEqual(pre && [pre.start.toString(), pre.end.toString()], ['/ns/a/', '/ns/a0']);
    const from = ks.toMemberRange(b('m'), Buffer.from([0]));
    assert.deepEqual(from && [from.start.toString(), from.end.toString()], ['/ns/m', '/ns0']);
    const all = ks.toMemberRange(Buffer.from([0]), Buffer.from([0]));
    assert.deepEqual(all && [all.start.toString('latin1'), all.end.toString()], ['/ns/\0', '/ns0']);
    // An end of 0xff... maps inside the namespace and stays below its end.
    const high = ks.toMemberRange(b('a'), Buffer.from([0xff, 0xff, 0xff, 0xff]));
    assert.deepEqual(high && [hex(high.start), hex(high.end)], [hex(b('/ns/a')), hex(Buffer.concat([b('/ns/'), Buffer.from([0xff, 0xff, 0xff, 0xff])]))]);
    assert.equal(ks.toMemberRange(b('z'), b('a')), null);
  });
});

test('wire64: exact numbers up to 2^53-1, decimal strings beyond', async () => {
  const { wire64 } = await import('../src/etcd/types.js');
  assert.equal(wire64(42n), 42 as unknown as string);
  assert.equal(wire64(9007199254740991n), 9007199254740991 as unknown as string);
  assert.equal(wire64(9007199254740992n), '9007199254740992');
  assert.equal(wire64(-9223372036854775808n), '-9223372036854775808');
});
