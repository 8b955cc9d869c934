import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand, UsageError } from '../src/cli/args.js';
import { memberWrite, EVENT_DELETE, EVENT_PUT } from '../src/import/member-writes.js';
import { sourceUrls } from '../src/import/source.js';
import { decodeRecord, encodeRecord, importMarker, isImportMarker } from '../src/import/record.js';
import { parsePartitionMap, type PartitionMap } from '../src/partition/map.js';
import { decodeEnvelope, encodeEnvelope } from '../src/shard/envelope.js';
import { VersionDeltas } from '../src/import/version-deltas.js';
import type { ShardApplier } from '../src/import/shard-applier.js';
import { Router } from '../src/partition/router.js';
import { defaultPartitionMap } from '../src/partition/map.js';
import { initHash } from '../src/partition/hash.js';
import { Keyspace } from '../src/shard/keyspace.js';
import { indexKey } from '../src/lease/keys.js';
import type { KeyValue } from '../src/etcd/types.js';

const kv = (key: string, mod: number, create: number, version: number, lease = 0, value = 'v'): KeyValue => ({
  key: Buffer.from(key),
  mod_revision: String(mod),
  create_revision: String(create),
  version: String(version),
  lease: String(lease),
  value: Buffer.from(value),
});

test('parseCommand: import', () => {
  assert.deepEqual(parseCommand(['import', '--from', 'a:2379, b:2379', '--config', 'p.yaml', '--follow']), {
    kind: 'import', from: ['a:2379', 'b:2379'], configFile: 'p.yaml', follow: true, cacert: '', cert: '', key: '',
  });
  assert.deepEqual(parseCommand(['import', '--from=https://a:2379', '-c', 'p.yaml', '--cacert', 'ca.pem', '--cert', 'c.pem', '--key', 'k.pem']), {
    kind: 'import', from: ['https://a:2379'], configFile: 'p.yaml', follow: false, cacert: 'ca.pem', cert: 'c.pem', key: 'k.pem',
  });
  assert.throws(() => parseCommand(['import', '--config', 'p.yaml']), /--from ENDPOINTS .* is required/);
  assert.throws(() => parseCommand(['import', '--from', 'a:1']), /--config FILE is required/);
  assert.throws(() => parseCommand(['import', '--from', 'a:1', '-c', 'p', '--user', 'root:x']), /--user is not supported/);
  assert.throws(() => parseCommand(['import', '--from', 'a:1', '-c', 'p', '--cert', 'c.pem']), UsageError);
});

test('source endpoints get the scheme etcdctl would use', () => {
  const none = { caFile: '', certFile: '', keyFile: '' };
  assert.deepEqual(sourceUrls(['a:1', 'http://b:2'], none), ['http://a:1', 'http://b:2']);
  assert.deepEqual(sourceUrls(['a:1'], { ...none, caFile: 'ca.pem' }), ['https://a:1']);
});

test('a source put becomes the key in its envelope plus its lease index entry; a lease change drops the old entry', () => {
  const ks = new Keyspace(Buffer.from('ns/'));
  const w = memberWrite({ type: EVENT_PUT, kv: kv('k', 9, 4, 3, 7, 'hello'), prev_kv: kv('k', 8, 4, 2, 5) }, ks, 123n);
  assert.equal(w.deletes, false);
  assert.equal(w.ops.length, 3);
  const put = w.ops[0].request_put!;
  assert.deepEqual(put.key, Buffer.from('ns/k'));
  const env = decodeEnvelope(put.value);
  assert.deepEqual([env.mod, env.create, env.lease, env.value.toString()], [9n, 4n, 7n, 'hello']);
  assert.deepEqual(w.ops[1].request_put!.key, indexKey(7n, Buffer.from('ns/k')));
  assert.deepEqual(w.ops[2].request_delete_range!.key, indexKey(5n, Buffer.from('ns/k')));
  assert.equal(new Set(w.keys).size, 3, 'every member key the write touches is named once');
});

