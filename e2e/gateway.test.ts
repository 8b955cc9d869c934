/**
 * The JSON gateway, differential: the same HTTP requests to a plain etcd 3.4's gateway (its
 * client URL) and to a proxy's gateway (its metrics listener), compared as status code plus
 * JSON body, with header values left out and revisions made relative to a revision each side
 * reports at the start of the test (each write is one revision on both). Covers KV (prefix,
 * limit, sort, keys_only, count_only, txn branches, prev_kv, compaction), leases (a streaming
 * keepalive), a streaming watch, maintenance status, member list, /version, /health, and
 * etcd's errors (status codes and error bodies).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMetricsServer } from '../src/http/server.js';
import { metaPerFile, metricTotal, waitFor } from './harness.js';

const TEST_TIMEOUT = 60_000;
const setup = metaPerFile({ shards: 3, tag: 'gateway', oracleName: 'gateway-oracle' });

interface Side {
  name: 'etcd' | 'proxy';
  url: string;
}
let etcd: Side;
let proxy: Side;

before(async () => {
  const { meta, oracle } = await setup.started();
  const p = meta.proxies[0]!;
  const server = await startMetricsServer('127.0.0.1:0', { ready: () => p.ready(), upstreams: (w) => p.probeUpstreams(w) }, undefined, () => p.gateway);
  setup.cleanup.add('close gateway listener', () => server.close());
  etcd = { name: 'etcd', url: `http://${oracle!.address}` };
  proxy = { name: 'proxy', url: `http://${server.address}` };
});

const b64 = (s: string | Buffer) => (Buffer.isBuffer(s) ? s : Buffer.from(s)).toString('base64');

interface Answer {
  status: number;
  type: string;
  body: string;
}

async function post(side: Side, path: string, body: string | object | null, method = 'POST'): Promise<Answer> {
  const res = await fetch(side.url + path, {
    method,
    body: body === null ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** Revisions in a JSON answer, relative to the side's base; header values left out. */
const REVISION_FIELDS = new Set(['create_revision', 'mod_revision', 'compact_revision', 'revision', 'compactRevision']);
function normalise(v: unknown, base: bigint): unknown {
  if (Array.isArray(v)) return v.map((x) => normalise(x, base));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'header' && x && typeof x === 'object') {
        // Only a nested (txn) response header carries nothing but a revision: keep it, relative.
        const h = x as Record<string, string>;
        out[k] = Object.keys(h).length === 1 && h.revision ? { revision: `R${BigInt(h.revision) - base}` } : 'HEADER';
      } else if (REVISION_FIELDS.has(k) && typeof x === 'string') out[k] = `R${BigInt(x) - base}`;
      else out[k] = normalise(x, base);
    }
    return out;
  }
  return v;
}

function parsed(a: Answer, base: bigint): unknown {
  if (!a.type.startsWith('application/json')) return a.body;
  return a.body
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => normalise(JSON.parse(l), base));
}

/** Each side's current revision (the base its revisions are compared against). */
async function bases(prefix: string): Promise<Record<Side['name'], bigint>> {
  const out = {} as Record<Side['name'], bigint>;
  for (const side of [etcd, proxy]) {
    const a = await post(side, '/v3/kv/put', { key: b64(`${prefix}/base`), value: b64('x') });
    assert.equal(a.status, 200, `${side.name}: ${a.body}`);
    out[side.name] = BigInt((JSON.parse(a.body) as { header: { revision: string } }).header.revision);
  }
  return out;
}

/** Sends the same request to both sides (etcd first) and asserts equal status and body. */
async function same(base: Record<Side['name'], bigint>, path: string, body: string | object | null, what: string, method = 'POST'): Promise<unknown> {
  const e = await post(etcd, path, body, method);
  const p = await post(proxy, path, body, method);
  const ej = parsed(e, base.etcd);
  assert.deepEqual({ status: p.status, type: p.type, body: parsed(p, base.proxy) }, { status: e.status, type: e.type, body: ej }, `${what}: ${path} ${JSON.stringify(body)}`);
  return ej;
}

