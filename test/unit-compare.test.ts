import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { evalCompare } from '../src/kv/compare.js';
import type { Compare } from '../src/etcd/types.js';
import { CompareResult, CompareTarget } from '../src/etcd/types.js';
import type { MetaKV } from '../src/shard/meta-kv.js';

const { EQUAL, GREATER, LESS, NOT_EQUAL } = CompareResult;
const { VERSION, CREATE, MOD, VALUE, LEASE } = CompareTarget;

function kv(key: string, f: Partial<Omit<MetaKV, 'key'>> = {}): MetaKV {
  return { key: Buffer.from(key), create: 10n, mod: 20n, version: 3n, lease: 7n, value: Buffer.from('m'), memberMod: 99n, ...f };
}

type Operand = bigint | string;

function compare(target: number, result: number, operand: Operand, rangeEnd = ''): Compare {
  const c: Compare = { target, result, key: Buffer.from('k'), range_end: Buffer.from(rangeEnd) };
  switch (target) {
    case VERSION:
      c.version = String(operand);
      break;
    case CREATE:
      c.create_revision = String(operand);
      break;
    case MOD:
      c.mod_revision = String(operand);
      break;
    case LEASE:
      c.lease = String(operand);
      break;
    case VALUE:
      c.value = Buffer.from(operand as string);
      break;
  }
  return c;
}

const existing = kv('k');
/** Field value of `existing` per target, and operands below/equal/above it. */
const cases: { name: string; target: number; below: Operand; equal: Operand; above: Operand }[] = [
  { name: 'VERSION', target: VERSION, below: 2n, equal: 3n, above: 4n },
  { name: 'CREATE', target: CREATE, below: 9n, equal: 10n, above: 11n },
  { name: 'MOD', target: MOD, below: 19n, equal: 20n, above: 21n },
  { name: 'LEASE', target: LEASE, below: 6n, equal: 7n, above: 8n },
  { name: 'VALUE', target: VALUE, below: 'l', equal: 'm', above: 'n' },
];

describe('evalCompare on an existing key', () => {
  for (const c of cases) {
    test(c.name, () => {
      const run = (result: number, op: Operand) => evalCompare(compare(c.target, result, op), [existing]);
      // field vs operand: field > below, field == equal, field < above
      assert.deepEqual(
        [run(EQUAL, c.below), run(EQUAL, c.equal), run(EQUAL, c.above)],
        [false, true, false],
        'EQUAL',
      );
      assert.deepEqual(
        [run(GREATER, c.below), run(GREATER, c.equal), run(GREATER, c.above)],
        [true, false, false],
        'GREATER',
      );
      assert.deepEqual([run(LESS, c.below), run(LESS, c.equal), run(LESS, c.above)], [false, false, true], 'LESS');
      assert.deepEqual(
        [run(NOT_EQUAL, c.below), run(NOT_EQUAL, c.equal), run(NOT_EQUAL, c.above)],
        [true, false, true],
        'NOT_EQUAL',
      );
    });
  }

  test('VALUE compares bytes (prefix is less, empty operand)', () => {
    const k = kv('k', { value: Buffer.from('abc') });
    assert.equal(evalCompare(compare(VALUE, LESS, 'abcd'), [k]), true);
    assert.equal(evalCompare(compare(VALUE, GREATER, 'ab'), [k]), true);
    assert.equal(evalCompare(compare(VALUE, GREATER, ''), [k]), true);
    const empty = kv('k', { value: Buffer.alloc(0) });
    assert.equal(evalCompare(compare(VALUE, EQUAL, ''), [empty]), true);
    const c: Compare = { target: VALUE, result: EQUAL, key: Buffer.from('k'), range_end: Buffer.alloc(0) }; // value unset
    assert.equal(evalCompare(c, [empty]), true);
    const hi = kv('k', { value: Buffer.from([0xff]) });
    assert.equal(evalCompare({ ...compare(VALUE, GREATER, ''), value: Buffer.from([0x7f]) }, [hi]), true, 'unsigned byte order');
  });

  test('revisions compare as 64-bit integers, not strings', () => {
    const big = kv('k', { mod: 1n << 62n });
    assert.equal(evalCompare(compare(MOD, GREATER, 9n), [big]), true);
    assert.equal(evalCompare(compare(MOD, EQUAL, (1n << 62n).toString()), [big]), true);
    assert.equal(evalCompare(compare(MOD, LESS, (1n << 62n) + 1n), [big]), true);
    const negLease = kv('k', { lease: -5n });
    assert.equal(evalCompare(compare(LEASE, LESS, 0n), [negLease]), true);
  });
});