test('a source delete deletes the key and its lease index entry', () => {
  const ks = new Keyspace(Buffer.alloc(0));
  const w = memberWrite({ type: EVENT_DELETE, kv: kv('k', 10, 0, 0), prev_kv: kv('k', 9, 4, 3, 7) }, ks, 0n);
  assert.equal(w.deletes, true);
  assert.deepEqual(w.ops.map((o) => o.request_delete_range!.key), [Buffer.from('k'), indexKey(7n, Buffer.from('k'))]);
  const plain = memberWrite({ type: 'DELETE', kv: kv('k', 10, 0, 0), prev_kv: null }, ks, 0n);
  assert.equal(plain.ops.length, 1);
});

test('the import marker keeps proxies from starting; the record round-trips', () => {
  const m = importMarker('42');
  assert.ok(isImportMarker(m));
  assert.ok(!isImportMarker(Buffer.from('{"format":1}')));
  assert.throws(() => parsePartitionMap(m), /an import into these clusters \(etcd-metaproxy import\) is running or was interrupted/);
  const map = { format: 1, partitions: 2, routingPrefixSegments: 0, shards: ['s1'], owner: [0, 0] } as unknown as PartitionMap;
  const r = { format: 1 as const, source: '42', endpoints: ['a:1'], copyRevision: '5', applied: '9', phase: 'follow' as const, map, namespace: '', updatedAt: 'now' };
  assert.deepEqual(decodeRecord(encodeRecord(r)), r);
  assert.equal(decodeRecord(Buffer.from('{"format":2}')), null);
});

test('memberWrite: a put carries its key\'s version delta (format 2), a delete carries none', () => {
  const ks = new Keyspace();
  const put = memberWrite({ type: EVENT_PUT, kv: kv('a', 20, 3, 12), prev_kv: null }, ks, 0n, 9n);
  const env = decodeEnvelope(put.ops[0].request_put!.value);
  assert.deepEqual([env.mod, env.create, env.delta, env.value.toString()], [20n, 3n, 9n, 'v']);
  const plain = memberWrite({ type: EVENT_PUT, kv: kv('a', 21, 3, 13), prev_kv: null }, ks, 0n);
  assert.equal(plain.ops[0].request_put!.value[0], 1, 'delta 0: format 1');
});

test('VersionDeltas: reads the deltas of keys the copy wrote once, remembers them (bounded), forgets them on delete', async () => {
  await initHash();
  const ks = new Keyspace();
  const router = new Router(defaultPartitionMap(4, 0, ['s1']));
  const reads: string[][] = [];
  const stored = new Map<string, Buffer>([
    ['old', encodeEnvelope(5n, 2n, 0n, Buffer.from('x'), 41n)],
    ['older', encodeEnvelope(6n, 1n, 0n, Buffer.from('y'))],
  ]);
  const applier = {
    async read(keys: Buffer[]) {
      reads.push(keys.map((k) => k.toString()));
      return new Map(keys.map((k) => [k.toString('latin1'), stored.get(k.toString()) ?? null] as const));
    },
  } as unknown as ShardApplier;
  const R = 10n;
  const deltas = new VersionDeltas(R, router, ks, [applier], 1);
  const put = (key: string, create: number) => ({ type: EVENT_PUT, kv: kv(key, 11, create, 1), prev_kv: null });
  const del = (key: string) => ({ type: EVENT_DELETE, kv: kv(key, 12, 0, 0), prev_kv: null });

  // Only keys created at or below R are read (once per load, however often they are put).
  await deltas.load([put('old', 2), put('new', 11), put('old', 2)]);
  assert.deepEqual(reads, [['old']]);
  assert.equal(deltas.of(put('old', 2)), 41n);
  assert.equal(deltas.of(put('new', 11)), 0n, 'created after the copy: delta 0, never read');
  await deltas.load([put('old', 2)]);
  assert.equal(reads.length, 1, 'remembered');

  // Room for one key: the older one is forgotten and read again when needed.
  await deltas.load([put('older', 1)]);
  assert.equal(deltas.of(put('older', 1)), 0n, 'format 1 on the member: delta 0');
  await deltas.load([put('old', 2)]);
  assert.deepEqual(reads, [['old'], ['older'], ['old']]);

  // A delete ends the incarnation: a later put of the key (created after R) is not read.
  deltas.forget(del('old'));
  await deltas.load([put('old', 13)]);
  assert.equal(reads.length, 3);
  assert.equal(deltas.of(put('old', 13)), 0n);
});
