import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyValue } from '../src/etcd/types.js';
import { encodeClock, encodeEnvelope } from '../src/shard/envelope.js';
import { Keyspace, sysKey, CLOCK_KEY } from '../src/shard/keyspace.js';
import { ShardDecoder, type MemberEvent } from '../src/watch/decoder.js';
import type { EventBatch, MetaEvent } from '../src/watch/event.js';
import { History } from '../src/watch/history.js';
import { Merger } from '../src/watch/merger.js';
import { Watcher } from '../src/watch/watcher.js';

const kv = (key: Buffer | string, value: Buffer, memberRev: number, version = 1): KeyValue => ({
  key: Buffer.isBuffer(key) ? key : Buffer.from(key),
  value,
  create_revision: String(memberRev),
  mod_revision: String(memberRev),
  version: String(version),
  lease: '0',
});
const put = (k: KeyValue, prev: KeyValue | null = null): MemberEvent => ({ type: 0, kv: k, prev_kv: prev });
const del = (key: string, memberRev: number, prev: KeyValue): MemberEvent => ({ type: 1, kv: kv(key, Buffer.alloc(0), memberRev, 0), prev_kv: prev });
const clock = (rev: bigint, memberRev: number) => put(kv(CLOCK_KEY, encodeClock(rev), memberRev));
const marker = (slot: number, rev: bigint, memberRev: number) => put(kv(sysKey(`rev/${slot}`), encodeClock(rev), memberRev));

test('decoder: puts are dated by their envelope, deletes by the batch clock (a deleting write closes its batch); the clock is the watermark', () => {
  const d = new ShardDecoder(new Keyspace(), 10n);
  const prevB = kv('b', encodeEnvelope(7n, 5n, 0n, Buffer.from('old')), 40, 2);
  const out = d.decode([
    clock(12n, 50),
    put(kv('a', encodeEnvelope(11n, 11n, 0n, Buffer.from('v')), 50)),
    put(kv(sysKey('lease/x'), Buffer.from('ignored'), 50)),
    del('b', 50, prevB),
  ]);
  assert.equal(out.watermark, 12n);
  assert.equal(out.memberRev, 50n);
  assert.deepEqual(out.events.map((e) => [e.type, e.key.toString(), e.rev]), [[0, 'a', 11n], [1, 'b', 12n]]);
  const delEv = out.events[1]!;
  assert.equal(String(delEv.kv.mod_revision), '12');
  assert.equal(String(delEv.kv.create_revision), '0');
  assert.equal(delEv.prevKv?.value.toString(), 'old');
  assert.equal(String(delEv.prevKv?.mod_revision), '7');
  assert.equal(String(delEv.prevKv?.version), '2');
});

test('decoder: a put chain (envelope format 2) is one event per put, at its revision, with its version and the put before it as prev_kv; the floor applies per put', () => {
  const earlier = [
    { rev: 20n, value: Buffer.from('v1') },
    { rev: 21n, value: Buffer.from('v2') },
  ];
  // The key had meta version 4 at member version 3 (delta 1); the chain's 3 puts: member version 4, meta 7.
  const prev = kv('k', encodeEnvelope(15n, 9n, 0n, Buffer.from('v0'), 1n), 40, 3);
  const chain = kv('k', encodeEnvelope(22n, 9n, 0n, Buffer.from('v3'), 3n, earlier), 50, 4);
  const d = new ShardDecoder(new Keyspace(), 10n);
  const out = d.decode([clock(22n, 50), put(chain, prev)]);
  assert.equal(out.watermark, 22n);
  assert.deepEqual(
    out.events.map((e) => [e.rev, e.kv.value.toString(), String(e.kv.version), String(e.kv.create_revision), e.prevKv?.value.toString(), String(e.prevKv?.version)]),
    [
      [20n, 'v1', '5', '9', 'v0', '4'],
      [21n, 'v2', '6', '9', 'v1', '5'],
      [22n, 'v3', '7', '9', 'v2', '6'],
    ],
  );
  const floored = new ShardDecoder(new Keyspace(), 10n, 20n).decode([clock(22n, 50), put(chain, prev)]);
  assert.deepEqual(floored.events.map((e) => e.rev), [21n, 22n]);
});

test('decoder: member history written by older proxies (a rev/<slot> marker after each write) decodes the same', () => {
  const d = new ShardDecoder(new Keyspace(), 10n);
  const prevB = kv('b', encodeEnvelope(7n, 5n, 0n, Buffer.from('old')), 40, 2);
  const out = d.decode([
    clock(12n, 50),
    put(kv('a', encodeEnvelope(11n, 11n, 0n, Buffer.from('v')), 50)),
    marker(0, 11n, 50),
    del('b', 50, prevB),
    marker(1, 12n, 50),
  ]);
  assert.deepEqual(out.events.map((e) => [e.type, e.key.toString(), e.rev]), [[0, 'a', 11n], [1, 'b', 12n]]);
});

test('decoder: a fence moves the watermark only; events of a member revision the proxy did not open are orphans; floor drops old events', () => {
  const d = new ShardDecoder(new Keyspace(), 10n, 20n);
  assert.deepEqual(d.decode([clock(15n, 60)]).events, []);
  assert.equal(d.watermark, 15n);
  const o = d.decode([clock(21n, 61), put(kv('x', encodeEnvelope(20n, 20n, 0n, Buffer.from('1')), 61)), put(kv('y', encodeEnvelope(21n, 21n, 0n, Buffer.from('2')), 61))]);
  assert.deepEqual(o.events.map((e) => e.key.toString()), ['y']);
  const orphan = d.decode([put(kv('z', Buffer.from('raw'), 62))]);
  assert.equal(orphan.orphans, 1);
  assert.equal(orphan.events.length, 0);
  assert.equal(d.watermark, 21n);
});

