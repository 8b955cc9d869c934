/**
 * One writer per shard under faults, with two proxy processes (`serve`) on one meta-cluster:
 * - kill -9 of the replica that owns the shards while writers go through both replicas;
 * - a graceful stop (SIGTERM) of the owner hands ownership over with no client error;
 * - a deposed owner that wakes up late (SIGSTOP past its lease, then SIGCONT) applies nothing
 *   under its old epoch: its queued writes go to the new owner.
 * Each run checks linearizability of the acknowledged writes (real-time order agrees with
 * revision order; each acknowledged write is in the final state at its revision) and watch
 * completeness (a watcher on the surviving replica sees every acknowledged write exactly once,
 * in revision order, and nothing that was not written); in the SIGSTOP run, compare-and-swap
 * clients on both replicas never read a stale value. The internal peer service refuses
 * callers that are not replicas.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startLocalMetaCluster, type LocalMetaCluster } from '../src/local/meta-cluster.js';
import { freePort } from '../src/local/ports.js';
import * as grpc from '@grpc/grpc-js';
import type { TxnRequest } from '../src/etcd/types.js';
import { encodeForwarded, encodeTxn } from '../src/ownership/forward-wire.js';
import { ownerRange } from '../src/ownership/record.js';
import { relayMethod } from '../src/ownership/watch-relay.js';
import { Cleanup, etcdWatchers, serveProcess, tempDir, waitFor } from './harness.js';
import { RawClient, b, prefixEnd } from './grpc-raw.js';
import { WatchStream } from './watch-client.js';
import { checkSwaps, incrementLoop, type Swap } from './cas-swaps.js';

const cleanup = new Cleanup();
after(() => cleanup.run(), { timeout: 120_000 });

const TTL_SEC = 2;

interface ProxyProc {
  listen: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  client: RawClient;
}

let cluster: LocalMetaCluster;
let dir: string;
let coordinator: RawClient;

/** A fresh meta-cluster for each test (the previous one is left to the file's cleanup). */
async function startCluster(tag: string): Promise<void> {
  dir = tempDir(cleanup, `ownership-${tag}`);
  const c = await startLocalMetaCluster({ dataDir: path.join(dir, 'cluster'), shards: 3, unsafeNoFsync: true });
  cleanup.add('stop meta-cluster', () => c.stop());
  cluster = c;
  const coord = new RawClient(c.coordinator.clientUrl);
  cleanup.add('close coordinator client', () => coord.close());
  coordinator = coord;
}

async function startProxy(tag: string, listen?: string): Promise<ProxyProc> {
  listen ??= `127.0.0.1:${await freePort()}`;
  const file = path.join(dir, `${tag}.yaml`);
  fs.writeFileSync(
    file,
    [
      `listen: "${listen}"`,
      'metrics: { listen: "" }',
      `coordinator: { endpoints: ["${cluster.coordinator.clientUrl}"] }`,
      'shards:',
      ...cluster.shards.map((s) => `  - { name: ${s.name}, endpoints: ["${s.clientUrl}"] }`),
      'memberLimits: { maxTxnOps: 1024, maxRequestBytes: 4194304 }',
      `ownership: { ttlSec: ${TTL_SEC}, pollMs: 100 }`,
      `log: { level: ${process.env.E2E_LOG_LEVEL ?? 'warn'} }`,
    ].join('\n'),
  );
  const client = new RawClient(listen);
  const { child, exited } = await serveProcess({
    name: `proxy ${tag}`,
    config: file,
    log: path.join(dir, `${tag}.log`),
    onSpawn: (p) =>
      cleanup.add(`stop proxy ${tag}`, async () => {
        client.close();
        if (p.child.exitCode === null && p.child.signalCode === null) {
          p.child.kill('SIGCONT');
          p.child.kill('SIGKILL');
        }
        await p.exited;
      }),
  });
  return { listen, child, exited, client };
}

