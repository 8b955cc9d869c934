/**
 * Codec micro-benchmark: the proxy's hot messages through proto-loader's reflective codec
 * (protobufjs, what the proxy used before), the generated static codecs (src/etcd/gen/, what it
 * uses now) and the hand-written one that remains (wire/encoded-kv.ts's RangeResponse from pre-encoded
 * KeyValues). A hand-written RangeRequest decoder (server/range-request.ts) measured 1.3-2.2x
 * slower than the generated one here and was removed. Single process, no I/O:
 *
 *   node --import tsx bench/codec.ts [--ms 400] [--rounds 3]
 *
 * Prints µs per operation (best of the rounds) and the ratio to the generated codec.
 */
import { parseArgs } from 'node:util';
import type * as grpc from '@grpc/grpc-js';
import { etcdGrpcObject } from '../src/etcd/proto.js';
import { generatedService } from '../src/etcd/services.js';
import { decodeKeyValue, encodeKeyValue, encodeRangeResponse } from '../src/wire/encoded-kv.js';
import type { KeyValue } from '../src/etcd/types.js';

const { values } = parseArgs({ options: { ms: { type: 'string', default: '400' }, rounds: { type: 'string', default: '3' } } });
const MS = Number(values.ms);
const ROUNDS = Number(values.rounds);

type Method = grpc.MethodDefinition<object, object>;
function loaderMethod(service: string, method: string): Method {
  const pkg = etcdGrpcObject()['etcdserverpb'] as grpc.GrpcObject;
  return (pkg[service] as grpc.ServiceClientConstructor).service[method] as Method;
}
function generatedMethod(service: 'KV' | 'Watch', method: string): Method {
  return (generatedService(service) as grpc.ServiceDefinition)[method] as Method;
}

/** Best µs per call over the rounds. */
function measure(fn: () => unknown): number {
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const until = start + BigInt(MS) * 1_000_000n;
    let now = start;
    while (now < until) {
      for (let i = 0; i < 200; i++) fn();
      n += 200;
      now = process.hrtime.bigint();
    }
    best = Math.min(best, Number(now - start) / 1000 / n);
  }
  return best;
}

const header = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: '1234567', raft_term: '5' };
const key = Buffer.from('bench/key/000012345');
const value = Buffer.alloc(256 + 25, 7);
const clockKey = Buffer.from('\u0000metaproxy/clock');

// A member txn as the owner sends it: a fence compare, the data put, the watermark put.
const memberTxn = {
  compare: [{ result: 0, target: 2, key: clockKey, mod_revision: '1234000', target_union: 'mod_revision', range_end: Buffer.alloc(0) }],
  success: [
    { request_put: { key, value, lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } },
    { request_put: { key: clockKey, value: Buffer.alloc(8, 1), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } },
  ],
  failure: [{ request_range: { key: clockKey, range_end: Buffer.alloc(0), limit: '0', revision: '0' } }],
};
const kv = (k: Buffer, rev: number): KeyValue => ({ key: k, create_revision: String(rev - 10), mod_revision: String(rev), version: '3', value, lease: '0' });
const memberTxnResponse = { header, succeeded: true, responses: [{ response_put: { header, prev_kv: null } }, { response_put: { header, prev_kv: null } }] };
const watchResponse = {
  header,
  watch_id: '1',
  created: false,
  canceled: false,
  compact_revision: '0',
  cancel_reason: '',
  fragment: false,
  events: [
    { type: 0, kv: kv(key, 1234567), prev_kv: kv(key, 1234500) },
    { type: 0, kv: kv(clockKey, 1234567), prev_kv: null },
  ],
};
const putRequest = { key, value: Buffer.alloc(256, 3), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false };
const putResponse = { header, prev_kv: null };
const rangeRequest = { key, range_end: Buffer.from('bench/key0'), limit: '100', revision: '0', serializable: true, sort_order: 0, sort_target: 0 };

type Row = [string, number, number, number | null];
const rows: Row[] = [];

