/**
 * Property-based fuzzing of the proxy's wire input (fast-check), bounded in time for CI.
 *
 * Random bytes and mutations of valid requests (flipped bytes, truncations, tag 0, over-long
 * varints, wrong wire types, unknown fields, garbage appended) go to every method of every
 * service the proxy serves, through a raw client with passthrough serializers (streams: the
 * first message, then the first answer or the error). Properties:
 * - the proxy never crashes (it runs in this process: a crash fails the run) and keeps serving;
 * - an answered error applied no write: the whole keyspace is the same before and after;
 * - where the plain etcd's decoder refuses the bytes (the oracle), the proxy answers exactly the
 *   same code and message, and it never accepts bytes the oracle's decoder refuses (checked for
 *   methods that cannot change the oracle's cluster or alarms).
 *
 * FUZZ_SECONDS (default 25) bounds the run; FUZZ_SEED replays a failing run.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import type protobuf from 'protobufjs';
import { metaPerFile, type FileMeta, RawClient } from './harness.js';
import { Code, type CallResult } from './grpc-raw.js';
import { requestType, methodsOf } from '../src/server/wire-guard.js';

const SETUP_TIMEOUT = 120_000;
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 25);
/**
 * Request fields of etcd 3.5 (the API the proxy serves) that the 3.4 oracle does not know: its
 * decoder skips them as unknown where 3.5's (and the proxy's) checks their wire type
 * (MemberListRequest.linearizable, AuthUserAddRequest.hashedPassword).
 */
const NEWER_THAN_ORACLE = /for field (Linearizable|HashedPassword)$/;

/** grpc-go's decoder errors: unary methods, and stream reads. */
const UNMARSHAL = /^grpc: (error unmarshalling request: |failed to unmarshal the received message )/;

let proxyAddress: string;
let oracleAddress: string;
let proxy: RawClient;

const suite = metaPerFile({ tag: 'fuzz', shards: 2, oracleName: 'oracle-fuzz' }, SETUP_TIMEOUT);
before(async () => {
  let o: FileMeta['oracle'];
  let clients: RawClient[];
  ({ clients, oracle: o } = await suite.started());
  proxy = clients[0]!;
  proxyAddress = proxy.address;
  oracleAddress = o!.address;
}, { timeout: SETUP_TIMEOUT });

/** Valid requests to mutate, per method (others start from the empty message). */
const B = (t: string): Buffer => Buffer.from(t, 'latin1');
const SEEDS: Record<string, object[]> = {
  '/etcdserverpb.KV/Range': [{ key: B('fz/a'), range_end: B('fz/z'), limit: 5 }, { key: B('\0'), range_end: B('\0'), count_only: true, revision: 1 }],
  '/etcdserverpb.KV/Put': [{ key: B('fz/a'), value: B('v'), prev_kv: true }, { key: B('fz/b'), value: B('w'), ignore_value: false }],
  '/etcdserverpb.KV/DeleteRange': [{ key: B('fz/a'), range_end: B('fz/c'), prev_kv: true }],
  '/etcdserverpb.KV/Txn': [
    {
      compare: [{ key: B('fz/a'), target: 1, result: 0, mod_revision: 0 }],
      success: [{ request_put: { key: B('fz/t'), value: B('x') } }, { request_txn: { success: [{ request_range: { key: B('fz/a') } }] } }],
      failure: [{ request_delete_range: { key: B('fz/t') } }],
    },
  ],
  '/etcdserverpb.KV/Compact': [{ revision: 1 }],
  '/etcdserverpb.Watch/Watch': [{ create_request: { key: B('fz/'), range_end: B('fz0'), prev_kv: true } }, { progress_request: {} }],
  '/etcdserverpb.Lease/LeaseGrant': [{ TTL: 60, ID: 0 }],
  '/etcdserverpb.Lease/LeaseRevoke': [{ ID: 12345 }],
  '/etcdserverpb.Lease/LeaseKeepAlive': [{ ID: 12345 }],
  '/etcdserverpb.Lease/LeaseTimeToLive': [{ ID: 12345, keys: true }],
  '/etcdserverpb.Maintenance/Alarm': [{ action: 0, alarm: 0 }],
  '/etcdserverpb.Maintenance/HashKV': [{ revision: 0 }],
  '/etcdserverpb.Maintenance/MoveLeader': [{ targetID: 1 }],
  '/etcdserverpb.Cluster/MemberRemove': [{ ID: 1 }],
};