test('put and range: prefix, limit, sort, keys_only, count_only, prev_kv', { timeout: TEST_TIMEOUT }, async () => {
  const base = await bases('gw-kv');
  for (const k of ['a', 'b', 'c', 'd']) await same(base, '/v3/kv/put', { key: b64(`gw-kv/${k}`), value: b64(`v-${k}`) }, 'put');
  await same(base, '/v3/kv/put', { key: b64('gw-kv/a'), value: b64('v-a2'), prev_kv: true }, 'put prev_kv');
  await same(base, '/v3/kv/put', { key: b64('gw-kv/b'), ignore_value: true, prevKv: true }, 'put ignore_value (camelCase name)');
  const all = { key: b64('gw-kv/'), range_end: b64('gw-kv0') };
  await same(base, '/v3/kv/range', all, 'prefix');
  await same(base, '/v3/kv/range', { key: b64('gw-kv/a') }, 'one key');
  await same(base, '/v3/kv/range', { key: b64('gw-kv/zz') }, 'missing key');
  await same(base, '/v3/kv/range', { ...all, limit: 2 }, 'limit');
  await same(base, '/v3/kv/range', { ...all, limit: '1', sort_order: 'DESCEND', sort_target: 'KEY' }, 'sort by key, descending');
  await same(base, '/v3/kv/range', { ...all, sort_order: 1, sort_target: 'MOD' }, 'sort by mod revision (enum as number)');
  await same(base, '/v3/kv/range', { ...all, keys_only: true }, 'keys_only');
  await same(base, '/v3/kv/range', { ...all, count_only: true }, 'count_only');
  await same(base, '/v3/kv/range', { ...all, min_mod_revision: String(base.etcd + 5n) }, 'min_mod_revision');
  await same(base, '/v3/kv/range', { ...all, serializable: true }, 'serializable');
  await same(base, '/v3beta/kv/range', all, 'the /v3beta prefix');
  await same(base, '/v3/kv/range', `{"key":"${b64('gw-kv/a')}"} trailing`, 'trailing text after the request');
});

test('txn: compares, success and failure branches', { timeout: TEST_TIMEOUT }, async () => {
  const base = await bases('gw-txn');
  await same(base, '/v3/kv/put', { key: b64('gw-txn/k'), value: b64('1') }, 'put');
  const txn = (value: string) => ({
    compare: [{ target: 'VALUE', key: b64('gw-txn/k'), value: b64(value), result: 'EQUAL' }, { target: 'VERSION', key: b64('gw-txn/k'), version: '1', result: 'GREATER' }],
    success: [{ request_put: { key: b64('gw-txn/k'), value: b64('2'), prev_kv: true } }, { request_range: { key: b64('gw-txn/k') } }],
    failure: [{ request_range: { key: b64('gw-txn/k') } }, { request_delete_range: { key: b64('gw-txn/k'), prev_kv: true } }],
  });
  // version 1 is not > 1: the failure branch.
  await same(base, '/v3/kv/txn', txn('1'), 'failure branch');
  await same(base, '/v3/kv/put', { key: b64('gw-txn/k'), value: b64('1') }, 'put again');
  await same(base, '/v3/kv/put', { key: b64('gw-txn/k'), value: b64('1') }, 'and again');
  await same(base, '/v3/kv/txn', txn('1'), 'success branch');
  await same(base, '/v3/kv/txn', { compare: [{ target: 'CREATE', key: b64('gw-txn/none'), create_revision: '0', result: 'EQUAL' }], success: [{ request_put: { key: b64('gw-txn/none'), value: b64('v') } }] }, 'create-if-absent');
  await same(base, '/v3/kv/txn', {}, 'empty txn');
});

test('deleterange with prev_kv', { timeout: TEST_TIMEOUT }, async () => {
  const base = await bases('gw-del');
  for (const k of ['a', 'b', 'c']) await same(base, '/v3/kv/put', { key: b64(`gw-del/${k}`), value: b64(k) }, 'put');
  await same(base, '/v3/kv/deleterange', { key: b64('gw-del/a'), prev_kv: true }, 'one key');
  await same(base, '/v3/kv/deleterange', { key: b64('gw-del/'), range_end: b64('gw-del0'), prev_kv: true }, 'a range');
  await same(base, '/v3/kv/deleterange', { key: b64('gw-del/a') }, 'nothing to delete');
});