function codecRow(name: string, service: 'KV' | 'Watch', method: string, dir: 'requestSerialize' | 'responseSerialize' | 'requestDeserialize' | 'responseDeserialize', msg: object, hand?: () => unknown): void {
  const loader = loaderMethod(service, method);
  const gen = generatedMethod(service, method);
  let fnL: () => unknown;
  let fnG: () => unknown;
  if (dir.endsWith('Serialize')) {
    const s = dir as 'requestSerialize' | 'responseSerialize';
    fnL = () => loader[s](msg);
    fnG = () => gen[s](msg);
  } else {
    const enc = (dir === 'requestDeserialize' ? loader.requestSerialize : loader.responseSerialize)(msg);
    const d = dir as 'requestDeserialize' | 'responseDeserialize';
    fnL = () => loader[d](enc);
    fnG = () => gen[d](enc);
  }
  rows.push([name, measure(fnL), measure(fnG), hand ? measure(hand) : null]);
}

codecRow('member TxnRequest encode (proxy -> member)', 'KV', 'Txn', 'requestSerialize', memberTxn);
codecRow('member TxnResponse decode (member -> proxy)', 'KV', 'Txn', 'responseDeserialize', memberTxnResponse);
codecRow('WatchResponse decode, 2 events with prev_kv (member -> proxy)', 'Watch', 'Watch', 'responseDeserialize', watchResponse);
codecRow('client PutRequest decode', 'KV', 'Put', 'requestDeserialize', putRequest);
codecRow('client PutResponse encode', 'KV', 'Put', 'responseSerialize', putResponse);
codecRow('client RangeRequest decode', 'KV', 'Range', 'requestDeserialize', rangeRequest);

// A 100-key RangeResponse: from KeyValue objects through a codec, or (wire/encoded-kv.ts) from the
// cache's pre-encoded KeyValues.
const kvs = Array.from({ length: 100 }, (_, i) => kv(Buffer.from(`bench/range/${String(i).padStart(4, '0')}`), 1000 + i));
const preEncoded = kvs.map((k) =>
  encodeKeyValue({ key: k.key, value: k.value, create: BigInt(k.create_revision), mod: BigInt(k.mod_revision), version: BigInt(k.version), lease: 0n }),
);
codecRow('RangeResponse encode, 100 x 281 B (hand: wire/encoded-kv.ts pre-encoded)', 'KV', 'Range', 'responseSerialize', { header, kvs, more: false, count: '100' }, () =>
  encodeRangeResponse(header, preEncoded, false, 100n),
);
// What the generated encoder costs when the cache's stored form (encoded KeyValue strings) must
// first become KeyValue objects: the alternative to keeping wire/encoded-kv.ts.
const rangeGen = generatedMethod('KV', 'Range');
const fromStored = (stored: readonly string[]): KeyValue[] =>
  stored.map((enc) => {
    const f = decodeKeyValue(enc);
    return { key: f.key, value: f.value, create_revision: f.create.toString(), mod_revision: f.mod.toString(), version: f.version.toString(), lease: f.lease.toString() };
  });
rows.push([
  'RangeResponse, 100 keys, generated from the cache\'s stored form (decode + encode)',
  NaN,
  measure(() => rangeGen.responseSerialize({ header, kvs: fromStored(preEncoded), more: false, count: '100' })),
  measure(() => encodeRangeResponse(header, preEncoded, false, 100n)),
]);
const oneKv = [preEncoded[0]!];
codecRow('RangeResponse encode, 1 key (hand: wire/encoded-kv.ts pre-encoded)', 'KV', 'Range', 'responseSerialize', { header, kvs: [kvs[0]], more: false, count: '1' }, () =>
  encodeRangeResponse(header, oneKv, false, 1n),
);

const fmt = (v: number): string => v.toFixed(2);
console.log(`µs per operation (best of ${ROUNDS} x ${MS} ms); ratios: proto-loader / generated, hand-written / generated`);
console.log(['message', 'proto-loader', 'generated', 'hand-written', 'loader/gen', 'hand/gen'].join(' | '));
for (const [name, l, g, h] of rows) {
  console.log([name, fmt(l), fmt(g), h === null ? '-' : fmt(h), `${(l / g).toFixed(2)}x`, h === null ? '-' : `${(h / g).toFixed(2)}x`].join(' | '));
}
