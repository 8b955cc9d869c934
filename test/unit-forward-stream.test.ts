/**
 * The forwarding stream between replicas (ownership/forward-stream.ts, forward-serve.ts,
 * forward-wire.ts) over a real gRPC connection on loopback, with the owner's txn runner and the
 * replicas' secret stubbed: what a forwarder gets back in each case, and that nothing the owner
 * did not run is reported as possibly applied. The e2e tests (ownership, two-proxies) run it
 * between real replicas.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { EtcdError, Errors } from '../src/etcd/errors.js';
import type { TxnRequest } from '../src/etcd/types.js';
import type { TxnOutcome } from '../src/kv/txn-outcome.js';
import { ForwardStreams, type RunForwarded } from '../src/ownership/forward-serve.js';
import { FORWARD_PATH, ForwardStream } from '../src/ownership/forward-stream.js';
import { decodeAnswers, decodeForwarded, encodeForwarded, encodeTxn } from '../src/ownership/forward-wire.js';
import { OwnerUnreachableError } from '../src/shard/routing-errors.js';

const id = (b: Buffer) => b;
const SECRET = 'right';

/** What the owner runs: by default answers at revision 100 + the number of the key. */
let run: RunForwarded;
let ran: string[] = [];
let messages = 0;
let server: grpc.Server;
let streams: ForwardStreams;
let url: string;
const clients: grpc.Client[] = [];

function put(key: string): TxnRequest {
  return { compare: [], success: [{ request_put: { key: Buffer.from(key), value: Buffer.from('v') } }], failure: [] } as unknown as TxnRequest;
}

function keyOf(txn: TxnRequest): string {
  return Buffer.from(txn.success[0]!.request_put!.key).toString();
}

const answer = async (shard: string, txn: TxnRequest): Promise<TxnOutcome> => {
  ran.push(`${shard}:${keyOf(txn)}`);
  return { revision: 100n + BigInt(keyOf(txn).replace(/\D/g, '') || '0'), succeeded: true, responses: [], wrote: true };
};

function secretOf(values: string[]) {
  let i = 0;
  return {
    refreshed: 0,
    async get() {
      return Buffer.from(values[Math.min(i, values.length - 1)]!);
    },
    refresh() {
      this.refreshed++;
      i++;
    },
  };
}

function forwarder(secret = secretOf([SECRET]), timeoutMs = 5000, to = url): ForwardStream {
  const c = new grpc.Client(to, grpc.credentials.createInsecure());
  clients.push(c);
  return new ForwardStream(c, to, secret, timeoutMs);
}