test('lease: grant, streaming keepalive, timetolive with keys, leases, revoke (and the /v3/kv/lease aliases)', { timeout: TEST_TIMEOUT }, async () => {
  const base = await bases('gw-lease');
  const id = '7000001';
  await same(base, '/v3/lease/grant', { TTL: 60, ID: id }, 'grant');
  await same(base, '/v3/lease/grant', { TTL: 60, ID: id }, 'grant an id in use');
  await same(base, '/v3/kv/put', { key: b64('gw-lease/k'), value: b64('v'), lease: id }, 'put with the lease');
  // Two keepalives in one streaming body: two result lines, then the stream ends.
  await same(base, '/v3/lease/keepalive', `{"ID":"${id}"}\n{"ID":"${id}"}`, 'keepalive stream');
  // A body still being sent: the proxy answers each keepalive as it arrives (etcd's Go HTTP/1
  // server answers only once the body has ended), with what etcd answers to one keepalive.
  const one = await post(etcd, '/v3/lease/keepalive', `{"ID":"${id}"}`);
  const streamed = (await keepaliveAsSent(proxy, id, 3)).map((l) => normalise(JSON.parse(l), base.proxy));
  assert.deepEqual(streamed, [1, 2, 3].map(() => parsed(one, base.etcd)).flat());
  await same(base, '/v3/lease/keepalive', '{"ID":"424242"}', 'keepalive of an unknown lease');
  await same(base, '/v3/lease/keepalive', '', 'keepalive with an empty body');
  const ttl = async (path: string, body: object) => {
    // TTL counts down in seconds on each side: compared without it, then checked on its own.
    const e = await post(etcd, path, body);
    const p = await post(proxy, path, body);
    const strip = (a: Answer) => {
      const j = JSON.parse(a.body) as Record<string, unknown>;
      const t = Number(j.TTL);
      delete j.TTL;
      delete j.header;
      return { status: a.status, j, ttlInRange: t > 50 && t <= 60 };
    };
    assert.deepEqual(strip(p), strip(e), `${path} ${JSON.stringify(body)}`);
  };
  await ttl('/v3/lease/timetolive', { ID: id, keys: true });
  await ttl('/v3/kv/lease/timetolive', { ID: id });
  await same(base, '/v3/lease/timetolive', { ID: '424242' }, 'timetolive of an unknown lease');
  await same(base, '/v3/lease/leases', {}, 'leases');
  await same(base, '/v3/kv/lease/leases', {}, 'leases (alias)');
  await same(base, '/v3/lease/revoke', { ID: id }, 'revoke');
  await same(base, '/v3/kv/range', { key: b64('gw-lease/k') }, 'the leased key is gone');
  await same(base, '/v3/kv/lease/revoke', { ID: id }, 'revoke again (alias): lease not found');
  await same(base, '/v3/lease/leases', {}, 'no leases left');
});

/**
 * Keepalives sent one at a time in one chunked request body: each next one is sent only after
 * the answer to the previous one arrived; then the body ends and so does the answer.
 */
async function keepaliveAsSent(side: Side, id: string, count: number): Promise<string[]> {
  let push!: (s: string | null) => void;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      push = (s) => (s === null ? controller.close() : controller.enqueue(new TextEncoder().encode(s)));
    },
  });
  push(`{"ID":"${id}"}`);
  const ac = new AbortController();
  const guard = setTimeout(() => ac.abort(), 15_000);
  const res = await fetch(`${side.url}/v3/lease/keepalive`, { method: 'POST', body, duplex: 'half', signal: ac.signal } as RequestInit);
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const lines: string[] = [];
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString('utf8');
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0) {
      lines.push(text.slice(0, nl));
      text = text.slice(nl + 1);
      push(lines.length < count ? `\n{"ID":"${id}"}` : null);
    }
  }
  clearTimeout(guard);
  return lines.filter((l) => l.trim() !== '');
}

