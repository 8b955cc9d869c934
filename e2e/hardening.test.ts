/**
 * Bad input and shared clusters, against real etcd processes (issue 11's probe findings):
 * - malformed protobuf (tag 0, an 11-byte varint, wrong wire types, truncations) gets exactly
 *   the plain etcd's answer (the oracle), and a refused LeaseGrant grants nothing;
 * - Maintenance.Alarm with an unknown action or alarm type is refused at the proxy, and every
 *   member is still up afterwards (etcd panics on them);
 * - nested txns: applied and acknowledged as in etcd up to the proxy's nesting limit, refused
 *   and not applied beyond it;
 * - two proxies with different namespaces on the same clusters: leases never cross namespaces
 *   (list, time-to-live with keys, revoke, keepalive).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { metaPerFile, type FileMeta, type Meta, RawClient } from './harness.js';
import { Code, RawBytesClient, b } from './grpc-raw.js';
import { MAX_TXN_NESTING } from '../src/server/wire-guard.js';

const SETUP_TIMEOUT = 120_000;
const T = 60_000;

let meta: Meta;
let viaA: RawClient;
let viaB: RawClient;
let oracle: RawClient;
let oracleAddress: string;

const suite = metaPerFile(
  { tag: 'hardening', shards: 2, proxies: 2, oracleName: 'oracle-hardening', configure: (cfg, i) => void (cfg.namespace = i === 0 ? 'nsA/' : 'nsB/') },
  SETUP_TIMEOUT,
);
before(async () => {
  let o: FileMeta['oracle'];
  ({ meta, clients: [viaA, viaB], oracle: o } = await suite.started());
  oracle = o!.client;
  oracleAddress = o!.address;
}, { timeout: SETUP_TIMEOUT });

/** Malformed requests etcd's decoder refuses (and two it accepts), as hex. */
const MALFORMED: Array<[string, string, string]> = [
  ['tag 0', '/etcdserverpb.Lease/LeaseGrant', '0005'],
  ['11-byte varint', '/etcdserverpb.Lease/LeaseGrant', '08ffffffffffffffffffff01'],
  ['10-byte varint (valid)', '/etcdserverpb.Lease/LeaseGrant', '08ffffffffffffffffff01'],
  ['wrong wire type', '/etcdserverpb.KV/Put', '0801'],
  ['truncated bytes', '/etcdserverpb.KV/Put', '0a05616263'],
  ['end group', '/etcdserverpb.KV/Put', '0c'],
  ['group as key', '/etcdserverpb.KV/Range', '0b'],
  ['wire type 7', '/etcdserverpb.KV/Range', '0f'],
  ['tag 0 in Range', '/etcdserverpb.KV/Range', '00'],
  ['length past the end', '/etcdserverpb.KV/Range', '0affffffff0f'],
  ['negative length', '/etcdserverpb.KV/Range', '0affffffffffffffffff01'],
  ['unknown field truncated', '/etcdserverpb.KV/Range', '7a01'],
  ['unknown field wire type 6', '/etcdserverpb.KV/DeleteRange', '7e'],
  ['bool as bytes', '/etcdserverpb.KV/Range', '4201'],
  ['fixed64 truncated', '/etcdserverpb.KV/Range', 'f9'],
  ['tag 0 in Status', '/etcdserverpb.Maintenance/Status', '00'],
  ['tag 0 in Alarm', '/etcdserverpb.Maintenance/Alarm', '00'],
  ['tag 0 in a nested RequestOp', '/etcdserverpb.KV/Txn', '12020000'],
  ['wrong wire type in a nested Compare', '/etcdserverpb.KV/Txn', '0a020801'],
  ['tag 0 in MemberList', '/etcdserverpb.Cluster/MemberList', '00'],
  ['tag 0 in LeaseRevoke', '/etcdserverpb.Lease/LeaseRevoke', '00'],
  ['tag 0 in Compact', '/etcdserverpb.KV/Compact', '00'],
];

test('malformed protobuf: the same code and message as a plain etcd; a refused LeaseGrant grants nothing', { timeout: T }, async () => {
  const proxy = new RawBytesClient(meta.addresses[0]!);
  const plain = new RawBytesClient(oracleAddress);
  try {
    const before = await viaA.callOrThrow('Lease', 'LeaseLeases', {});
    for (const [what, path, hex] of MALFORMED) {
      const [p, o] = await Promise.all([proxy.call(path, Buffer.from(hex, 'hex')), plain.call(path, Buffer.from(hex, 'hex'))]);
      assert.equal(p.ok, o.ok, `${what}: ${JSON.stringify({ proxy: p, etcd: o })}`);
      if (!p.ok && !o.ok) assert.deepEqual({ code: Code[p.code], details: p.details }, { code: Code[o.code], details: o.details }, what);
    }
    const after = await viaA.callOrThrow('Lease', 'LeaseLeases', {});
    // Exactly one lease more: the valid 10-byte varint's grant (TTL) and no other.
    assert.equal(after.leases.length, before.leases.length + 1);
    // Nothing was written by the refused Puts.
    const keys = await viaA.kv('Range', { key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true });
    assert.ok(keys.ok);
    assert.equal(keys.res.count, '0');
  } finally {
    proxy.close();
    plain.close();
  }
});