/**
 * Methods whose bytes may also go to the oracle when the proxy accepted them (to check that etcd
 * accepts them too): none of them changes the oracle's membership, alarms or availability.
 */
const SAFE_ON_ORACLE = new Set([
  '/etcdserverpb.KV/Range',
  '/etcdserverpb.KV/Put',
  '/etcdserverpb.KV/DeleteRange',
  '/etcdserverpb.KV/Txn',
  '/etcdserverpb.Lease/LeaseGrant',
  '/etcdserverpb.Lease/LeaseRevoke',
  '/etcdserverpb.Lease/LeaseTimeToLive',
  '/etcdserverpb.Lease/LeaseLeases',
  '/etcdserverpb.Maintenance/Status',
  '/etcdserverpb.Maintenance/HashKV',
  '/etcdserverpb.Cluster/MemberList',
]);

interface Method {
  path: string;
  kind: 'unary' | 'server-stream' | 'bidi';
  seeds: Buffer[];
}

function methods(): Method[] {
  return methodsOf('rpc.proto').map(({ path, requestStream, responseStream }) => {
    const type = requestType(path) as protobuf.Type;
    const seeds = [type.encode(type.fromObject({})).finish(), ...(SEEDS[path] ?? []).map((o) => type.encode(type.fromObject(o)).finish())];
    return { path, kind: requestStream ? 'bidi' : responseStream ? 'server-stream' : 'unary', seeds: seeds.map((s) => Buffer.from(s)) };
  });
}

/** Mutations of a valid request's bytes. */
const mutation = (seed: Buffer): fc.Arbitrary<Buffer> =>
  fc.oneof(
    fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }).map(({ at, xor }) => {
      const b = Buffer.from(seed);
      if (b.length) b[at % b.length] ^= xor;
      return b;
    }),
    fc.nat().map((n) => seed.subarray(0, seed.length ? n % seed.length : 0)),
    fc.nat().map((at) => insert(seed, at, Buffer.from([0x00]))),
    fc.nat().map((at) => insert(seed, at, Buffer.from('08ffffffffffffffffffff01', 'hex'))),
    fc.record({ at: fc.nat(), wire: fc.integer({ min: 0, max: 7 }) }).map(({ at, wire }) => {
      const b = Buffer.from(seed);
      if (b.length) b[at % b.length] = (b[at % b.length] & ~7) | wire;
      return b;
    }),
    fc.record({ field: fc.integer({ min: 1, max: 40 }), wire: fc.integer({ min: 0, max: 7 }), body: fc.uint8Array({ maxLength: 12 }) }).map(({ field, wire, body }) =>
      Buffer.concat([seed, varint(BigInt((field << 3) | wire)), Buffer.from(body)]),
    ),
    fc.uint8Array({ maxLength: 16 }).map((tail) => Buffer.concat([seed, Buffer.from(tail)])),
  );

function insert(b: Buffer, at: number, what: Buffer): Buffer {
  const i = b.length ? at % (b.length + 1) : 0;
  return Buffer.concat([b.subarray(0, i), what, b.subarray(i)]);
}

function varint(v: bigint): Buffer {
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return Buffer.from(out);
}

const passthrough = (b: Buffer): Buffer => b;

/** One call with raw bytes: unary answer, or a stream's first message or its error. */
function call(client: grpc.Client, m: Method, bytes: Buffer): Promise<CallResult<Buffer>> {
  const deadline = new Date(Date.now() + 5_000);
  return new Promise((resolve) => {
    if (m.kind === 'unary') {
      client.makeUnaryRequest(m.path, passthrough, passthrough, bytes, { deadline }, (err, res) =>
        resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, res: res ?? Buffer.alloc(0) }),
      );
      return;
    }
    const stream: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer> =
      m.kind === 'bidi'
        ? client.makeBidiStreamRequest(m.path, passthrough, passthrough, new grpc.Metadata(), { deadline })
        : client.makeServerStreamRequest(m.path, passthrough, passthrough, bytes, new grpc.Metadata(), { deadline });
    let settled = false;
    const done = (r: CallResult<Buffer>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(quiet);
      resolve(r);
      stream.cancel();
    };
    // A stream that neither answers nor fails (e.g. a keepalive of no lease, a watch of nothing) is an OK.
    const quiet = setTimeout(() => done({ ok: true, res: Buffer.alloc(0) }), 150);
    stream.on('data', (res: Buffer) => done({ ok: true, res }));
    stream.on('error', (err: grpc.ServiceError) => done(err.code === Code.CANCELLED ? { ok: true, res: Buffer.alloc(0) } : { ok: false, code: err.code, details: err.details }));
    stream.on('end', () => done({ ok: true, res: Buffer.alloc(0) }));
    if (m.kind === 'bidi') {
      (stream as grpc.ClientDuplexStream<Buffer, Buffer>).write(bytes);
    }
  });
}