/** Opens a watch (the create request as the streaming body), reads `count` lines, closes. */
/**
 * A watch created by one request; once created, `writes` run; reads until `events` events
 * arrived. Answers: the first line (the created response) and the events, flattened: the proxy
 * may carry several revisions in one response where etcd sends one each (README, "Watch
 * timing"), which is not a difference of the gateway.
 */
async function watchLines(side: Side, create: object, events: number, writes: () => Promise<void>): Promise<{ created: unknown; events: unknown[] }> {
  const ac = new AbortController();
  const res = await fetch(`${side.url}/v3/watch`, { method: 'POST', body: JSON.stringify({ create_request: create }), signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const lines: Array<{ result?: { events?: unknown[] } }> = [];
  const got = () => lines.reduce((n, l) => n + (l.result?.events?.length ?? 0), 0);
  let text = '';
  let wrote = false;
  try {
    while (lines.length === 0 || got() < events) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
      let nl: number;
      while ((nl = text.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(text.slice(0, nl)) as { result?: { events?: unknown[] } });
        text = text.slice(nl + 1);
      }
      // Writes start once the watch is created (its first line).
      if (!wrote && lines.length > 0) {
        wrote = true;
        await writes();
      }
    }
  } finally {
    ac.abort();
  }
  return { created: lines[0], events: lines.flatMap((l) => l.result?.events ?? []) };
}

test('watch: a streaming response of newline-delimited {"result": ...} objects', { timeout: TEST_TIMEOUT }, async () => {
  const base = await bases('gw-watch');
  const results: Record<string, unknown> = {};
  for (const side of [etcd, proxy]) {
    const put = (k: string, v: string) => post(side, '/v3/kv/put', { key: b64(`gw-watch/${k}`), value: b64(v) });
    const got = await watchLines(side, { key: b64('gw-watch/'), range_end: b64('gw-watch0'), prev_kv: true, start_revision: String(base[side.name] + 1n) }, 3, async () => {
      await put('a', '1');
      await put('a', '2');
      await post(side, '/v3/kv/deleterange', { key: b64('gw-watch/a') });
    });
    results[side.name] = normalise(got, base[side.name]);
  }
  assert.equal((results.etcd as { events: unknown[] }).events.length, 3);
  assert.deepEqual(results.proxy, results.etcd);
  // A watch of history: every event since the base in one answer, then the stream stays open.
  const history: Record<string, unknown> = {};
  for (const side of [etcd, proxy]) {
    const got = await watchLines(side, { key: b64('gw-watch/a'), start_revision: String(base[side.name] + 1n), filters: ['NODELETE'] }, 2, async () => undefined);
    history[side.name] = normalise(got, base[side.name]);
  }
  assert.deepEqual(history.proxy, history.etcd);
  // More requests in the same body: a second watch (its own id) and a cancel of the first.
  const more: Record<string, unknown> = {};
  for (const side of [etcd, proxy]) {
    const body = [
      { create_request: { key: b64('gw-watch/a') } },
      { create_request: { key: b64('gw-watch/b'), watch_id: '7' } },
      { cancel_request: { watch_id: '0' } },
    ];
    const lines = await rawWatch(side, body.map((x) => JSON.stringify(x)).join('\n'), 3);
    more[side.name] = lines.map((l) => normalise(JSON.parse(l), base[side.name]));
  }
  assert.deepEqual(more.proxy, more.etcd);
  // Closed watches free their sessions on the proxy.
  await waitFor(async () => (await metricTotal('etcd_metaproxy_watch_streams')) === 0, 10_000, 'watch streams to close');
});

/** A watch whose whole request body is `body`; reads `count` lines, closes. */
async function rawWatch(side: Side, body: string, count: number): Promise<string[]> {
  const ac = new AbortController();
  const res = await fetch(`${side.url}/v3/watch`, { method: 'POST', body, signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const lines: string[] = [];
  let text = '';
  try {
    while (lines.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
      let nl: number;
      while ((nl = text.indexOf('\n')) >= 0) {
        lines.push(text.slice(0, nl));
        text = text.slice(nl + 1);
      }
    }
  } finally {
    ac.abort();
  }
  return lines.slice(0, count);
}

test('compaction and reads of compacted and future revisions', { timeout: TEST_TIMEOUT }, async () => {
  const base = await bases('gw-compact');
  await same(base, '/v3/kv/put', { key: b64('gw-compact/k'), value: b64('1') }, 'put');
  await same(base, '/v3/kv/put', { key: b64('gw-compact/k'), value: b64('2') }, 'put');
  // Each side compacts at its own base + 1 (the first put).
  for (const side of [etcd, proxy]) {
    const a = await post(side, '/v3/kv/compaction', { revision: String(base[side.name] + 1n), physical: true });
    assert.equal(a.status, 200, `${side.name} compaction: ${a.body}`);
  }
  const rel = async (path: string, at: (s: Side) => object, what: string) => {
    const e = await post(etcd, path, at(etcd));
    const p = await post(proxy, path, at(proxy));
    assert.deepEqual({ status: p.status, body: parsed(p, base.proxy) }, { status: e.status, body: parsed(e, base.etcd) }, what);
  };
  await rel('/v3/kv/range', (s) => ({ key: b64('gw-compact/k'), revision: String(base[s.name]) }), 'a compacted revision');
  await rel('/v3/kv/range', (s) => ({ key: b64('gw-compact/k'), revision: String(base[s.name] + 1n) }), 'the compaction revision');
  await rel('/v3/kv/range', (s) => ({ key: b64('gw-compact/k'), revision: String(base[s.name] + 1000n) }), 'a future revision');
  await rel('/v3/kv/compaction', (s) => ({ revision: String(base[s.name]) }), 'compacting again below');
  await rel('/v3/kv/compaction', (s) => ({ revision: String(base[s.name] + 1000n) }), 'compacting a future revision');
  // A watch from a compacted revision: created, then canceled with the compact revision.
  const watched: Record<string, unknown> = {};
  for (const side of [etcd, proxy]) {
    const lines = await rawWatch(side, JSON.stringify({ create_request: { key: b64('gw-compact/k'), start_revision: String(base[side.name]) } }), 2);
    watched[side.name] = lines.map((l) => normalise(JSON.parse(l), base[side.name]));
  }
  assert.equal((watched.etcd as unknown[]).length, 2);
  assert.deepEqual(watched.proxy, watched.etcd);
});

test('errors: empty key, bad JSON and values, unknown paths and methods, too large', { timeout: TEST_TIMEOUT }, async () => {
  const base = await bases('gw-err');
  await same(base, '/v3/kv/put', { key: '' }, 'empty key');
  await same(base, '/v3/kv/put', {}, 'no key');
  await same(base, '/v3/kv/range', '', 'empty body');
  await same(base, '/v3/kv/put', '{bad', 'bad JSON');
  await same(base, '/v3/kv/put', `{"key":"${b64('k')}"`, 'truncated JSON');
  await same(base, '/v3/kv/put', '{"key": tru}', 'bad literal');
  await same(base, '/v3/kv/range', '[]', 'an array');
  await same(base, '/v3/kv/range', { key: '!!!' }, 'bad base64');
  await same(base, '/v3/kv/put', { key: 'YWJj', value: 'eA' }, 'base64 without padding');
  await same(base, '/v3/kv/put', { key: 5 }, 'a number for bytes');
  await same(base, '/v3/kv/put', { key: b64('k'), prev_kv: 'true' }, 'a string for a bool');
  await same(base, '/v3/kv/put', { key: b64('k'), lease: 'x1' }, 'a bad int64');
  await same(base, '/v3/kv/range', { key: b64('k'), limit: 1.5 }, 'a fraction for an int64');
  await same(base, '/v3/kv/range', { key: b64('k'), sort_order: 'FOO' }, 'an unknown enum name');
  await same(base, '/v3/kv/range', { key: b64('k'), unknown_field: 1 }, 'unknown fields are ignored');
  await same(base, '/v3/kv/nope', {}, 'an unknown path');
  await same(base, '/v3alpha/kv/range', {}, 'a path outside the gateway');
  await same(base, '/v3/kv/range', null, 'GET on a POST path', 'GET');
  await same(base, '/v3/watch', '{bad', 'a bad first watch request');
  await same(base, '/v3/watch', { create_request: { key: '!!' } }, 'a bad value in the first watch request');
  await same(base, '/v3/lease/revoke', { ID: '31337' }, 'revoking an unknown lease');
  await same(base, '/v3/kv/txn', { success: Array.from({ length: 200 }, (_, i) => ({ request_put: { key: b64(`gw-err/${i}`) } })) }, 'too many txn ops');
  await same(base, '/v3/kv/put', { key: b64('gw-err/big'), value: b64(Buffer.alloc(1_600_000)) }, 'a request over --max-request-bytes');
  await same(base, '/v3/kv/put', { key: b64('gw-err/big'), value: b64(Buffer.alloc(3_000_000)) }, 'a message over the gRPC receive limit');
});

test('gateway requests are counted by method and HTTP status', { timeout: TEST_TIMEOUT }, async () => {
  const before = await metricTotal('etcd_metaproxy_gateway_requests_total', { method: 'KV.Put', status: '400' });
  const a = await post(proxy, '/v3/kv/put', { key: '' });
  assert.equal(a.status, 400);
  await waitFor(async () => (await metricTotal('etcd_metaproxy_gateway_requests_total', { method: 'KV.Put', status: '400' })) === before + 1, 5_000, 'the counter');
  // The gRPC method's own metrics count it too: the request went through the KV service.
  assert.ok((await metricTotal('etcd_metaproxy_grpc_requests_total', { method: 'Put', code: 'INVALID_ARGUMENT' })) >= 1);
});

test('maintenance status, member list, /version, /health', { timeout: TEST_TIMEOUT }, async () => {
  const keys = async (side: Side, path: string, body: object | null = {}, method = 'POST') => {
    const a = await post(side, path, body, method);
    assert.equal(a.status, 200, `${side.name} ${path}: ${a.body}`);
    return JSON.parse(a.body) as Record<string, unknown>;
  };
  const [es, ps] = [await keys(etcd, '/v3/maintenance/status'), await keys(proxy, '/v3/maintenance/status')];
  assert.deepEqual(Object.keys(ps), Object.keys(es), 'status fields');
  assert.equal(ps.version, '3.5.17');
  assert.match(String(ps.dbSize), /^[0-9]+$/);
  const [em, pm] = [await keys(etcd, '/v3/cluster/member/list'), await keys(proxy, '/v3/cluster/member/list')];
  const members = (j: Record<string, unknown>) => (j.members as Array<Record<string, unknown>>).map((m) => Object.keys(m).filter((k) => k !== 'peerURLs'));
  assert.deepEqual(members(pm), members(em), 'member fields');
  const urls = (pm.members as Array<{ clientURLs: string[] }>).flatMap((m) => m.clientURLs);
  assert.ok(urls.length > 0);
  const [ev, pv] = [await keys(etcd, '/version', null, 'GET'), await keys(proxy, '/version', null, 'GET')];
  assert.deepEqual(Object.keys(pv), Object.keys(ev));
  assert.deepEqual(pv, { etcdserver: '3.5.17', etcdcluster: '3.5.0' });
  const base = await bases('gw-version');
  await same(base, '/version', {}, 'POST /version', 'POST');
  const [eh, ph] = [await keys(etcd, '/health', null, 'GET'), await keys(proxy, '/health', null, 'GET')];
  assert.equal(ph.health, eh.health);
  assert.equal(ph.health, 'true');
});

test('auth paths answer with an etcd error body (or the Auth service where the proxy has one)', { timeout: TEST_TIMEOUT }, async () => {
  const a = await post(proxy, '/v3/auth/authenticate', { name: 'root', password: 'x' });
  const j = JSON.parse(a.body) as { error: string; message: string; code: number };
  assert.equal(typeof j.code, 'number');
  assert.equal(j.error, j.message);
  const expected: Record<number, number> = { 9: 412, 12: 501, 16: 401, 3: 400 };
  assert.equal(a.status, expected[j.code], a.body);
});