/** The first answer (or the error) of a stream whose first message is `bytes`. */
function firstOnStream(address: string, path: string, bytes: Buffer, serverStream: boolean): Promise<string> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const id = (x: Buffer): Buffer => x;
  return new Promise<string>((resolve) => {
    const s = serverStream ? client.makeServerStreamRequest(path, id, id, bytes) : client.makeBidiStreamRequest(path, id, id);
    const done = (what: string): void => {
      s.cancel();
      client.close();
      resolve(what);
    };
    s.on('data', () => done('data'));
    s.on('error', (e: grpc.ServiceError) => done(`${Code[e.code]} ${e.details}`));
    if (!serverStream) (s as grpc.ClientDuplexStream<Buffer, Buffer>).write(bytes);
  });
}

test("malformed protobuf on streams: grpc-go's stream wording, as a plain etcd", { timeout: T }, async () => {
  const cases: Array<[string, string, boolean]> = [
    ['/etcdserverpb.Watch/Watch', '08ffffffffffffffffffff01', false],
    ['/etcdserverpb.Watch/Watch', '0a0c0a03667a2f1203667a30300100', false],
    ['/etcdserverpb.Lease/LeaseKeepAlive', '00', false],
    ['/etcdserverpb.Maintenance/Snapshot', '00', true],
  ];
  for (const [path, hex, serverStream] of cases) {
    const bytes = Buffer.from(hex, 'hex');
    const [p, o] = await Promise.all([firstOnStream(meta.addresses[0]!, path, bytes, serverStream), firstOnStream(oracleAddress, path, bytes, serverStream)]);
    assert.match(o, /^INTERNAL grpc: failed to unmarshal the received message proto: /);
    assert.equal(p, o, `${path} ${hex}`);
  }
});

test('Alarm: an unknown action or activating an unknown type is refused at the proxy and never reaches a member', { timeout: T }, async () => {
  const nine = await viaA.call('Maintenance', 'Alarm', { action: 9, memberID: '0', alarm: 1 });
  assert.deepEqual(nine.ok ? nine : { code: Code[nine.code], details: nine.details }, { code: 'INVALID_ARGUMENT', details: 'etcdserver: unknown alarm action 9' });
  const seven = await viaA.call('Maintenance', 'Alarm', { action: 1, memberID: '0', alarm: 7 });
  assert.deepEqual(seven.ok ? seven : { code: Code[seven.code], details: seven.details }, { code: 'INVALID_ARGUMENT', details: 'etcdserver: unknown alarm type 7' });
  // etcd 3.5's no-ops answer no alarms.
  for (const req of [{ action: 0, alarm: 7 }, { action: 2, alarm: 7 }, { action: 1, alarm: 0 }]) {
    const r = await viaA.callOrThrow('Maintenance', 'Alarm', { ...req, memberID: '0' });
    assert.deepEqual(r.alarms, [], JSON.stringify(req));
  }
  // Every member and the coordinator still answer (etcd panics on the refused requests).
  for (let i = 0; i < meta.cluster.shards.length; i++) assert.ok((await meta.memberClient(i).call('Maintenance', 'Status', {})).ok, `shard ${i} up`);
  const coord = new RawClient(meta.cluster.coordinator.clientUrl);
  try {
    assert.ok((await coord.call('Maintenance', 'Status', {})).ok, 'coordinator up');
  } finally {
    coord.close();
  }
  const list = await viaA.callOrThrow('Maintenance', 'Alarm', { action: 0, memberID: '0', alarm: 0 });
  assert.deepEqual(list.alarms, []);
});

/** A txn `depth` txns deep with a Put of `key` at the bottom. */
function nestedTxn(depth: number, key: string): object {
  let op: object = { request_put: { key: b(key), value: b(`depth ${depth}`) } };
  for (let i = 1; i < depth; i++) op = { request_txn: { compare: [], success: [op], failure: [] } };
  return { compare: [], success: [op], failure: [] };
}

/** The succeeded flags down the nesting, and whether a put answer is at the bottom. */
function shape(res: { succeeded: boolean; responses: Array<{ response_txn?: unknown; response_put?: unknown }> }): string {
  let out = '';
  let r: typeof res | undefined = res;
  while (r) {
    out += r.succeeded ? 'T' : 'F';
    const next: { response_txn?: unknown; response_put?: unknown } | undefined = r.responses[0];
    if (next?.response_put) out += 'P';
    r = next?.response_txn as typeof res | undefined;
  }
  return out;
}

