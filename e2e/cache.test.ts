/**
 * What clients must keep seeing now that the proxy serves reads from in-memory per-shard caches
 * fed by its merged watch stream (issue 4) instead of reading the members. Black-box: apart
 * from the "cache surface" suite and the two "at once" serializable checks (which the member
 * read path did not promise), everything here also holds for a proxy that reads its members.
 *
 * Expected states are never computed by the read path under test: every write the tests make
 * is recorded with the revision its acknowledgement carried (`History`), and the state at a
 * revision R is replayed from those acknowledgements (a key's last write at or below R, with
 * create_revision and version counted from its puts). A read answered at header revision H
 * must then be exactly the recorded state at H ("a snapshot at its header"). Write failures
 * fail the test (an unknown outcome would leave the history incomplete).
 *
 * 1. Read-your-writes across two proxies (3 shards): puts, overwrites, deletes and single-key
 *    txn writes through one proxy, linearizable Range / read-only Txn through the other right
 *    after the acknowledgement; sequentially and with concurrent writer/reader pairs. Keys
 *    with a lease, then LeaseRevoke: gone at once for a linearizable read through the other
 *    proxy and for a serializable read through the revoking one.
 * 2. kube-apiserver pagination: a first page (limit 100) at the current revision R, then pages
 *    from lastKey+"\0" at revision=R through alternating proxies, while writers update,
 *    delete and create keys in the prefix; every page (kvs, count, more) and their union are the
 *    state at R. Linearizable and serializable first pages.
 * 3. Serializable reads: an acknowledged write becomes visible within seconds through the same
 *    proxy, and at once over every shard (README: "they see every write acknowledged by the
 *    same proxy"); ranges (serializable, linearizable, read-only txn) over keys on three shards
 *    written in a fixed order are always a state that existed at their header and never go back.
 * 4. Cache surface: /readyz/cache, `[+]cache ok`, and the etcd_metaproxy_cache_{hits,misses}_total
 *    and etcd_metaproxy_cache_keys metrics, on a proxy run as its own process (`serve --config`,
 *    own registry and metrics endpoint) and, by deltas, on the registry the in-process proxies
 *    share.
 * 5. A proxy started on existing data (2000 keys, overwrites, deletes) while writers go on:
 *    whatever it answers while it starts and loads its cache, and after, is the recorded state
 *    at the answer's header (gets, paged, counted, keys-only, descending and historical ranges),
 *    and once quiet it answers as the running proxy does.
 *
 * E2E_SEED fixes the random choices (printed in every failure).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rng } from '../test/helpers/rng.js';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { freePort } from '../src/local/ports.js';
import { registry } from '../src/metrics/registry.js';
import type { RunningProxy } from '../src/server/proxy-api.js';
import { RawClient, metaPerFile, metricTotal, proxyConfig, serveProcess, sleep, waitFor, type Meta } from './harness.js';
import { Code, b, prefixEnd } from './grpc-raw.js';

const SETUP_TIMEOUT = 120_000;
const suite = metaPerFile({ tag: 'cache', shards: 3, proxies: 2 }, SETUP_TIMEOUT);
const cleanup = suite.cleanup;
const TEST_TIMEOUT = 90_000;
const SEED = Number(process.env.E2E_SEED ?? Math.floor(Math.random() * 1e9));

let meta: Meta;
let viaA: RawClient;
let viaB: RawClient;

before(async () => {
  ({ meta, clients: [viaA, viaB] } = await suite.started());
}, { timeout: SETUP_TIMEOUT });

// ---------------------------------------------------------------------------------------------
// The recorded history of acknowledged writes, and the states it implies.

interface WireKV {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}

interface RangeRes {
  header: { revision: string };
  kvs: WireKV[];
  more: boolean;
  count: string;
}

/** One key's state: what a RangeResponse carries for it. */
interface KV {
  key: string;
  value: string;
  create: bigint;
  mod: bigint;
  version: bigint;
  /** Always 0 for the keys a History records (its writes attach no lease). */
  lease: bigint;
}

interface Write {
  key: string;
  rev: bigint;
  /** null: a delete. */
  value: string | null;
}

/** Whether `key` is selected by etcd's [key, rangeEnd): rangeEnd undefined = the key alone, "\0" = every key from `key` on. */
function inRange(key: string, start: string, end: string | undefined): boolean {
  if (end === undefined) return key === start;
  if (end === '\0') return key >= start;
  return key >= start && key < end;
}

class History {
  /** Every acknowledged write, in acknowledgement order. */
  readonly log: Write[] = [];
  private readonly byKey = new Map<string, Write[]>();
  private readonly revs = new Map<bigint, Write>();
  /** Two writes acknowledged with one revision (each of our writes touches one key). */
  readonly duplicates: string[] = [];

  put(key: string, value: string, rev: bigint): void {
    this.add({ key, rev, value });
  }

  del(key: string, rev: bigint): void {
    this.add({ key, rev, value: null });
  }

  private add(w: Write): void {
    const other = this.revs.get(w.rev);
    if (other) this.duplicates.push(`revision ${w.rev} acknowledged for ${fmtWrite(other)} and ${fmtWrite(w)}`);
    this.revs.set(w.rev, w);
    this.log.push(w);
    let l = this.byKey.get(w.key);
    if (!l) this.byKey.set(w.key, (l = []));
    l.push(w);
    // Concurrent writers' acknowledgements may arrive out of revision order.
    for (let i = l.length - 1; i > 0 && l[i - 1]!.rev > l[i]!.rev; i--) [l[i - 1], l[i]] = [l[i]!, l[i - 1]!];
  }

  get maxRev(): bigint {
    let m = 0n;
    for (const r of this.revs.keys()) if (r > m) m = r;
    return m;
  }

  /** The live keys in [start, end) at revision `rev`, in key order. */
  at(rev: bigint, start: string, end?: string): KV[] {
    const out: KV[] = [];
    for (const [key, writes] of this.byKey) {
      if (!inRange(key, start, end)) continue;
      let cur: KV | null = null;
      for (const w of writes) {
        if (w.rev > rev) break;
        if (w.value === null) cur = null;
        else if (cur === null) cur = { key, value: w.value, create: w.rev, mod: w.rev, version: 1n, lease: 0n };
        else cur = { key, value: w.value, create: cur.create, mod: w.rev, version: cur.version + 1n, lease: 0n };
      }
      if (cur) out.push(cur);
    }
    return out.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  }

