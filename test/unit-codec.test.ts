/**
 * The generated codecs (src/etcd/gen/ on src/etcd/binary.ts) against proto-loader's reflective
 * codec, which the proxy used before: the same bytes decode to the same fields, and what the
 * generated encoder writes decodes to the same fields through proto-loader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import { etcdGrpcObject } from '../src/etcd/proto.js';
import { generatedService } from '../src/etcd/services.js';
import { BinaryReader, BinaryWriter } from '../src/etcd/binary.js';
import { MAX_TXN_NESTING } from '../src/server/wire-guard.js';

type Method = grpc.MethodDefinition<object, object>;
const loader = (service: string, method: string): Method =>
  ((etcdGrpcObject()['etcdserverpb'] as grpc.GrpcObject)[service] as grpc.ServiceClientConstructor).service[method] as Method;
const generated = (service: 'KV' | 'Watch' | 'Lease' | 'Maintenance', method: string): Method =>
  (generatedService(service) as grpc.ServiceDefinition)[method] as Method;

/** Fields as a plain value: absent messages (null or undefined) dropped, Buffers as hex. */
function plain(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return `0x${v.toString('hex')}`;
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = plain(x);
    return out;
  }
  return v;
}

const INT64S = ['0', '1', '127', '128', '2147483647', '2147483648', '4294967295', '4294967296', '9007199254740991', '9007199254740992', '9223372036854775807', '-1', '-9223372036854775808'];
const UINT64S = ['0', '1', '4294967296', '9007199254740993', '18446744073709551615'];

test('codec: int64 and uint64 edges encode and decode as proto-loader does', () => {
  const l = loader('KV', 'Range');
  const g = generated('KV', 'Range');
  for (const v of INT64S) {
    const req = { key: Buffer.from('k'), limit: v, revision: v, min_mod_revision: v };
    // proto-loader also writes zeros it is handed; the generated encoder leaves them out, as etcd does.
    if (v !== '0') assert.deepEqual(g.requestSerialize(req), l.requestSerialize(req), `int64 ${v}`);
    else assert.deepEqual(g.requestSerialize(req), Buffer.from([0x0a, 0x01, 0x6b]));
    assert.deepEqual(plain(g.requestDeserialize(l.requestSerialize(req))), plain(l.requestDeserialize(l.requestSerialize(req))), `int64 ${v}`);
  }
  // Numbers (etcd/types.ts wire64) encode as their decimal strings do.
  for (const n of [0, 1, 300, 2 ** 32, Number.MAX_SAFE_INTEGER, -1, -(2 ** 40)]) {
    assert.deepEqual(g.requestSerialize({ revision: n }), g.requestSerialize({ revision: String(n) }), `number ${n}`);
  }
  const lh = loader('KV', 'Put');
  const gh = generated('KV', 'Put');
  for (const v of UINT64S) {
    const res = { header: { cluster_id: v, member_id: v, revision: '5', raft_term: v } };
    assert.deepEqual(plain(gh.responseDeserialize(lh.responseSerialize(res))), plain(lh.responseDeserialize(lh.responseSerialize(res))), `uint64 ${v}`);
    assert.deepEqual(plain(lh.responseDeserialize(gh.responseSerialize(res))), plain(lh.responseDeserialize(lh.responseSerialize(res))), `uint64 ${v}`);
  }
});

test('codec: a txn with every op, compare target and nested txn decodes to the same fields, oneof names included', () => {
  const l = loader('KV', 'Txn');
  const g = generated('KV', 'Txn');
  const req = {
    compare: [
      { result: 3, target: 2, key: Buffer.from('a'), mod_revision: '0', range_end: Buffer.from('b') },
      { result: 1, target: 3, key: Buffer.from('c'), value: Buffer.from('\u00ff\u0000x', 'latin1') },
      { result: 2, target: 4, key: Buffer.from('d'), lease: '-1' },
    ],
    success: [
      { request_range: { key: Buffer.from('a'), range_end: Buffer.from([0]), limit: '10', sort_order: 2, sort_target: 4, keys_only: true } },
      { request_put: { key: Buffer.from('p'), value: Buffer.alloc(300, 1), lease: '7', prev_kv: true } },
      { request_delete_range: { key: Buffer.from('x'), prev_kv: true } },
      { request_txn: { compare: [], success: [{ request_put: { key: Buffer.from('n'), value: Buffer.alloc(0) } }], failure: [] } },
    ],
    failure: [],
  };
  const bytes = l.requestSerialize(req);
  const fromGenerated = g.requestDeserialize(bytes) as { success: Array<{ request?: string }>; compare: Array<{ target_union?: string }> };
  assert.deepEqual(plain(fromGenerated), plain(l.requestDeserialize(bytes)));
  assert.deepEqual(fromGenerated.success.map((op) => op.request), ['request_range', 'request_put', 'request_delete_range', 'request_txn']);
  assert.deepEqual(fromGenerated.compare.map((c) => c.target_union), ['mod_revision', 'value', 'lease']);
  // A oneof member set to its zero value is still sent (presence), as proto-loader does.
  assert.deepEqual(plain(l.requestDeserialize(g.requestSerialize(req))), plain(l.requestDeserialize(bytes)));
});