test('nested txns: applied and acknowledged as a plain etcd does up to the nesting limit; deeper ones refused and not applied', { timeout: T }, async () => {
  for (const depth of [48, 50, 64, 100, 128]) {
    const key = `nested/${depth}`;
    const [p, o] = await Promise.all([viaA.kv('Txn', nestedTxn(depth, key)), oracle.kv('Txn', nestedTxn(depth, key))]);
    assert.ok(o.ok, `etcd takes depth ${depth}: ${o.ok ? "" : Code[o.code] + " " + o.details}`);
    assert.ok(p.ok, `depth ${depth}: ${p.ok ? '' : p.details}`);
    assert.equal(shape(p.res), shape(o.res), `depth ${depth}`);
    const got = await viaA.kv('Range', { key: b(key) });
    assert.ok(got.ok);
    assert.equal(got.res.kvs[0]?.value.toString(), `depth ${depth}`);
  }
  // Deeper than --max-txn-ops (128) in etcd, and deeper than the proxy's own nesting bound.
  for (const depth of [129, MAX_TXN_NESTING + 1, 500]) {
    const key = `nested/too-deep-${depth}`;
    const [p, o] = await Promise.all([viaA.kv('Txn', nestedTxn(depth, key)), oracle.kv('Txn', nestedTxn(depth, key))]);
    const answer = (r: typeof p) => (r.ok ? 'ok' : { code: Code[r.code], details: r.details });
    assert.deepEqual(answer(p), answer(o), `depth ${depth}`);
    assert.deepEqual(answer(p), { code: 'INVALID_ARGUMENT', details: 'etcdserver: too many operations in txn request' });
    const none = await viaA.kv('Range', { key: b(key) });
    assert.ok(none.ok);
    assert.equal(none.res.kvs.length, 0, 'a refused txn wrote nothing');
  }
});

test('namespaces on shared clusters: leases never cross them', { timeout: T }, async () => {
  const grant = await viaA.callOrThrow('Lease', 'LeaseGrant', { TTL: '60', ID: '0' });
  const id = grant.ID as string;
  assert.ok((await viaA.kv('Put', { key: b('leased/a'), value: b('x'), lease: id })).ok);
  const other = await viaB.callOrThrow('Lease', 'LeaseGrant', { TTL: '60', ID: '0' });
  assert.ok((await viaB.kv('Put', { key: b('leased/b'), value: b('y'), lease: other.ID })).ok);

  const listA = (await viaA.callOrThrow('Lease', 'LeaseLeases', {})).leases.map((l: { ID: string }) => l.ID);
  const listB = (await viaB.callOrThrow('Lease', 'LeaseLeases', {})).leases.map((l: { ID: string }) => l.ID);
  assert.ok(listA.includes(id) && !listA.includes(other.ID), 'A lists its own lease only');
  assert.ok(listB.includes(other.ID) && !listB.includes(id), 'B lists its own lease only');

  const ttlA = await viaA.callOrThrow('Lease', 'LeaseTimeToLive', { ID: id, keys: true });
  assert.deepEqual(ttlA.keys.map((k: Buffer) => k.toString()), ['leased/a'], 'keys whole, of this namespace only');
  const ttlB = await viaB.callOrThrow('Lease', 'LeaseTimeToLive', { ID: id, keys: true });
  assert.equal(ttlB.TTL, '-1', "another namespace's lease does not exist");
  assert.deepEqual(ttlB.keys, []);

  const revoke = await viaB.call('Lease', 'LeaseRevoke', { ID: id });
  assert.deepEqual(revoke.ok ? revoke : { code: Code[revoke.code], details: revoke.details }, { code: 'NOT_FOUND', details: 'etcdserver: requested lease not found' });
  const put = await viaB.kv('Put', { key: b('leased/c'), value: b('z'), lease: id });
  assert.deepEqual(put.ok ? put : { code: Code[put.code], details: put.details }, { code: 'NOT_FOUND', details: 'etcdserver: requested lease not found' });

  // A keepalive of another namespace's lease renews nothing: TTL 0, as for an unknown lease.
  const stream = (viaB.service('Lease') as unknown as { LeaseKeepAlive(): grpc.ClientDuplexStream<object, { TTL: string }> }).LeaseKeepAlive();
  const answer = new Promise<{ TTL: string }>((resolve, reject) => {
    stream.once('data', resolve);
    stream.once('error', reject);
  });
  stream.write({ ID: id });
  assert.equal((await answer).TTL, '0');
  stream.end();
  stream.cancel();

  const still = await viaA.kv('Range', { key: b('leased/a') });
  assert.ok(still.ok);
  assert.equal(still.res.kvs.length, 1, "B's revoke left A's key");
  assert.ok((await viaA.callOrThrow('Lease', 'LeaseRevoke', { ID: id })) !== undefined);
  const gone = await viaA.kv('Range', { key: b('leased/a') });
  assert.ok(gone.ok);
  assert.equal(gone.res.kvs.length, 0);
  const kept = await viaB.kv('Range', { key: b('leased/b') });
  assert.ok(kept.ok);
  assert.equal(kept.res.kvs.length, 1, "A's revoke left B's leased key");
});