/** Owner records in the coordinator: shard name -> owner's client URL. */
async function owners(): Promise<Map<string, string>> {
  const range = ownerRange(Buffer.alloc(0));
  const res = await coordinator.callOrThrow<{ kvs: Array<{ key: Buffer; value: Buffer }> }>('KV', 'Range', range);
  return new Map(res.kvs.map((kv) => [kv.key.subarray(range.key.length).toString(), (JSON.parse(kv.value.toString()) as { url: string }).url]));
}

/**
 * Waits until every member serves one watcher: the second replica reads them through the owner
 * (watch/relay.ts), so the faults below also cut its event source.
 */
async function followsOwner(): Promise<void> {
  const urls = cluster.shards.map((s) => s.clientUrl);
  await waitFor(async () => (await etcdWatchers(urls)).every((n) => n === 1), 30_000, 'the second replica to read the members through the owner');
}

async function ownedBy(p: ProxyProc): Promise<boolean> {
  const o = await owners();
  return o.size === cluster.shards.length && [...o.values()].every((url) => url === `http://${p.listen}`);
}

interface Outcome {
  key: string;
  value: string;
  start: number;
  end: number;
  /** Revision when acknowledged, null when the outcome is unknown (an error). */
  rev: bigint | null;
  error?: string;
}

/** Writers putting unique keys through the given proxies until stop() is called. */
function writers(prefix: string, through: ProxyProc[], perProxy: number) {
  const outcomes: Outcome[] = [];
  let running = true;
  const loops = through.flatMap((p, pi) =>
    Array.from({ length: perProxy }, async (_, wi) => {
      for (let seq = 0; running; seq++) {
        const key = `${prefix}/p${pi}w${wi}/${String(seq).padStart(5, '0')}`;
        const o: Outcome = { key, value: `${key}=v`, start: performance.now(), end: 0, rev: null };
        const r = await p.client.kv('Put', { key: b(key), value: b(o.value) }, { deadlineMs: 8_000 });
        o.end = performance.now();
        if (r.ok) o.rev = BigInt((r.res as { header: { revision: string } }).header.revision);
        else {
          o.error = `${r.code}: ${r.details}`;
          await new Promise((res) => setTimeout(res, 20));
        }
        outcomes.push(o);
      }
    }),
  );
  return {
    outcomes,
    async stop(): Promise<Outcome[]> {
      running = false;
      await Promise.all(loops);
      return outcomes;
    },
  };
}

/** Clients incrementing one counter by compare-and-swap through the given proxies until stop(). */
function swappers(key: string, through: ProxyProc[], perProxy: number) {
  const swaps: Swap[] = [];
  let running = true;
  const loops = through.flatMap((p) => Array.from({ length: perProxy }, () => incrementLoop(p.client, key, swaps, () => running)));
  return {
    async stop(): Promise<Swap[]> {
      running = false;
      await Promise.all(loops);
      return swaps;
    },
  };
}

/**
 * Resolves once each of the given writer proxies (their index in `through`) had `n` writes
 * acknowledged that started at or after `since` (performance.now()): load observed, not slept on.
 */
function acknowledged(w: { outcomes: Outcome[] }, proxies: number[], n: number, since: number, what: string): Promise<void> {
  const count = (pi: number) => w.outcomes.filter((o) => o.rev !== null && o.start >= since && o.key.includes(`/p${pi}w`)).length;
  return waitFor(() => proxies.every((pi) => count(pi) >= n), 30_000, what);
}