  /** The latest state of one key (null when absent). */
  latest(key: string): KV | null {
    return this.at(1n << 62n, key)[0] ?? null;
  }
}

function fmtWrite(w: Write): string {
  return w.value === null ? `delete ${w.key}@${w.rev}` : `put ${w.key}=${w.value}@${w.rev}`;
}

const fmtKV = (kv: KV, keysOnly = false) => `${kv.key}=${keysOnly ? '' : kv.value} c${kv.create} m${kv.mod} v${kv.version}${kv.lease ? ` lease ${kv.lease}` : ''}`;

function fromWire(kv: WireKV): KV {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    create: BigInt(kv.create_revision),
    mod: BigInt(kv.mod_revision),
    version: BigInt(kv.version),
    lease: BigInt(kv.lease),
  };
}

/** A range query in the test's own terms (string keys). */
interface Query {
  key: string;
  /** Undefined: the key alone. */
  end?: string;
  limit?: number;
  revision?: bigint;
  serializable?: boolean;
  countOnly?: boolean;
  keysOnly?: boolean;
  /** sort_order DESCEND, sort_target KEY. */
  descend?: boolean;
}

function rangeRequest(q: Query): Record<string, unknown> {
  return {
    key: b(q.key),
    ...(q.end !== undefined ? { range_end: b(q.end) } : {}),
    limit: String(q.limit ?? 0),
    revision: String(q.revision ?? 0n),
    serializable: q.serializable ?? false,
    count_only: q.countOnly ?? false,
    keys_only: q.keysOnly ?? false,
    ...(q.descend ? { sort_order: 2, sort_target: 0 } : {}),
  };
}

const fmtQuery = (q: Query) =>
  `Range(${JSON.stringify(q.key)}${q.end !== undefined ? `..${JSON.stringify(q.end)}` : ''}${q.limit ? ` limit=${q.limit}` : ''}` +
  `${q.revision ? ` rev=${q.revision}` : ''}${q.serializable ? ' serializable' : ''}${q.countOnly ? ' count_only' : ''}` +
  `${q.keysOnly ? ' keys_only' : ''}${q.descend ? ' descend' : ''})`;

/** A range answer reduced to what must match: kvs (formatted), count and more. */
interface Answer {
  kvs: string[];
  count: number;
  more: boolean;
}

/** What etcd answers to `q` over the given state (the keys `q` selects, in key order). */
function expectedAnswer(q: Query, state: KV[]): Answer {
  if (q.countOnly) return { kvs: [], count: state.length, more: false };
  let kvs = q.descend ? [...state].reverse() : state;
  if (q.limit && q.limit > 0) kvs = kvs.slice(0, q.limit);
  return { kvs: kvs.map((kv) => fmtKV(kv, q.keysOnly)), count: state.length, more: kvs.length < state.length };
}

function actualAnswer(q: Query, res: RangeRes): Answer {
  return { kvs: res.kvs.map((kv) => fmtKV(fromWire(kv), q.keysOnly)), count: Number(res.count), more: res.more };
}

/**
 * Problems of a range answer against the recorded history: it must be exactly the state at
 * its header revision (or at q.revision when given), and no mod_revision may exceed the header.
 */
function checkAnswer(h: History, q: Query, res: RangeRes, what: string): string[] {
  const header = BigInt(res.header.revision);
  const problems: string[] = [];
  for (const kv of res.kvs) {
    if (BigInt(kv.mod_revision) > header) problems.push(`${what}: ${kv.key} mod_revision ${kv.mod_revision} > header ${header}`);
  }
  const at = q.revision && q.revision > 0n ? q.revision : header;
  if (q.revision && header < q.revision) problems.push(`${what}: header ${header} below the requested revision ${q.revision}`);
  const want = expectedAnswer(q, h.at(at, q.key, q.end));
  const got = actualAnswer(q, res);
  if (JSON.stringify(want) !== JSON.stringify(got)) {
    problems.push(`${what}: ${fmtQuery(q)} at ${at} (header ${header}) answered ${JSON.stringify(diffAnswers(want, got))}`);
  }
  return problems;
}

/** The differing parts of two answers, short enough for a failure message. */
function diffAnswers(want: Answer, got: Answer): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (want.count !== got.count) out.count = { want: want.count, got: got.count };
  if (want.more !== got.more) out.more = { want: want.more, got: got.more };
  const w = new Set(want.kvs);
  const g = new Set(got.kvs);
  const missing = want.kvs.filter((x) => !g.has(x));
  const extra = got.kvs.filter((x) => !w.has(x));
  if (missing.length || extra.length) out.kvs = { missing: missing.slice(0, 5), nMissing: missing.length, extra: extra.slice(0, 5), nExtra: extra.length };
  else if (want.kvs.join('\n') !== got.kvs.join('\n')) out.order = { want: want.kvs.slice(0, 5), got: got.kvs.slice(0, 5) };
  return out;
}

// ---------------------------------------------------------------------------------------------
// Client helpers: every write is recorded in a History; a failed call throws.

async function range(c: RawClient, q: Query, deadlineMs = 10_000): Promise<RangeRes> {
  const r = await c.kv('Range', rangeRequest(q), { deadlineMs });
  if (!r.ok) throw new Error(`${fmtQuery(q)} via ${c.address}: ${Code[r.code]} ${r.details}`);
  return r.res as RangeRes;
}

async function put(c: RawClient, h: History, key: string, value: string): Promise<bigint> {
  const r = await c.kv('Put', { key: b(key), value: b(value) });
  if (!r.ok) throw new Error(`put ${key}=${value} via ${c.address}: ${Code[r.code]} ${r.details}`);
  const rev = BigInt(r.res.header.revision);
  h.put(key, value, rev);
  return rev;
}

/** Deletes one key; the revision when it existed, else null (nothing written). */
async function del(c: RawClient, h: History, key: string): Promise<bigint | null> {
  const r = await c.kv('DeleteRange', { key: b(key) });
  if (!r.ok) throw new Error(`delete ${key} via ${c.address}: ${Code[r.code]} ${r.details}`);
  if (Number(r.res.deleted) === 0) return null;
  const rev = BigInt(r.res.header.revision);
  h.del(key, rev);
  return rev;
}

/**
 * A txn that puts (value) or deletes (null) `key` if its version is still the one recorded:
 * the compare must hold (the history is the key's only writer). Returns the write's revision,
 * or null for a delete of a missing key.
 */