describe('evalCompare on a missing key (etcd: VALUE false, others against 0)', () => {
  const missing = (target: number, result: number, op: Operand) => evalCompare(compare(target, result, op), []);
  for (const c of cases.filter((x) => x.target !== VALUE)) {
    test(c.name, () => {
      assert.equal(missing(c.target, EQUAL, 0n), true);
      assert.equal(missing(c.target, EQUAL, 1n), false);
      assert.equal(missing(c.target, NOT_EQUAL, 0n), false);
      assert.equal(missing(c.target, NOT_EQUAL, 5n), true);
      assert.equal(missing(c.target, LESS, 1n), true);
      assert.equal(missing(c.target, LESS, 0n), false);
      assert.equal(missing(c.target, GREATER, 0n), false);
      assert.equal(missing(c.target, GREATER, -1n), true);
    });
  }

  test('VALUE is false for every result, even against an empty value', () => {
    for (const r of [EQUAL, GREATER, LESS, NOT_EQUAL]) {
      for (const v of ['', 'x']) assert.equal(missing(VALUE, r, v), false, `result ${r} value "${v}"`);
    }
  });

  test('an unset operand counts as 0 (proto3 default)', () => {
    const c: Compare = { target: MOD, result: EQUAL, key: Buffer.from('k'), range_end: Buffer.alloc(0) };
    assert.equal(evalCompare(c, []), true);
    assert.equal(evalCompare(c, [existing]), false);
  });
});

describe('evalCompare on a range', () => {
  const a = kv('a', { mod: 5n, create: 5n, version: 1n, value: Buffer.from('x'), lease: 0n });
  const b = kv('b', { mod: 8n, create: 6n, version: 2n, value: Buffer.from('y'), lease: 0n });
  const c = kv('c', { mod: 12n, create: 7n, version: 3n, value: Buffer.from('z'), lease: 0n });

  test('every key must pass', () => {
    assert.equal(evalCompare(compare(MOD, LESS, 13n, 'd'), [a, b, c]), true);
    assert.equal(evalCompare(compare(MOD, LESS, 12n, 'd'), [a, b, c]), false, 'c fails');
    assert.equal(evalCompare(compare(MOD, GREATER, 5n, 'd'), [a, b, c]), false, 'a fails');
    assert.equal(evalCompare(compare(MOD, GREATER, 4n, 'd'), [a, b, c]), true);
    assert.equal(evalCompare(compare(VERSION, NOT_EQUAL, 2n, 'd'), [a, b, c]), false, 'b fails');
    assert.equal(evalCompare(compare(VALUE, GREATER, 'w', 'd'), [a, b, c]), true);
    assert.equal(evalCompare(compare(VALUE, EQUAL, 'x', 'd'), [a, b, c]), false);
    assert.equal(evalCompare(compare(LEASE, EQUAL, 0n, 'd'), [a, b, c]), true);
    assert.equal(evalCompare(compare(CREATE, EQUAL, 0n, 'd'), [a, b, c]), false);
  });

  test('an empty range behaves like a missing key', () => {
    assert.equal(evalCompare(compare(CREATE, EQUAL, 0n, 'd'), []), true);
    assert.equal(evalCompare(compare(MOD, GREATER, 0n, 'd'), []), false);
    assert.equal(evalCompare(compare(VERSION, LESS, 1n, 'd'), []), true);
    assert.equal(evalCompare(compare(VALUE, NOT_EQUAL, 'q', 'd'), []), false);
    assert.equal(evalCompare(compare(VALUE, EQUAL, '', 'd'), []), false);
  });
});