const alarmType = requestType('/etcdserverpb.Maintenance/Alarm') as protobuf.Type;

function activatesAlarm(m: Method, bytes: Buffer): boolean {
  if (m.path !== '/etcdserverpb.Maintenance/Alarm') return false;
  try {
    const req = alarmType.toObject(alarmType.decode(bytes), { enums: Number, defaults: true }) as { action: number; alarm: number };
    return req.action === 1 && (req.alarm === 1 || req.alarm === 2);
  } catch {
    return false;
  }
}

/** A digest of every key the proxy serves (key, value, revisions, lease). */
async function keyspace(): Promise<string> {
  const r = await proxy.kv('Range', { key: Buffer.from([0]), range_end: Buffer.from([0]) });
  if (!r.ok) throw new Error(`keyspace read: ${r.details}`);
  const h = createHash('sha256');
  for (const kv of r.res.kvs) h.update(JSON.stringify([kv.key.toString('hex'), kv.value.toString('hex'), kv.create_revision, kv.mod_revision, kv.version, kv.lease]));
  return h.digest('hex');
}

test(`fuzz: random and mutated protobuf to every method for ${SECONDS} s`, { timeout: SECONDS * 1000 + 120_000 }, async () => {
  const all = methods();
  assert.ok(all.length >= 20, `every method of every service (${all.length})`);
  const toProxy = new grpc.Client(proxyAddress, grpc.credentials.createInsecure());
  const toOracle = new grpc.Client(oracleAddress, grpc.credentials.createInsecure());
  const stats = { runs: 0, refusedByDecoder: 0, errors: 0, oracleChecks: 0 };
  try {
    const input = fc.constantFrom(...all).chain((m) =>
      fc.tuple(fc.constant(m), fc.oneof({ weight: 1, arbitrary: fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a)) }, { weight: 4, arbitrary: fc.constantFrom(...m.seeds).chain(mutation) })),
    );
    await fc.assert(
      fc.asyncProperty(input, async ([m, bytes]) => {
        // Raising an alarm is etcd's way to stop every write (by design): not fuzzed.
        fc.pre(!activatesAlarm(m, bytes));
        stats.runs++;
        const before = await keyspace();
        const p = await call(toProxy, m, bytes);
        if (!p.ok) {
          stats.errors++;
          assert.equal(await keyspace(), before, `${m.path} answered ${Code[p.code]} "${p.details}" but the keyspace changed`);
        }
        if (!p.ok && UNMARSHAL.test(p.details) && !NEWER_THAN_ORACLE.test(p.details)) {
          stats.refusedByDecoder++;
          stats.oracleChecks++;
          const o = await call(toOracle, m, bytes);
          // A method the 3.4 oracle does not have (etcd 3.5's AuthStatus) cannot be compared.
          if (!o.ok && o.code === Code.UNIMPLEMENTED) return;
          assert.deepEqual({ code: Code[p.code], details: p.details }, o.ok ? 'accepted by etcd' : { code: Code[o.code], details: o.details }, `${m.path} ${bytes.toString('hex')}`);
        } else if (p.ok && SAFE_ON_ORACLE.has(m.path)) {
          stats.oracleChecks++;
          const o = await call(toOracle, m, bytes);
          assert.ok(o.ok || !UNMARSHAL.test(o.details), `${m.path} ${bytes.toString('hex')}: the proxy accepted what etcd's decoder refuses: ${o.ok ? '' : o.details}`);
        }
      }),
      { interruptAfterTimeLimit: SECONDS * 1000, numRuns: 1_000_000, seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined, verbose: 1 },
    );
  } finally {
    toProxy.close();
    toOracle.close();
  }
  console.log(`fuzz: ${JSON.stringify(stats)}`);
  assert.ok(stats.refusedByDecoder > 0 && stats.oracleChecks > 0, 'the run exercised the decoder refusals');
  // Still serving after everything.
  assert.ok((await proxy.call('Maintenance', 'Status', {})).ok);
  assert.ok((await proxy.kv('Put', { key: Buffer.from('fz/after'), value: Buffer.from('ok') })).ok);
});