async function txnWrite(c: RawClient, h: History, key: string, value: string | null): Promise<bigint | null> {
  const version = h.latest(key)?.version ?? 0n;
  const op = value === null ? { request_delete_range: { key: b(key) } } : { request_put: { key: b(key), value: b(value) } };
  const r = await c.kv('Txn', {
    compare: [{ target: 0, result: 0, key: b(key), version: String(version) }],
    success: [op],
    failure: [{ request_range: { key: b(key) } }],
  });
  if (!r.ok) throw new Error(`txn write ${key} via ${c.address}: ${Code[r.code]} ${r.details}`);
  if (!r.res.succeeded) {
    const kv = r.res.responses[0]?.response_range?.kvs[0] as WireKV | undefined;
    throw new Error(`txn write ${key}: compare version == ${version} (the recorded one) failed; the proxy holds ${kv ? fmtKV(fromWire(kv)) : 'nothing'}`);
  }
  const rev = BigInt(r.res.header.revision);
  if (value === null) {
    if (Number(r.res.responses[0].response_delete_range.deleted) === 0) return null;
    h.del(key, rev);
  } else h.put(key, value, rev);
  return rev;
}

/** A read-only txn reading one key: its answer as a RangeRes (header = the txn's). */
async function txnGet(c: RawClient, key: string): Promise<RangeRes> {
  const r = await c.kv('Txn', { compare: [], success: [{ request_range: { key: b(key) } }], failure: [] });
  if (!r.ok) throw new Error(`txn get ${key} via ${c.address}: ${Code[r.code]} ${r.details}`);
  const rr = r.res.responses[0].response_range as RangeRes;
  return { ...rr, header: r.res.header };
}

/** Runs fn over items with `n` workers. */
async function inParallel<T>(n: number, items: T[], fn: (item: T, worker: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async (_, w) => {
      while (next < items.length) await fn(items[next++]!, w);
    }),
  );
}


const pad = (n: number, w = 4) => String(n).padStart(w, '0');
const endOf = (prefix: string) => prefixEnd(prefix).toString('latin1');
const fail = (problems: string[], what: string) =>
  assert.deepEqual(problems.slice(0, 15), [], `${problems.length} ${what} (E2E_SEED=${SEED})`);

/** Writes `count` keys prefix+k0000.. (spread over the shards by hash) with 48 writers through both proxies. */
async function load(h: History, prefix: string, count: number, value: (i: number) => string): Promise<void> {
  await inParallel(48, Array.from({ length: count }, (_, i) => i), async (i, w) => {
    await put(w % 2 === 0 ? viaA : viaB, h, `${prefix}k${pad(i)}`, value(i));
  });
}

/**
 * Cache hits and misses (by reason) counted so far by the in-process proxies, for diagnostics
 * only: the assertions never depend on where an answer came from.
 */
async function cacheCounts(): Promise<Record<string, number>> {
  const out: Record<string, number> = { hits: await metricTotal('etcd_metaproxy_cache_hits_total') };
  const misses = await registry.getSingleMetric('etcd_metaproxy_cache_misses_total')?.get();
  for (const v of misses?.values ?? []) out[`miss:${v.labels.reason ?? ''}`] = (out[`miss:${v.labels.reason ?? ''}`] ?? 0) + v.value;
  return out;
}

const countsSince = (before: Record<string, number>, now: Record<string, number>) =>
  JSON.stringify(Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v !== 0)));

/** The shards holding the given keys (read from the members directly). */
async function shardsOf(keys: string[]): Promise<Set<number>> {
  const out = new Set<number>();
  for (const k of keys) out.add(await meta.shardOf(k));
  return out;
}

// ---------------------------------------------------------------------------------------------
// 1. Read-your-writes across proxies.