async function startServer(): Promise<void> {
  server = new grpc.Server();
  streams = new ForwardStreams((s, t, h) => run(s, t, h), { accepts: async (p) => p === SECRET }, pino({ level: 'silent' }));
  const def: grpc.ServiceDefinition = {
    ShardTxns: { path: FORWARD_PATH, requestStream: true, responseStream: true, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
  };
  server.addService(def, {
    ShardTxns: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', () => messages++);
      streams.handler(call);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  url = `127.0.0.1:${port}`;
}

before(startServer);
after(() => {
  for (const c of clients) c.close();
  server.forceShutdown();
});

function reset(): void {
  run = answer;
  ran = [];
  messages = 0;
}

test('writes forwarded in one turn travel in one message and each gets its own outcome', async () => {
  reset();
  const f = forwarder();
  const outs = await Promise.all(Array.from({ length: 50 }, (_, i) => f.send('s1', put(`k${i}`), 1)));
  assert.deepEqual(
    outs.map((o) => o.revision),
    Array.from({ length: 50 }, (_, i) => 100n + BigInt(i)),
  );
  assert.equal(ran.length, 50);
  assert.equal(messages, 1, 'one message for the 50 writes');
  // And later ones on the same stream.
  assert.equal((await f.send('s2', put('k7'), 2)).revision, 107n);
  assert.equal(ran.at(-1), 's2:k7');
  f.close();
});

test("the owner's errors come back with etcd's code and message (named errors keep their name)", async () => {
  reset();
  run = async (_s, txn) => {
    if (keyOf(txn) === 'full') throw Errors.noSpace();
    throw new EtcdError(grpc.status.FAILED_PRECONDITION, 'etcdserver: something else');
  };
  const f = forwarder();
  await assert.rejects(f.send('s1', put('full'), 1), (e: unknown) => Errors.noSpace.is(e) && (e as EtcdError).code === grpc.status.RESOURCE_EXHAUSTED);
  await assert.rejects(f.send('s1', put('x'), 1), (e: unknown) => e instanceof EtcdError && e.code === grpc.status.FAILED_PRECONDITION && e.message === 'etcdserver: something else');
  f.close();
});

test('a drain answers the writes running, runs nothing more, and what it did not run is routed again', async () => {
  reset();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  run = async (s, txn) => {
    await held;
    return answer(s, txn);
  };
  const f = forwarder();
  const first = f.send('s1', put('k1'), 1);
  await waitUntil(() => messages === 1);
  const drained = streams.drain();
  const second = f.send('s1', put('k2'), 1);
  await waitUntil(() => messages === 2);
  release();
  assert.equal((await first).revision, 101n);
  await assert.rejects(second, (e: unknown) => e instanceof OwnerUnreachableError);
  await drained;
  assert.deepEqual(ran, ['s1:k1'], 'the write that arrived during the drain was not run');
  // A new stream serves again.
  run = answer;
  assert.equal((await f.send('s1', put('k3'), 1)).revision, 103n);
  f.close();
});

test('a refused secret is read again and the writes sent once more; nothing ran on the refused stream', async () => {
  reset();
  const secret = secretOf(['stale', SECRET]);
  const f = forwarder(secret);
  const outs = await Promise.all([f.send('s1', put('k1'), 1), f.send('s1', put('k2'), 1)]);
  assert.deepEqual(
    outs.map((o) => o.revision),
    [101n, 102n],
  );
  assert.equal(secret.refreshed, 1);
  assert.deepEqual(ran, ['s1:k1', 's1:k2']);
  // A secret that stays wrong: PERMISSION_DENIED after the one retry.
  const wrong = forwarder(secretOf(['stale', 'also stale']));
  await assert.rejects(wrong.send('s1', put('k9'), 1), (e: unknown) => e instanceof EtcdError && e.code === grpc.status.PERMISSION_DENIED);
  assert.equal(ran.length, 2);
  f.close();
  wrong.close();
});

test('an owner never reached is OwnerUnreachableError (routed again); no answer in time is UNAVAILABLE', async () => {
  reset();
  const dead = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) => dead.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  dead.forceShutdown();
  const nowhere = forwarder(secretOf([SECRET]), 5000, `127.0.0.1:${port}`);
  await assert.rejects(nowhere.send('s1', put('k1'), 1), (e: unknown) => e instanceof OwnerUnreachableError);

  run = () => new Promise<TxnOutcome>(() => undefined);
  const slow = forwarder(secretOf([SECRET]), 300);
  await assert.rejects(
    slow.send('s1', put('k1'), 1),
    (e: unknown) => e instanceof EtcdError && !(e instanceof OwnerUnreachableError) && e.code === grpc.status.UNAVAILABLE && /Deadline exceeded/.test(e.message),
  );
  slow.close();
});

test('a malformed message ends that stream with INVALID_ARGUMENT and runs nothing', async () => {
  reset();
  const c = new grpc.Client(url, grpc.credentials.createInsecure());
  clients.push(c);
  const md = new grpc.Metadata();
  md.set('etcd-metaproxy-peer', SECRET);
  const call = c.makeBidiStreamRequest(FORWARD_PATH, id, id, md);
  const good = encodeForwarded(1, 1, 's1', encodeTxn(put('k1')));
  const status = await new Promise<grpc.StatusObject>((resolve) => {
    call.on('data', () => undefined);
    call.on('error', () => undefined);
    call.on('status', resolve);
    call.write(Buffer.concat([good, good.subarray(0, good.length - 3)]));
  });
  assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(status.details, /malformed forwarded write/);
  assert.deepEqual(ran, []);
});

test('the records decode to what was encoded; a cut record throws', () => {
  const rec = Buffer.concat([encodeForwarded(7, 2, 'shard-ä', encodeTxn(put('a'))), encodeForwarded(2 ** 32 - 1, 0, '', encodeTxn(put('b')))]);
  const got = decodeForwarded(rec);
  assert.deepEqual(
    got.map((g) => [g.id, g.hops, g.shard, keyOf(g.txn)]),
    [
      [7, 2, 'shard-ä', 'a'],
      [2 ** 32 - 1, 0, '', 'b'],
    ],
  );
  assert.throws(() => decodeForwarded(rec.subarray(0, rec.length - 1)), /cut short/);
  assert.throws(() => decodeAnswers(Buffer.from([0, 0, 0, 1, 9, 0, 0, 0, 0, 0])), /unknown answer kind 9/);
});

async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), 'condition met within 5 s');
}