/** Linearizability and watch completeness of one run; returns the number of violations found. */
async function check(prefix: string, outcomes: Outcome[], reader: ProxyProc, watch: WatchStream): Promise<void> {
  const acked = outcomes.filter((o) => o.rev !== null);
  assert.ok(acked.length >= 10, `enough acknowledged writes (${acked.length})`);
  // Real time agrees with revision order: a write acknowledged before another started has a lower revision.
  const byEnd = [...acked].sort((x, y) => x.end - y.end);
  const byStart = [...acked].sort((x, y) => x.start - y.start);
  let violations = 0;
  let maxRevEnded = 0n;
  let j = 0;
  for (const o of byStart) {
    while (j < byEnd.length && byEnd[j].end < o.start) {
      if (byEnd[j].rev! > maxRevEnded) maxRevEnded = byEnd[j].rev!;
      j++;
    }
    if (o.rev! <= maxRevEnded) violations++;
  }
  assert.equal(violations, 0, 'real-time order violations');
  const revs = new Set(acked.map((o) => o.rev!.toString()));
  assert.equal(revs.size, acked.length, 'every acknowledged write has its own revision');

  // Every acknowledged write is in the final state, at its revision.
  const final = await reader.client.callOrThrow<{ header: { revision: string }; kvs: Array<{ key: Buffer; mod_revision: string }> }>('KV', 'Range', {
    key: b(prefix + '/'),
    range_end: prefixEnd(prefix + '/'),
  });
  const state = new Map(final.kvs.map((kv) => [kv.key.toString(), BigInt(kv.mod_revision)]));
  for (const o of acked) assert.equal(state.get(o.key), o.rev, `acknowledged ${o.key} in the final state at its revision`);
  const known = new Map(outcomes.map((o) => [o.key, o]));
  for (const k of state.keys()) assert.ok(known.has(k), `${k} was written by a writer`);

  // The watcher saw exactly the final state's writes, once each, in revision order.
  const top = BigInt(final.header.revision);
  await watch.until(() => watch.events(0).some((e: { kv: { mod_revision: string } }) => BigInt(e.kv.mod_revision) >= maxOf(state)) || state.size === 0, 20_000, 'the watcher to catch up');
  const events = watch.events(0) as Array<{ type: string; kv: { key: Buffer; mod_revision: string } }>;
  let last = 0n;
  const seen = new Set<string>();
  for (const e of events) {
    const rev = BigInt(e.kv.mod_revision);
    assert.ok(rev > last, `watch revisions strictly increase (${rev} after ${last})`);
    last = rev;
    const key = e.kv.key.toString();
    assert.ok(!seen.has(key), `${key} seen once`);
    seen.add(key);
    assert.equal(state.get(key), rev, `watched ${key} at the revision it has`);
  }
  for (const [k, rev] of state) if (rev <= top) assert.ok(seen.has(k), `watcher saw ${k}`);
}

function maxOf(state: Map<string, bigint>): bigint {
  let m = 0n;
  for (const r of state.values()) if (r > m) m = r;
  return m;
}

function watchPrefix(p: ProxyProc, prefix: string): WatchStream {
  const w = new WatchStream(p.client);
  cleanup.add('close watch', () => w.close());
  w.create({ key: prefix + '/', rangeEnd: prefixEnd(prefix + '/') });
  return w;
}