describe('read-your-writes across proxies (linearizable)', () => {
  test('300 writes through one proxy, each read right away through the other', { timeout: TEST_TIMEOUT }, async () => {
    const h = new History();
    const P = 'ryw/';
    const problems: string[] = [];
    const kinds = { put: 0, overwrite: 0, delete: 0, txnPut: 0, txnDelete: 0, absentDelete: 0 };
    for (let i = 0; i < 300; i++) {
      const [w, r] = i % 2 === 0 ? [viaA, viaB] : [viaB, viaA];
      // A third distinct keys, the rest cycling over 17 keys (overwrites, deletes, re-creates).
      const key = i % 3 === 0 ? `${P}d${pad(i, 3)}` : `${P}r${pad(i % 17, 2)}`;
      const existed = h.latest(key) !== null;
      let wrote: bigint | null;
      let deleting = false;
      switch (i % 10) {
        case 7:
        case 8:
          deleting = true;
          wrote = await del(w, h, key);
          if (wrote === null) kinds.absentDelete++;
          else kinds.delete++;
          break;
        case 4:
          wrote = await txnWrite(w, h, key, `t${i}`);
          kinds.txnPut++;
          break;
        case 9:
          deleting = true;
          wrote = await txnWrite(w, h, key, null);
          if (wrote === null) kinds.absentDelete++;
          else kinds.txnDelete++;
          break;
        default:
          wrote = await put(w, h, key, `v${i}`);
          if (existed) kinds.overwrite++;
          else kinds.put++;
      }
      // Txn writes are read back through a read-only Txn, the others through Range.
      const q: Query = { key };
      const res = i % 10 === 4 || i % 10 === 9 ? await txnGet(r, key) : await range(r, q);
      const header = BigInt(res.header.revision);
      const what = `#${i} ${deleting ? 'delete' : 'write'} of ${key}${wrote !== null ? ` at ${wrote}` : ' (nothing there)'} via ${w.address}, read via ${r.address}`;
      if (wrote !== null && header < wrote) problems.push(`${what}: read header ${header} below the write's revision`);
      if (wrote !== null && !deleting && res.kvs[0]?.mod_revision !== String(wrote))
        problems.push(`${what}: read mod_revision ${res.kvs[0]?.mod_revision ?? '(no key)'}, want ${wrote}`);
      if (deleting && res.kvs.length > 0) problems.push(`${what}: the deleted key is still read (${fmtKV(fromWire(res.kvs[0]!))})`);
      problems.push(...checkAnswer(h, q, res, what));
      if (i % 20 === 19) {
        // The whole prefix, over every shard: exactly the recorded state, at or after the last write.
        const all: Query = { key: P, end: endOf(P) };
        const res = await range(r, all);
        if (BigInt(res.header.revision) < h.maxRev) problems.push(`#${i} prefix read: header ${res.header.revision} below the last write ${h.maxRev}`);
        problems.push(...checkAnswer(h, all, res, `#${i} prefix read via ${r.address}`));
      }
    }
    fail(problems, 'stale or wrong reads');
    assert.deepEqual(h.duplicates, []);
    // Non-vacuous: every kind of write happened, over every shard.
    assert.ok(Object.values(kinds).every((n) => n > 0), `every kind of write exercised: ${JSON.stringify(kinds)}`);
    const live = h.at(h.maxRev, P, endOf(P)).map((kv) => kv.key);
    assert.equal((await shardsOf(live)).size, 3, 'the keys are spread over all three shards');
  });

  test('concurrent writer/reader pairs: every read sees its own write and is a snapshot at its header', { timeout: TEST_TIMEOUT }, async () => {
    const h = new History();
    const P = 'rywc/';
    const PAIRS = 6;
    const ITER = 40;
    const problems: string[] = [];
    const snapshots: Array<{ res: RangeRes; what: string }> = [];
    const all: Query = { key: P, end: endOf(P) };
    await Promise.all(
      Array.from({ length: PAIRS }, async (_, p) => {
        const w = new RawClient(meta.addresses[p % 2]!);
        const r = new RawClient(meta.addresses[(p + 1) % 2]!);
        try {
          for (let i = 0; i < ITER; i++) {
            const key = `${P}p${p}/k${i % 5}`;
            const deleting = i % 7 === 6;
            const wrote = deleting ? await del(w, h, key) : i % 4 === 1 ? await txnWrite(w, h, key, `p${p}t${i}`) : await put(w, h, key, `p${p}v${i}`);
            const q: Query = { key };
            const res = await range(r, q);
            const header = BigInt(res.header.revision);
            const what = `pair ${p} #${i}: ${deleting ? 'delete' : 'write'} of ${key} at ${wrote}`;
            if (wrote !== null && header < wrote) problems.push(`${what}: read header ${header} below the write's revision`);
            if (deleting ? res.kvs.length > 0 : res.kvs[0]?.mod_revision !== String(wrote))
              problems.push(`${what}: read ${res.kvs[0] ? fmtKV(fromWire(res.kvs[0])) : 'nothing'}`);
            // Only this pair writes the key: the recorded state is already complete for it.
            problems.push(...checkAnswer(h, q, res, what));
            if (i % 5 === 4) snapshots.push({ res: await range(r, all), what: `pair ${p} #${i} prefix read via ${r.address}` });
          }
        } finally {
          w.close();
          r.close();
        }
      }),
    );
    // Every write is acknowledged now: each prefix read must be the whole state at its header.
    for (const s of snapshots) problems.push(...checkAnswer(h, all, s.res, s.what));
    fail(problems, 'stale or wrong reads');
    assert.deepEqual(h.duplicates, []);
    assert.equal(snapshots.length, PAIRS * (ITER / 5));
  });

  test('keys put with a lease, and their removal by LeaseRevoke, are read right away (serializable on the revoking proxy, linearizable on the other)', { timeout: TEST_TIMEOUT }, async () => {
    const problems: string[] = [];
    const shards = new Set<number>();
    for (let round = 0; round < 10; round++) {
      const P = `rywl/${round}/`;
      const [w, other] = round % 2 === 0 ? [viaA, viaB] : [viaB, viaA];
      const grant = await w.call('Lease', 'LeaseGrant', { TTL: 60, ID: '0' });
      assert.ok(grant.ok, !grant.ok ? grant.details : '');
      const id = String(grant.res.ID);
      const keys = Array.from({ length: 6 }, (_, i) => `${P}k${i}`);
      let last = 0n;
      for (const [i, key] of keys.entries()) {
        const r = await w.kv('Put', { key: b(key), value: b(`v${i}`), lease: id });
        assert.ok(r.ok, !r.ok ? r.details : '');
        last = BigInt(r.res.header.revision);
        const g = await range(other, { key });
        const kv = g.kvs[0];
        if (!kv || kv.lease !== id || BigInt(kv.mod_revision) !== last)
          problems.push(`${key} put at ${last} with lease ${id}; the other proxy read ${kv ? `${kv.value}@${kv.mod_revision} lease ${kv.lease}` : 'nothing'}`);
      }
      const listed = await range(other, { key: P, end: endOf(P) });
      if (listed.kvs.map((kv) => `${kv.key}:${kv.lease}`).join(' ') !== keys.map((k) => `${k}:${id}`).join(' ') || BigInt(listed.header.revision) < last)
        problems.push(`round ${round}: the other proxy lists ${listed.kvs.map((kv) => `${kv.key}:${kv.lease}`).join(' ')} at ${listed.header.revision}`);
      for (const s of await shardsOf(keys)) shards.add(s);

      // The revoke deletes every key; reads right after it must not show any of them.
      const revoke = await w.call('Lease', 'LeaseRevoke', { ID: id });
      assert.ok(revoke.ok, !revoke.ok ? revoke.details : '');
      for (const [c, serializable, what] of [
        [w, true, 'serializable read through the revoking proxy'],
        [other, false, 'linearizable read through the other proxy'],
        [w, false, 'linearizable read through the revoking proxy'],
      ] as const) {
        const after = await range(c, { key: P, end: endOf(P), serializable });
        if (after.kvs.length > 0 || after.count !== '0')
          problems.push(`round ${round}: ${what} right after the revoke still shows ${after.kvs.map((kv) => kv.key.toString()).join(' ')} (count ${after.count}, header ${after.header.revision}, revoke header ${revoke.res.header.revision})`);
      }
    }
    fail(problems, 'stale reads of leased keys');
    assert.equal(shards.size, 3, 'the leased keys live on every shard');
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Pagination at a fixed revision while writes continue.

interface Page {
  start: string;
  res: RangeRes;
  via: string;
  /** How many writes were acknowledged when the page was requested. */
  ackedBefore: number;
}

async function paginate(prefix: string, serializable: boolean): Promise<string> {
  const h = new History();
  const END = endOf(prefix);
  const LIMIT = 100;
  // Neighbours just outside the prefix on both sides, and the prefix itself as a key.
  await put(viaA, h, prefix.slice(0, -1) + '.', 'outside');
  await put(viaA, h, END, 'outside');
  await put(viaB, h, prefix, 'the prefix itself');
  await load(h, prefix, 1000, (i) => `v0-${i}`);
  // Some history before R: deletes and overwrites.
  await inParallel(8, Array.from({ length: 28 }, (_, j) => j * 37), (i, w) => del(w % 2 ? viaA : viaB, h, `${prefix}k${pad(i)}`).then(() => undefined));
  await inParallel(8, Array.from({ length: 19 }, (_, j) => 5 + j * 53), (i, w) => put(w % 2 ? viaA : viaB, h, `${prefix}k${pad(i)}`, `v1-${i}`).then(() => undefined));

  const random = rng(SEED + (serializable ? 1 : 0));
  const pages: Page[] = [];

  // Writers: updates, deletes and creations all over the prefix (and its neighbours), through
  // both proxies, from before the first page until the last.
  let stop = false;
  let writes = 0;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    const c = new RawClient(meta.addresses[w % 2]!);
    try {
      for (let n = 0; !stop; n++) {
        const idx = Math.floor(random() * 1000);
        const p = random();
        const key = `${prefix}k${pad(idx)}`;
        if (p < 0.45) await put(c, h, key, `w${w}-${n}`);
        else if (p < 0.65) await del(c, h, key);
        else if (p < 0.97) await put(c, h, `${key}n${w}-${n}`, `new-w${w}-${n}`);
        else await put(c, h, p < 0.985 ? END : prefix, `w${w}-${n}`);
        writes++;
      }
    } catch (err) {
      stop = true; // ends the page loop; the error is rethrown below
      throw err;
    } finally {
      c.close();
    }
  });
  const writersDone = Promise.all(writers);
  writersDone.catch(() => undefined); // awaited below; keeps an early failure from being unhandled
  let R = 0n;
  let counts: Record<string, number> = {};
  try {
    await waitFor(() => writes >= 20 || stop, 20_000, 'the writers to start');
    counts = await cacheCounts();
    const first = await range(viaA, { key: prefix, end: END, limit: LIMIT, serializable });
    pages.push({ start: prefix, res: first, via: viaA.address, ackedBefore: h.log.length });
    R = BigInt(first.header.revision);
    let last = first;
    while (last.more) {
      assert.ok(pages.length < 40, 'too many pages');
      const before = writes;
      await waitFor(() => writes >= before + 8 || stop, 20_000, 'the writers to make progress between pages');
      const start = last.kvs[last.kvs.length - 1]!.key.toString('utf8') + '\0';
      const c = pages.length % 2 === 0 ? viaA : viaB;
      const ackedBefore = h.log.length;
      last = await range(c, { key: start, end: END, limit: LIMIT, revision: R, serializable });
      pages.push({ start, res: last, via: c.address, ackedBefore });
    }
  } finally {
    stop = true;
    await writersDone;
  }
  const diagnostic = `${pages.length} pages at ${R} while ${writes} writes; cache counts meanwhile (all reads of the in-process proxies): ${countsSince(counts, await cacheCounts())}`;

  // All writes are acknowledged: the state at R is fully known.
  const problems: string[] = [];
  const atR = h.at(R, prefix, END);
  assert.ok(atR.length > 900, `about a thousand keys at R (${atR.length})`);
  for (const [i, p] of pages.entries()) {
    const q: Query = { key: p.start, end: END, limit: LIMIT, revision: i === 0 ? undefined : R, serializable };
    const what = `page ${i} via ${p.via}`;
    if (i === 0 && BigInt(p.res.header.revision) !== R) problems.push(`${what}: header ${p.res.header.revision}`);
    if (i > 0 && BigInt(p.res.header.revision) < R) problems.push(`${what}: header ${p.res.header.revision} below R=${R}`);
    problems.push(...checkAnswer(h, q, p.res, what));
  }
  fail(problems, 'wrong pages');
  const union = pages.flatMap((p) => p.res.kvs.map((kv) => fmtKV(fromWire(kv))));
  assert.deepEqual(union, atR.map((kv) => fmtKV(kv)), `the pages together are the state at R=${R} (E2E_SEED=${SEED})`);
  assert.equal(pages.length, Math.ceil(atR.length / LIMIT));
  assert.deepEqual(h.duplicates, []);

  // Not vacuous: writers changed the ranges of later pages before those pages were read.
  let changedUnderPages = 0;
  for (const p of pages.slice(1)) {
    changedUnderPages += h.log.slice(0, p.ackedBefore).filter((w) => w.rev > R && inRange(w.key, p.start, END)).length;
  }
  assert.ok(changedUnderPages >= 20, `writes into not-yet-read pages after R: ${changedUnderPages}`);
  assert.notDeepEqual(h.at(h.maxRev, prefix, END), atR, 'the current state differs from the state at R');

  // One unpaged read at R, through the other proxy, agrees too.
  const whole: Query = { key: prefix, end: END, revision: R, serializable };
  fail(checkAnswer(h, whole, await range(viaB, whole), 'unpaged read at R'), 'wrong unpaged read');
  return diagnostic;
}

describe('pagination at a fixed revision while writes continue (kube-apiserver lists)', () => {
  test('linearizable first page, then pages at its revision', { timeout: TEST_TIMEOUT }, async (t) => {
    t.diagnostic(await paginate('pagel/', false));
  });
  test('serializable first page, then serializable pages at its revision', { timeout: TEST_TIMEOUT }, async (t) => {
    t.diagnostic(await paginate('pages/', true));
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Serializable reads.

describe('serializable reads', () => {
  test('an acknowledged write becomes visible to serializable reads through the same proxy within seconds', { timeout: TEST_TIMEOUT }, async () => {
    const h = new History();
    const P = 'ser/';
    const problems: string[] = [];
    let maxLagMs = 0;
    for (let i = 0; i < 40; i++) {
      const c = i % 2 === 0 ? viaA : viaB;
      const key = `${P}k${i % 6}`;
      const rev = i % 5 === 4 ? await del(c, h, key) : await put(c, h, key, `v${i}`);
      const started = Date.now();
      let seen = false;
      while (!seen && Date.now() - started < 5_000) {
        // The key alone (one shard) and the whole prefix (every shard).
        const one: Query = { key, serializable: true };
        const all: Query = { key: P, end: endOf(P), serializable: true };
        const [r1, r2] = await Promise.all([range(c, one), range(c, all)]);
        problems.push(...checkAnswer(h, one, r1, `#${i} serializable read of ${key} after a write at ${rev}`));
        problems.push(...checkAnswer(h, all, r2, `#${i} serializable read of ${P} after a write at ${rev}`));
        seen = rev === null || (BigInt(r1.header.revision) >= rev && BigInt(r2.header.revision) >= rev);
        if (!seen) await sleep(20);
      }
      maxLagMs = Math.max(maxLagMs, Date.now() - started);
      if (!seen) problems.push(`#${i}: the write of ${key} at ${rev} was not visible to serializable reads through ${c.address} after 5 s`);
    }
    fail(problems, 'problems');
    assert.ok(maxLagMs < 5_000);
  });

  test('serializable reads through the proxy that acknowledged a write include it at once (README: as on one etcd member)', { timeout: TEST_TIMEOUT }, async () => {
    const h = new History();
    const P = 'serryw/';
    const all: Query = { key: P, end: endOf(P), serializable: true };
    const problems: string[] = [];
    for (let i = 0; i < 60; i++) {
      const c = i % 2 === 0 ? viaA : viaB;
      const key = `${P}k${i % 9}`;
      const rev = i % 6 === 5 ? await del(c, h, key) : i % 6 === 2 ? await txnWrite(c, h, key, `t${i}`) : await put(c, h, key, `v${i}`);
      // Over every shard, so that the shards the write did not touch are read too.
      const res = await range(c, all);
      if (rev !== null && BigInt(res.header.revision) < rev)
        problems.push(`#${i}: write of ${key} at ${rev} acknowledged by ${c.address}; its serializable read right after stands at ${res.header.revision}`);
      problems.push(...checkAnswer(h, all, res, `#${i} serializable read through the writing proxy`));
    }
    fail(problems, 'serializable reads without the own write');
  });

  test('serializable ranges (and linearizable ones, read-only txns) over keys on three shards are states that existed, never going back', { timeout: TEST_TIMEOUT }, async () => {
    const h = new History();
    const P = 'mix/';
    // One key per shard; the writer always writes them in this order.
    const keys: string[] = [];
    const taken = new Set<number>();
    for (let i = 0; keys.length < 3 && i < 60; i++) {
      const key = `${P}${String.fromCharCode(97 + (i % 26))}${i}`;
      await put(viaA, h, key, '0');
      const shard = await meta.shardOf(key);
      if (taken.has(shard)) await del(viaA, h, key);
      else {
        taken.add(shard);
        keys.push(key);
      }
    }
    assert.equal(keys.length, 3, 'found a key on each shard');
    const q: Query = { key: P, end: endOf(P), serializable: true };
    // Serializable reads through B may lag behind A's writes: start once both proxies hold the three
    // keys and nothing else (a lagging proxy may still show a probe key that was put and deleted).
    const want = [...keys].sort().join(' ');
    const holdsKeys = async (c: RawClient) => (await range(c, q)).kvs.map((kv) => kv.key.toString()).sort().join(' ') === want;
    for (const c of [viaA, viaB]) await waitFor(() => holdsKeys(c), 5_000, `${c.address} to hold the three keys`);
    const ROUNDS = 40;
    let writing = true;
    const writer = (async () => {
      try {
        for (let i = 1; i <= ROUNDS; i++) for (const k of keys) await put(i % 2 ? viaA : viaB, h, k, String(i));
      } finally {
        writing = false;
      }
    })();
    const reads: Array<{ res: RangeRes; what: string }> = [];
    const problems: string[] = [];
    /** The three keys through one read-only txn (a snapshot too), as a range answer. */
    const txnRead = async (c: RawClient): Promise<RangeRes> => {
      const r = await c.kv('Txn', { compare: [], success: [...keys].sort().map((k) => ({ request_range: { key: b(k) } })), failure: [] });
      if (!r.ok) throw new Error(`txn read via ${c.address}: ${Code[r.code]} ${r.details}`);
      const kvs = (r.res.responses as Array<{ response_range: RangeRes }>).flatMap((x) => x.response_range.kvs);
      return { header: r.res.header, kvs, more: false, count: String(kvs.length) };
    };
    const reader = async (c: RawClient, mode: 'serializable' | 'linearizable' | 'txn', name: string) => {
      let lastHeader = 0n;
      let n = 0;
      while (writing) {
        const res = mode === 'txn' ? await txnRead(c) : await range(c, { ...q, serializable: mode === 'serializable' });
        const what = `${name} read ${n++} (header ${res.header.revision})`;
        reads.push({ res, what });
        const header = BigInt(res.header.revision);
        if (header < lastHeader) problems.push(`${what}: went back from header ${lastHeader}`);
        lastHeader = header;
        // The write order makes v(k1) >= v(k2) >= v(k3) >= v(k1) - 1 at every revision.
        const v = keys.map((k) => Number(res.kvs.find((kv) => kv.key.toString() === k)?.value.toString() ?? NaN));
        if (!(v[0]! >= v[1]! && v[1]! >= v[2]! && v[2]! >= v[0]! - 1)) problems.push(`${what}: ${keys.map((k, i) => `${k}=${v[i]}`).join(' ')} never existed`);
      }
    };
    await Promise.all([
      writer,
      reader(viaA, 'serializable', 'serializable via A'),
      reader(viaB, 'serializable', 'serializable via B'),
      reader(viaA, 'linearizable', 'linearizable via A'),
      reader(viaB, 'txn', 'read-only txn via B'),
    ]);
    for (const r of reads) problems.push(...checkAnswer(h, q, r.res, r.what));
    fail(problems, 'inconsistent reads');
    assert.ok(reads.length >= 30, `enough reads while writing (${reads.length})`);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. A new proxy on existing data.

/**
 * Starts one more in-process proxy on a port known in advance (so it can be probed while it
 * starts). Its cache loads in small pages, so that loading takes many member reads.
 */
async function startExtraProxy(listen: string, tag: string): Promise<RunningProxy> {
  const { startProxy } = await import('../src/server/proxy.js');
  const cfg = proxyConfig(meta.cluster, listen, { log: { level: process.env.E2E_LOG_LEVEL ?? 'info' } });
  if (cfg.cache) cfg.cache.loadPageKeys = 16;
  const logger = pino({ level: cfg.log.level, base: { proxy: tag } }, pino.destination({ dest: path.join(meta.dataDir, `proxy-${tag}.log`), sync: true }));
  const proxy = await startProxy(cfg, { logger });
  cleanup.add(`close proxy ${tag}`, () => proxy.close());
  return proxy;
}

describe('a new proxy on existing data', () => {
  test('answers exactly as recorded and as the running proxy, also while it starts and loads', { timeout: TEST_TIMEOUT }, async (t) => {
    const h = new History();
    const P = 'load/';
    const END = endOf(P);
    await load(h, P, 2000, (i) => `v${i}-${'x'.repeat(i % 60)}`);
    const loaded = h.maxRev;
    await inParallel(32, Array.from({ length: 200 }, (_, j) => j * 10), async (i, w) => {
      await put(w % 2 ? viaA : viaB, h, `${P}k${pad(i)}`, `second-${i}`);
    });
    await inParallel(32, Array.from({ length: 80 }, (_, j) => j * 25 + 3), async (i, w) => {
      await del(w % 2 ? viaA : viaB, h, `${P}k${pad(i)}`);
    });
    assert.equal(h.at(h.maxRev, P, END).length, 2000 - 80);
    const random = rng(SEED + 5);
    const someKey = () => `${P}k${pad(Math.floor(random() * 2000))}`;
    const queries = (): Query[] => {
      const k = someKey();
      return [
        { key: k },
        { key: k, serializable: true },
        { key: P, end: END, limit: 100 },
        { key: P, end: END, limit: 100, serializable: true },
        { key: k + '\0', end: END, limit: 50 },
        { key: k, end: END, limit: 50, serializable: true, keysOnly: true },
        { key: P, end: END, countOnly: true },
        { key: P, end: END, countOnly: true, serializable: true },
        { key: P, end: END, serializable: true },
        { key: P, end: END },
        { key: P, end: END, limit: 10, descend: true },
        { key: P, end: END, limit: 100, revision: loaded },
        { key: k, end: END, limit: 20, revision: loaded - 500n },
      ];
    };

    // While the new proxy starts and loads its cache, writers keep changing the prefix through A and B.
    let writing = true;
    let writes = 0;
    const writers = Promise.all(
      [viaA, viaB].map(async (c, w) => {
        for (let n = 0; writing; n++) {
          const key = someKey();
          const p = random();
          if (p < 0.6) await put(c, h, key, `during-w${w}-${n}`);
          else if (p < 0.8) await del(c, h, key);
          else await put(c, h, `${key}n${w}-${n}`, `new-w${w}-${n}`);
          writes++;
        }
      }),
    );
    writers.catch(() => (writing = false));

    // Probe the new proxy's port from before it is started until its cache is loaded and a bit after.
    const listen = `127.0.0.1:${await freePort()}`;
    type Phase = 'starting' | 'loading' | 'loaded';
    let phase: Phase = 'starting';
    const answered: Record<Phase, number> = { starting: 0, loading: 0, loaded: 0 };
    const answers: Array<{ q: Query; res: RangeRes; phase: Phase; ackedMax: bigint }> = [];
    const failedAfterStart: string[] = [];
    let probing = true;
    const prober = (async () => {
      let c = new RawClient(listen);
      let reconnected = false;
      try {
        while (probing) {
          for (const q of queries()) {
            const at = phase;
            if (at !== 'starting' && !reconnected) {
              // The startup channel may sit in reconnect backoff: a fresh one connects right away.
              c.close();
              c = new RawClient(listen);
              reconnected = true;
            }
            const ackedMax = h.maxRev;
            const r = await c.kv('Range', rangeRequest(q), { deadlineMs: 3_000 });
            if (r.ok) {
              answered[at]++;
              answers.push({ q, res: r.res as RangeRes, phase: at, ackedMax });
            } else if (at !== 'starting' && failedAfterStart.length < 5) failedAfterStart.push(`${fmtQuery(q)}: ${Code[r.code]} ${r.details}`);
          }
          if (phase === 'starting') await sleep(10);
        }
      } finally {
        c.close();
      }
    })();
    let proxy: RunningProxy | undefined;
    const counts = await cacheCounts();
    try {
      await waitFor(() => writes >= 10 || !writing, 10_000, 'the writers to start');
      proxy = await startExtraProxy(listen, 'new');
      assert.ok(proxy.ready());
      phase = 'loading';
      await waitFor(() => proxy!.cacheNotReady?.() == null, 30_000, 'the new proxy to load its cache');
      phase = 'loaded';
      const sinceLoaded = writes;
      await waitFor(() => (answered.loaded >= 13 && writes >= sinceLoaded + 10) || !writing, 30_000, 'the new proxy to answer with its cache loaded');
    } finally {
      probing = false;
      writing = false;
      await prober;
      await writers;
    }
    t.diagnostic(`answers: ${JSON.stringify(answered)}; writes meanwhile: ${writes}; cache counts meanwhile: ${countsSince(counts, await cacheCounts())}`);
    assert.deepEqual(failedAfterStart, [], 'the started proxy answers every read');

    // Every write is acknowledged now: each answer must be the recorded state at its header.
    const problems: string[] = [];
    for (const a of answers) {
      problems.push(...checkAnswer(h, a.q, a.res, `new proxy (${a.phase})`));
      if (!a.q.serializable && !a.q.revision && BigInt(a.res.header.revision) < a.ackedMax)
        problems.push(`new proxy (${a.phase}): linearizable ${fmtQuery(a.q)} header ${a.res.header.revision} below ${a.ackedMax}, acknowledged before it was sent`);
    }

    // Quiet now: the same queries through both proxies give the same answers, which are the recorded ones.
    const fresh = new RawClient(proxy!.address);
    try {
      // A linearizable read through each brings its serializable view up to every acknowledged write.
      for (const c of [fresh, viaA]) await range(c, { key: P, end: END, countOnly: true });
      for (const q of queries()) {
        const [mine, theirs] = await Promise.all([range(fresh, q), range(viaA, q)]);
        problems.push(...checkAnswer(h, q, mine, 'new proxy'));
        const same = JSON.stringify(actualAnswer(q, mine)) === JSON.stringify(actualAnswer(q, theirs));
        if (!same) problems.push(`${fmtQuery(q)}: the new proxy and proxy A differ: ${JSON.stringify(diffAnswers(actualAnswer(q, theirs), actualAnswer(q, mine)))}`);
      }
    } finally {
      fresh.close();
    }
    fail(problems, 'wrong answers from the new proxy');
    assert.deepEqual(h.duplicates, []);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. The cache's own surface: readiness check and metrics. Fails until the cache exists.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition → samples (and the declared TYPE of each metric). */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

describe('cache surface', () => {
  /** A proxy run as the CLI runs it: its own process, registry and metrics endpoint. */
  let child: ChildProcess;
  let listen: string;
  let metricsAddr: string;
  let viaChild: RawClient;

  before(async () => {
    listen = `127.0.0.1:${await freePort()}`;
    metricsAddr = `127.0.0.1:${await freePort()}`;
    const file = path.join(meta.dataDir, 'cli-proxy.json');
    fs.writeFileSync(file, JSON.stringify(proxyConfig(meta.cluster, listen, { metrics: { listen: metricsAddr }, log: { level: 'info' } })));
    ({ child } = await serveProcess({
      name: 'the CLI proxy',
      config: file,
      log: path.join(meta.dataDir, 'cli-proxy.log'),
      onSpawn: (p) =>
        cleanup.add('stop CLI proxy', async () => {
          if (p.child.exitCode === null) p.child.kill('SIGTERM');
          const killer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
          await p.exited;
          clearTimeout(killer);
        }),
    }));
    viaChild = new RawClient(listen);
    cleanup.add('close CLI proxy client', () => viaChild.close());
  }, { timeout: SETUP_TIMEOUT });

  test('GET /readyz/cache answers 200 ok once the caches are loaded; /readyz?verbose lists [+]cache ok', { timeout: 60_000 }, async () => {
    let last = { status: 0, body: '' };
    await waitFor(async () => {
      last = await httpGet(`http://${metricsAddr}/readyz/cache`);
      return last.status === 200;
    }, 10_000, '/readyz/cache to answer 200').catch((err: Error) => {
      throw new Error(`${err.message}; last answer ${last.status} ${JSON.stringify(last.body)}`);
    });
    assert.equal(last.body, 'ok\n');
    const verbose = await httpGet(`http://${metricsAddr}/readyz?verbose`);
    assert.equal(verbose.status, 200, verbose.body);
    assert.match(verbose.body, /^\[\+\]cache ok$/m);
    assert.match(verbose.body, /^ok$/m);
  });

  test('etcd_metaproxy_cache_keys per shard sums to the keys written; hits grow with reads; misses exist', { timeout: 60_000 }, async () => {
    const scrape = async () => parseMetrics((await httpGet(`http://${metricsAddr}/metrics`)).body);
    const total = async () => Number((await range(viaChild, { key: '\0', end: '\0', countOnly: true })).count);
    const cacheKeys = (s: Sample[]) => s.filter((x) => x.name === 'etcd_metaproxy_cache_keys');
    const sum = (s: Sample[]) => s.reduce((n, x) => n + x.value, 0);

    const first = await scrape();
    assert.equal(first.types.get('etcd_metaproxy_cache_keys'), 'gauge');
    assert.equal(first.types.get('etcd_metaproxy_cache_hits_total'), 'counter');
    assert.equal(first.types.get('etcd_metaproxy_cache_misses_total'), 'counter');
    const keys0 = await total();
    let last = first;
    await waitFor(async () => sum(cacheKeys((last = await scrape()).samples)) === keys0, 10_000, 'the cached keys to add up').catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(cacheKeys(last.samples))}, want a sum of ${keys0}`);
    });
    assert.deepEqual(cacheKeys(last.samples).map((x) => x.labels.shard).sort(), ['s1', 's2', 's3'], 'one gauge per shard');

    // 30 new keys (and an overwrite, and a delete of a missing key, which add none).
    const h = new History();
    for (let i = 0; i < 30; i++) await put(viaChild, h, `surface/k${i}`, `v${i}`);
    await put(viaA, h, 'surface/k0', 'again');
    await del(viaB, h, 'surface/none');
    assert.equal(await total(), keys0 + 30);
    await waitFor(async () => sum(cacheKeys((last = await scrape()).samples)) === keys0 + 30, 10_000, 'the cached keys to count the new ones').catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(cacheKeys(last.samples))}, want a sum of ${keys0 + 30}`);
    });

    const hits = (s: Sample[]) => sum(s.filter((x) => x.name === 'etcd_metaproxy_cache_hits_total'));
    const hits0 = hits((await scrape()).samples);
    const problems: string[] = [];
    for (let i = 0; i < 20; i++) {
      for (const q of [{ key: `surface/k${i}`, serializable: true }, { key: `surface/k${i}` }, { key: 'surface/', end: 'surface0', limit: 5, serializable: i % 2 === 0 }] as Query[]) {
        problems.push(...checkAnswer(h, q, await range(viaChild, q), 'CLI proxy'));
      }
    }
    fail(problems, 'wrong reads through the CLI proxy');
    const hits1 = hits((await scrape()).samples);
    assert.ok(hits1 - hits0 >= 20, `cache_hits_total grew by ${hits1 - hits0} over 60 reads`);
  });

  test('the in-process proxies count their cache hits in the shared registry', { timeout: 30_000 }, async () => {
    // Every in-process proxy (A, B and the one started on existing data) adds to the same
    // registry, so only growth is checked here; exact per-proxy values come from the CLI proxy.
    for (const name of ['etcd_metaproxy_cache_hits_total', 'etcd_metaproxy_cache_misses_total', 'etcd_metaproxy_cache_keys']) {
      assert.ok(registry.getSingleMetric(name), `${name} is registered`);
    }
    const before = await metricTotal('etcd_metaproxy_cache_hits_total');
    for (let i = 0; i < 10; i++) {
      await range(i % 2 ? viaA : viaB, { key: `surface/k${i}`, serializable: true });
      await range(i % 2 ? viaA : viaB, { key: 'surface/', end: 'surface0', limit: 5 });
    }
    const grew = (await metricTotal('etcd_metaproxy_cache_hits_total')) - before;
    assert.ok(grew >= 10, `cache_hits_total grew by ${grew} over 20 reads`);
    assert.ok((await metricTotal('etcd_metaproxy_cache_keys')) > 0, 'in-process proxies report cached keys');
  });

  test('identical concurrent reads are computed once and share the answer', { timeout: 30_000 }, async () => {
    const shared = await metricTotal('etcd_metaproxy_cache_shared_answers_total');
    const same = () => range(viaA, { key: 'surface/', end: 'surface0', limit: 3 });
    const answers = await Promise.all(Array.from({ length: 32 }, same));
    // No writes meanwhile: one revision, one answer for all of them.
    const distinct = new Set(answers.map((a) => JSON.stringify(a)));
    assert.equal(distinct.size, 1, 'identical reads at one revision got different answers');
    const grew = (await metricTotal('etcd_metaproxy_cache_shared_answers_total')) - shared;
    assert.ok(grew >= 16, `only ${grew} of 32 identical reads shared a computed answer`);
  });
});