test('decoder: a namespace is stripped and keys outside it are ignored', () => {
  const d = new ShardDecoder(new Keyspace(Buffer.from('ns/')), 0n);
  const out = d.decode([clock(3n, 9), put(kv('ns/k', encodeEnvelope(3n, 3n, 0n, Buffer.from('v')), 9)), put(kv('other/k', Buffer.from('v'), 9)), marker(0, 3n, 9)]);
  assert.deepEqual(out.events.map((e) => e.key.toString()), ['k']);
});

function ev(rev: bigint, key = `k${rev}`): MetaEvent {
  const k = Buffer.from(key);
  return { type: 0, rev, shard: 0, key: k, kv: kv(k, Buffer.alloc(0), 1), prevKv: null, size: 10 };
}

test('merger: releases in revision order only up to the lowest watermark', () => {
  const out: EventBatch[] = [];
  const m = new Merger(2, 10n, (b) => out.push(b));
  m.push(0, [ev(11n), ev(13n)], 13n);
  assert.equal(out.length, 0, 'shard 1 has not passed 11');
  assert.equal(m.heldBack(), 13n);
  m.push(1, [ev(12n)], 12n);
  assert.deepEqual(out.map((b) => [b.rev, b.events.map((e) => e.rev)]), [[12n, [11n, 12n]]]);
  m.push(1, [], 20n);
  assert.deepEqual(out.map((b) => [b.rev, b.events.map((e) => e.rev)]), [[12n, [11n, 12n]], [13n, [13n]]]);
  assert.equal(m.released, 13n);
});

test('history: whole revisions evicted; since() cuts at revision boundaries', () => {
  const h = new History(4, 0n);
  h.append({ rev: 2n, events: [ev(1n, 'a'), ev(1n, 'b'), ev(2n)] });
  h.append({ rev: 4n, events: [ev(3n), ev(4n, 'c'), ev(4n, 'd')] });
  assert.equal(h.floor, 1n, 'revision 1 evicted whole');
  assert.equal(h.since(1n, 10), null);
  assert.deepEqual(h.since(2n, 10)?.events.map((e) => e.rev), [2n, 3n, 4n, 4n]);
  const part = h.since(2n, 3);
  assert.deepEqual(part?.events.map((e) => e.rev), [2n, 3n]);
  assert.equal(part?.complete, false);
  assert.equal(h.since(5n, 10)?.events.length, 0);
  // A byte bound cuts at a revision boundary too (each event's size is the same here).
  const size = ev(2n).size;
  assert.deepEqual(h.since(2n, 10, size + 1)?.events.map((e) => e.rev), [2n, 3n]);
  assert.deepEqual(h.since(3n, 10, size + 1)?.events.map((e) => e.rev), [3n]);
  assert.deepEqual(h.since(4n, 10, 1)?.events.map((e) => e.rev), [4n, 4n], 'one revision goes whole');
});

test('watcher: ranges, filters and start revision', () => {
  const w = new Watcher({ id: 1n, key: Buffer.from('a'), end: Buffer.from('c'), prevKv: false, noPut: false, noDelete: true, progressNotify: false, fragment: false }, 5n);
  assert.equal(w.wants(ev(5n, 'b')), true);
  assert.equal(w.wants(ev(4n, 'b')), false);
  assert.equal(w.wants(ev(6n, 'c')), false);
  assert.equal(w.wants({ ...ev(6n, 'b'), type: 1 }), false);
  const from = new Watcher({ id: 2n, key: Buffer.from('m'), end: Buffer.alloc(0), prevKv: false, noPut: false, noDelete: false, progressNotify: false, fragment: false }, 0n);
  assert.equal(from.covers(Buffer.from('zzz')), true);
  assert.equal(from.covers(Buffer.from('a')), false);
});

test('decoder: events own their bytes, apart from the member message (which it reads as views)', () => {
  const d = new ShardDecoder(new Keyspace(), 10n);
  const value = Buffer.alloc(20 * 1024, 0x61); // a big event (its parts copied one by one)
  const member = kv('k', encodeEnvelope(11n, 11n, 0n, value), 50);
  const prev = kv('k', encodeEnvelope(9n, 9n, 0n, Buffer.from('old')), 40);
  const small = kv('s', encodeEnvelope(11n, 11n, 0n, Buffer.from('v')), 50);
  const out = d.decode([clock(12n, 50), put(member, prev), put(small)]);
  // The member's message is reused or freed after decoding: nothing of the events may change.
  for (const b of [member.key, member.value, prev.key, prev.value, small.key, small.value]) b.fill(0);
  assert.deepEqual(out.events.map((e) => [e.key.toString(), e.kv.key.toString(), e.kv.value.length, e.kv.value.every((c) => c === 0x61) || e.kv.value.toString()]), [
    ['k', 'k', 20 * 1024, true],
    ['s', 's', 1, 'v'],
  ]);
  assert.equal(out.events[0]!.prevKv?.value.toString(), 'old');
  assert.equal(out.events[0]!.prevKv?.key.toString(), 'k');
});