/** ms from `since` until a write through `p` succeeds (polling with small writes). */
async function firstWriteAfter(p: ProxyProc, since: number, tag: string): Promise<number> {
  for (let i = 0; ; i++) {
    const r = await p.client.kv('Put', { key: b(`probe/${tag}/${i}`), value: b('x') }, { deadlineMs: 8_000 });
    if (r.ok) return performance.now() - since;
    if (performance.now() - since > 30_000) throw new Error(`no write succeeded through ${p.listen} within 30 s: ${r.details}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

test('kill -9 of the owner while writers go through both replicas: nothing lost or doubled, writes resume within seconds', { timeout: 120_000 }, async () => {
  await startCluster('kill');
  const a = await startProxy('a');
  await waitFor(() => ownedBy(a), 10_000, 'the first replica to own every shard');
  const bProc = await startProxy('b');
  await followsOwner();
  const watch = watchPrefix(bProc, 'kill');
  await watch.nth(1);

  const w = writers('kill', [a, bProc], 4);
  await acknowledged(w, [0, 1], 20, 0, 'writes acknowledged through both replicas before the kill');
  const killedAt = performance.now();
  a.child.kill('SIGKILL');
  await a.exited;
  const resumeMs = await firstWriteAfter(bProc, killedAt, 'kill');
  await waitFor(() => ownedBy(bProc), 10_000, 'the survivor to own every shard');
  const ownedAt = performance.now();
  await acknowledged(w, [1], 20, ownedAt, 'writes acknowledged through the survivor as the owner');
  const outcomes = await w.stop();
  console.log(`# ownership: writes resumed ${Math.round(resumeMs)} ms after kill -9 of the owner (lease TTL ${TTL_SEC} s); ${count(outcomes, true)} acknowledged, ${count(outcomes, false)} failed`);
  assert.ok(resumeMs < (TTL_SEC + 4) * 1000, `writes resume within the lease TTL plus a few seconds (${Math.round(resumeMs)} ms)`);
  await check('kill', outcomes, bProc, watch);
});

test('graceful stop of the owner hands ownership over with no client error', { timeout: 120_000 }, async () => {
  await startCluster('term');
  const leaving = await startProxy('c');
  await waitFor(() => ownedBy(leaving), 10_000, 'the first replica to own every shard');
  const survivor = await startProxy('d');
  const watch = watchPrefix(survivor, 'term');
  await watch.nth(1);

  const w = writers('term', [survivor], 6);
  await acknowledged(w, [0], 20, 0, 'writes acknowledged (forwarded to the owner) before it stops');
  leaving.child.kill('SIGTERM');
  assert.equal(await leaving.exited, 0);
  await waitFor(() => ownedBy(survivor), 10_000, 'the survivor to own every shard');
  const ownedAt = performance.now();
  await acknowledged(w, [0], 20, ownedAt, 'writes acknowledged by the survivor as the owner');
  const outcomes = await w.stop();
  assert.deepEqual(outcomes.filter((o) => o.rev === null).map((o) => o.error), [], 'no client error during the hand-over');
  await check('term', outcomes, survivor, watch);
});

test('a deposed owner that wakes up late (SIGSTOP past its lease, then SIGCONT) applies nothing under its old epoch', { timeout: 120_000 }, async () => {
  await startCluster('stop');
  const owner = await startProxy('e');
  await waitFor(() => ownedBy(owner), 10_000, 'the first replica to own every shard');
  const survivor = await startProxy('f');
  await followsOwner();
  const watch = watchPrefix(survivor, 'stop');
  await watch.nth(1);

  // Writes keep arriving at the stopped owner: they wait in its socket and run when it wakes up.
  const init = await survivor.client.callOrThrow<{ header: { revision: string } }>('KV', 'Put', { key: b('stop-counter'), value: b('0') });
  const sw = swappers('stop-counter', [survivor, owner], 2);
  const w = writers('stop', [survivor, owner], 3);
  await acknowledged(w, [0, 1], 10, 0, 'writes acknowledged through both replicas before SIGSTOP');
  owner.child.kill('SIGSTOP');
  const stoppedAt = performance.now();
  await waitFor(() => ownedBy(survivor), 20_000, 'the survivor to take every shard over');
  const takeoverMs = performance.now() - stoppedAt;
  // The new owner serves while the old one is still stopped.
  await acknowledged(w, [0], 10, stoppedAt + takeoverMs, 'writes acknowledged by the new owner while the old one is stopped');
  owner.child.kill('SIGCONT');
  // The writes that waited in the woken replica's socket are answered (through the new owner).
  const answeredLate = (o: Outcome) => o.key.includes('/p1') && o.start > stoppedAt && o.rev !== null;
  await waitFor(async () => w.outcomes.some(answeredLate), 30_000, 'a write sent to the stopped owner to be acknowledged');
  const outcomes = await w.stop();
  // Compare-and-swaps through both, the stopped owner's answered from its state included: none stale.
  const won = checkSwaps(await sw.stop(), BigInt(init.header.revision));
  assert.ok(won.length >= 5, `swaps won (${won.length})`);
  console.log(`# ownership: takeover ${Math.round(takeoverMs)} ms after SIGSTOP of the owner; ${count(outcomes, true)} acknowledged, ${count(outcomes, false)} failed`);
  // Writes through the woken replica after the takeover were applied by the new owner.
  const late = outcomes.filter(answeredLate);
  assert.ok(late.length > 0, 'writes sent to the stopped owner were acknowledged after it woke up');
  await check('stop', outcomes, survivor, watch);
});

function count(outcomes: Outcome[], acked: boolean): number {
  return outcomes.filter((o) => (o.rev !== null) === acked).length;
}

test('the internal peer service refuses callers without the replicas\' secret, and writes nothing', { timeout: 60_000 }, async () => {
  await startCluster('peer');
  const p = await startProxy('h');
  await waitFor(() => ownedBy(p), 10_000, 'the replica to own every shard');
  const client = new grpc.Client(p.listen, grpc.credentials.createInsecure());
  cleanup.add('close peer client', () => client.close());
  const txn = encodeTxn({ compare: [], success: [{ request_put: { key: b('peer/sneaky'), value: b('x') } }], failure: [] } as unknown as TxnRequest);
  const id = (x: Buffer) => x;
  // A forwarded write on the stream replicas forward writes on (ownership/forward-stream.ts).
  const fwd = client.makeBidiStreamRequest('/etcdmetaproxy.Peer/ShardTxns', id, id, new grpc.Metadata());
  const answers: Buffer[] = [];
  fwd.on('data', (m: Buffer) => answers.push(m));
  const err = await new Promise<grpc.ServiceError | null>((resolve) => {
    fwd.on('error', (e: grpc.ServiceError) => resolve(e));
    fwd.on('end', () => resolve(null));
    fwd.write(encodeForwarded(1, 1, cluster.shards[0]!.name, txn));
  });
  assert.deepEqual(answers, [], 'no answer');
  assert.equal(err?.code, grpc.status.PERMISSION_DENIED);
  const r = await p.client.callOrThrow<{ kvs: unknown[] }>('KV', 'Range', { key: b('peer/'), range_end: prefixEnd('peer/') });
  assert.equal(r.kvs.length, 0, 'nothing written');

  // Nor does it pass a shard's member events on (watch/relay.ts) to a caller without the secret.
  const md = new grpc.Metadata();
  md.set('etcd-metaproxy-shard', cluster.shards[0]!.name);
  const relay = client.makeBidiStreamRequest('/etcdmetaproxy.Peer/RelayWatch', relayMethod.requestSerialize, relayMethod.responseDeserialize, md);
  const got: unknown[] = [];
  relay.on('data', (m: unknown) => got.push(m));
  const relayErr = await new Promise<grpc.ServiceError | null>((resolve) => {
    relay.on('error', (e: grpc.ServiceError) => resolve(e));
    relay.on('end', () => resolve(null));
    relay.write({ create_request: { key: Buffer.from([0]), range_end: Buffer.alloc(0), start_revision: '1', progress_notify: false, filters: [], prev_kv: false, watch_id: '0', fragment: false } });
  });
  assert.equal(relayErr?.code, grpc.status.PERMISSION_DENIED);
  assert.deepEqual(got, [], 'no event passed on');
});

/** Range and Txn calls the coordinator has answered, from its own /metrics. */
async function coordinatorReads(): Promise<number> {
  const text = await (await fetch(`${cluster.coordinator.clientUrl}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (/^grpc_server_handled_total\{.*grpc_method="(Range|Txn)"/.test(line)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

test('two idle replicas read the coordinator only when their watches report a change (or every 10 s)', { timeout: 60_000 }, async () => {
  await startCluster('idle');
  const a = await startProxy('e');
  await waitFor(() => ownedBy(a), 10_000, 'the first replica to own every shard');
  await startProxy('f');
  // Startup reads (registration, maps, the cache load) settle first.
  await new Promise((r) => setTimeout(r, 2_000));
  const before = await coordinatorReads();
  const windowMs = 6_000;
  await new Promise((r) => setTimeout(r, windowMs));
  const reads = (await coordinatorReads()) - before;
  // Polling (every 100 ms here) would be ~25 reads a second for two replicas: owner records, the
  // reaper's election key and lease markers, the coordinator records.
  console.log(`# ownership: two idle replicas made ${reads} coordinator reads in ${windowMs / 1000} s`);
  assert.ok(reads <= 12, `${reads} coordinator reads in ${windowMs} ms`);
  // Still watching: the owner's death is noticed without polling.
  a.child.kill('SIGKILL');
  await a.exited;
  await waitFor(async () => (await owners()).size === cluster.shards.length && !(await ownedBy(a)), 15_000, 'the survivor to take the shards over');
});