test('codec: partial messages, null sub-messages and strings encode; unknown fields are skipped', () => {
  const l = loader('Watch', 'Watch');
  const g = generated('Watch', 'Watch');
  const res = {
    header: { revision: '9' },
    watch_id: '3',
    cancel_reason: 'caf\u00e9 \u{1f600}',
    events: [{ type: 1, kv: { key: Buffer.from('k'), mod_revision: '9' }, prev_kv: null }],
  };
  const bytes = g.responseSerialize(res);
  assert.deepEqual(plain(l.responseDeserialize(bytes)), plain(l.responseDeserialize(l.responseSerialize(res))));
  // Field 99 (varint), 98 (fixed64), 97 (bytes), 96 (fixed32) appended: ignored.
  const unknown = Buffer.from([0x98, 0x06, 0x01, 0x91, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0x8a, 0x06, 0x02, 0xaa, 0xbb, 0x85, 0x06, 1, 2, 3, 4]);
  const withUnknown = Buffer.concat([bytes, unknown]);
  assert.deepEqual(plain(g.responseDeserialize(withUnknown)), plain(l.responseDeserialize(bytes)));
});

test(`codec: txns nested ${MAX_TXN_NESTING} deep encode and decode (the depth limit is PROTOBUF_DEPTH_LIMIT)`, () => {
  const g = generated('KV', 'Txn');
  let txn: object = { success: [{ request_put: { key: Buffer.from('deep') } }] };
  for (let i = 0; i < MAX_TXN_NESTING; i++) txn = { success: [{ request_txn: txn }] };
  const bytes = g.requestSerialize(txn);
  let depth = 0;
  let cur = g.requestDeserialize(bytes) as { success: Array<{ request_txn?: object; request_put?: { key: Buffer } }> };
  while (cur.success[0]!.request_txn) {
    cur = cur.success[0]!.request_txn as typeof cur;
    depth++;
  }
  assert.equal(depth, MAX_TXN_NESTING);
  assert.equal(cur.success[0]!.request_put!.key.toString(), 'deep');
});

test('codec: the writer lengths sub-messages of any size; the reader refuses truncated input', () => {
  for (const len of [0, 1, 127, 128, 16383, 16384, 2_000_000]) {
    const w = new BinaryWriter();
    w.uint32(10).fork().uint32(10).bytes(Buffer.alloc(len, 9)).join();
    w.uint32(16).int32(-5);
    const out = w.finish();
    const r = new BinaryReader(out);
    assert.equal(r.uint32(), 10);
    const inner = r.uint32();
    assert.equal(r.uint32(), 10);
    assert.equal(r.bytes().length, len);
    assert.equal(r.pos, out.length - 11);
    assert.ok(inner >= len);
    assert.equal(r.uint32(), 16);
    assert.equal(r.int32(), -5);
    assert.equal(r.pos, r.len);
  }
  const r = new BinaryReader(Buffer.from([0x0a, 0x05, 0x01]));
  r.uint32();
  assert.throws(() => r.bytes(), RangeError);
});

test('codec: random RangeRequests decode to the fields proto-loader gives', () => {
  const l = loader('KV', 'Range');
  const g = generated('KV', 'Range');
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const bytes = (n: number) => Buffer.from(Array.from({ length: rnd(n) }, () => rnd(256)));
  const pick = () => INT64S[rnd(INT64S.length)]!;
  for (let i = 0; i < 500; i++) {
    const req = {
      key: bytes(5),
      range_end: bytes(3),
      limit: pick(),
      revision: pick(),
      sort_order: rnd(4),
      sort_target: rnd(6),
      serializable: rnd(2) === 1,
      keys_only: rnd(2) === 1,
      count_only: rnd(2) === 1,
      min_mod_revision: pick(),
      max_mod_revision: pick(),
      min_create_revision: pick(),
      max_create_revision: pick(),
    };
    const buf = l.requestSerialize(req);
    assert.deepEqual(g.requestDeserialize(buf), l.requestDeserialize(buf), JSON.stringify(req));
  }
});
