/**
 * Watch, differential: the same watchers and the same write script against a plain etcd (the
 * oracle) and the proxy; every watcher's stream must match. Revisions are compared by order:
 * each side's write revisions (header revisions of its writes, in script order) are mapped to
 * their rank, and every revision in a watch response must be one of them.
 *
 * Covered: single key, prefix, range, from-key and all-keys watchers; prev_kv; NOPUT/NODELETE;
 * client-chosen ids and etcd's errors for a duplicate id and an empty range; fragment;
 * start_revision in the past (history, also from revision 1) and in the future; a compacted
 * start revision; cancel; RequestProgress (watch_id -1, only after every event before it);
 * txns writing several keys at one revision (events together, in op order); deletes of
 * missing keys (no event). The proxy routes by the first two path segments so that one txn may
 * write several keys ("wd/g1/...").
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, metaPerFile } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';
import { WatchStream, type CreateOptions, type WatchResponse } from './watch-client.js';

let proxy: RawClient;
let oracle: RawClient;

const suite = metaPerFile({ tag: 'watchdiff', shards: 3, routingPrefixSegments: 2, oracleName: 'watch-oracle' });
before(async () => {
  const { clients, oracle: o } = await suite.started();
  proxy = clients[0]!;
  oracle = o!.client;
}, { timeout: 120_000 });

const NOPUT = 0;
const NODELETE = 1;

/** Watchers created before any write, by label. */
const LIVE: Array<[string, CreateOptions]> = [
  ['single', { key: 'wd/a', prevKv: true }],
  ['prefix', { key: 'wd/', rangeEnd: prefixEnd('wd/'), prevKv: true }],
  ['noput', { key: 'wd/', rangeEnd: prefixEnd('wd/'), filters: [NOPUT] }],
  ['nodelete', { key: 'wd/', rangeEnd: prefixEnd('wd/'), filters: [NODELETE], prevKv: true }],
  ['fromkey', { key: 'wd/m', rangeEnd: Buffer.from([0]) }],
  ['all', { key: '', rangeEnd: Buffer.from([0]), prevKv: true }],
  ['range', { key: 'wd/b', rangeEnd: 'wd/d' }],
  ['chosen-id', { key: 'wd/g1/', rangeEnd: prefixEnd('wd/g1/'), prevKv: true, watchId: 100, fragment: true }],
];

interface Side {
  client: RawClient;
  writes: bigint[];
}

async function write(side: Side, method: string, req: unknown): Promise<WatchResponse> {
  const res = await side.client.callOrThrow('KV', method, req);
  const rev = BigInt(res.header.revision);
  const last = side.writes.length ? side.writes[side.writes.length - 1] : 0n;
  if (rev > last) side.writes.push(rev);
  return res;
}

/** The write script; the same on both sides. */
async function script(s: Side): Promise<void> {
  const put = (k: string, v: string) => write(s, 'Put', { key: b(k), value: b(v) });
  const del = (k: string, end?: string | Buffer) => write(s, 'DeleteRange', { key: b(k), range_end: end === undefined ? Buffer.alloc(0) : b(end) });
  await put('wd/a', 'a1');
  await put('wd/b', 'b1');
  await put('wd/c', 'c1');
  await put('wd/a', 'a2');
  await put('other', 'o1');
  await put('wd/m1', 'm1');
  await put('wd/z', 'z1');
  await del('wd/b');
  await del('wd/missing');
  await put('wd/b', 'b2');
  await write(s, 'Txn', {
    compare: [],
    success: [
      { request_put: { key: b('wd/g1/x'), value: b('x1') } },
      { request_put: { key: b('wd/g1/y'), value: b('y1') } },
      { request_put: { key: b('wd/g1/a'), value: b('ga1') } },
    ],
    failure: [],
  });
  await write(s, 'Txn', {
    compare: [],
    success: [
      { request_delete_range: { key: b('wd/g1/x') } },
      { request_put: { key: b('wd/g1/y'), value: b('y2') } },
      { request_put: { key: b('wd/g1/big'), value: Buffer.alloc(2000, 7) } },
    ],
    failure: [],
  });
  await del('wd/g1/', prefixEnd('wd/g1/').toString('latin1'));
  await put('wd/a', 'a3');
  await del('wd/a');
  await put('wd/a', 'a4');
  // Large revisions: with prev_kv the second is ~3 MB of events, which a fragmenting watcher
  // receives in pieces below the request size limit.
  const big = (tag: number) => ({
    compare: [],
    success: ['p', 'q', 'r'].map((k) => ({ request_put: { key: b(`wd/g1/${k}`), value: Buffer.alloc(500_000, tag) } })),
    failure: [],
  });
  await write(s, 'Txn', big(1));
  await write(s, 'Txn', big(2));
}

/** A response with revisions replaced by ranks in the side's write list. */
function normalize(side: Side, r: WatchResponse): unknown {
  const rank = (rev: string) => {
    if (rev === '0') return 0;
    const i = side.writes.indexOf(BigInt(rev));
    return i >= 0 ? `w${i + 1}` : `unknown(${rev})`;
  };
  const kv = (x: WatchResponse) =>
    x && {
      key: x.key.toString('latin1'),
      value: x.value.length > 64 ? `${x.value.length} bytes` : x.value.toString('latin1'),
      create: rank(x.create_revision),
      mod: rank(x.mod_revision),
      version: x.version,
      lease: x.lease,
    };
  return {
    watch_id: r.watch_id,
    created: r.created,
    canceled: r.canceled,
    compact_revision: rank(r.compact_revision),
    cancel_reason: r.cancel_reason,
    events: r.events.map((e: WatchResponse) => ({ type: e.type, kv: kv(e.kv), prev_kv: kv(e.prev_kv) })),
  };
}

/** Per watch id: its control responses and its events (flattened; grouping may differ). */
function byWatcher(side: Side, responses: WatchResponse[]): Record<string, unknown> {
  const out: Record<string, { control: unknown[]; events: unknown[] }> = {};
  for (const r of responses) {
    const n = normalize(side, r) as { watch_id: string; events: unknown[] };
    const slot = (out[n.watch_id] ??= { control: [], events: [] });
    if (n.events.length) slot.events.push(...n.events);
    else slot.control.push(n);
  }
  return out;
}

/** Checks that hold on the proxy's own numbers: headers never go back; a revision is never split. */
function checkStreamShape(responses: WatchResponse[]): void {
  let header = 0n;
  const seen = new Map<string, Set<string>>();
  /** Watch ids whose last response was a fragment: the next one continues its revision. */
  const continuing = new Set<string>();
  for (const r of responses) {
    const h = BigInt(r.header.revision);
    if (h !== 0n) {
      assert.ok(h >= header, `header revision went back from ${header} to ${h}`);
      header = h;
    }
    const revs = new Set<string>(r.events.map((e: WatchResponse) => e.kv.mod_revision));
    const mine = (seen.get(r.watch_id) ?? seen.set(r.watch_id, new Set()).get(r.watch_id))!;
    const last = [...mine].map(BigInt).reduce((m, x) => (x > m ? x : m), 0n);
    for (const rev of revs) {
      assert.ok(!mine.has(rev) || continuing.has(r.watch_id), `watch ${r.watch_id}: revision ${rev} split across responses`);
      assert.ok(BigInt(rev) >= last, `watch ${r.watch_id}: revision ${rev} after ${last}`);
      if (r.events.length) assert.ok(BigInt(rev) <= h, `event revision ${rev} above header ${h}`);
    }
    for (const rev of revs) mine.add(rev);
    if (r.fragment) continuing.add(r.watch_id);
    else if (r.events.length) continuing.delete(r.watch_id);
  }
}

async function run(client: RawClient): Promise<{ side: Side; live: WatchResponse[]; past: WatchResponse[]; compacted: WatchResponse[] }> {
  const side: Side = { client, writes: [] };
  const first = await client.callOrThrow('KV', 'Range', { key: b('wd/') });
  const start = BigInt(first.header.revision);
  const live = new WatchStream(client);
  for (const [, o] of LIVE) live.create(o);
  live.create({ key: 'wd/', rangeEnd: prefixEnd('wd/'), watchId: 100 }); // duplicate id
  live.create({ key: 'wd/z', rangeEnd: 'wd/a' }); // empty range
  live.create({ key: 'wd/', rangeEnd: prefixEnd('wd/'), startRevision: start + 1000n, watchId: 200 }); // future start
  await live.until(() => live.responses.length >= LIVE.length + 3, 10_000, 'created responses');
  await script(side);
  live.requestProgress();
  await live.until(() => live.responses.some((r) => r.watch_id === '-1' && !r.created), 20_000, 'progress response');
  const progress = live.responses.find((r) => r.watch_id === '-1' && !r.created);
  assert.equal(progress.header.revision, side.writes[side.writes.length - 1].toString(), 'progress reports the last write');
  live.cancel(0);
  live.cancel(12345); // unknown: no response
  await live.until(() => live.responses.some((r) => r.canceled && r.watch_id === '0'), 10_000, 'cancel');

  // Past start revisions: from the 4th write, from revision 1, and a single key from the 2nd.
  const past = new WatchStream(client);
  past.create({ key: 'wd/', rangeEnd: prefixEnd('wd/'), startRevision: side.writes[3], prevKv: true });
  past.create({ key: '', rangeEnd: Buffer.from([0]), startRevision: 1 });
  past.create({ key: 'wd/a', startRevision: side.writes[1], prevKv: true, filters: [NOPUT] });
  const total = (rs: WatchResponse[], id: string) => rs.filter((r) => r.watch_id === id).reduce((n, r) => n + r.events.length, 0);
  const liveAll = live.events(5).length;
  await past.until(() => total(past.responses, '1') >= liveAll, 20_000, 'history from revision 1');
  past.requestProgress();
  await past.until(() => past.responses.some((r) => r.watch_id === '-1'), 20_000, 'progress after history');

  // Compaction: a watch starting below the compaction revision is canceled with compact_revision.
  await client.callOrThrow('KV', 'Compact', { revision: String(side.writes[5]) });
  const compacted = new WatchStream(client);
  compacted.create({ key: 'wd/', rangeEnd: prefixEnd('wd/'), startRevision: side.writes[2] });
  compacted.create({ key: 'wd/', rangeEnd: prefixEnd('wd/'), startRevision: side.writes[5], watchId: 9 });
  await compacted.until(() => compacted.responses.some((r) => r.canceled), 10_000, 'compacted response');
  await compacted.until(() => compacted.events(9).length > 0, 10_000, 'watch at the compaction revision');
  await new Promise((r) => setTimeout(r, 300));
  for (const s of [live, past, compacted]) s.close();
  return { side, live: live.responses, past: past.responses, compacted: compacted.responses };
}

test('watch streams match a plain etcd', { timeout: 120_000 }, async () => {
  const want = await run(oracle);
  const got = await run(proxy);
  for (const part of ['live', 'past', 'compacted'] as const) {
    checkStreamShape(got[part]);
    const w = byWatcher(want.side, want[part]);
    const g = byWatcher(got.side, got[part]);
    assert.deepEqual(g, w, `${part}: watch streams differ`);
  }
  // A fragmenting watcher gets the large revision in pieces, as from etcd.
  const pieces = (rs: WatchResponse[]) =>
    rs.filter((r) => r.watch_id === '100' && r.events.some((e: WatchResponse) => e.kv.value.length === 500_000)).map((r) => [r.events.length, r.fragment]);
  assert.deepEqual(pieces(got.live), pieces(want.live));
  assert.ok(pieces(want.live).some(([, f]) => f), 'the oracle fragmented');
  // Events of one txn arrive together, in op order (a response may also carry other revisions).
  const txnResp = got.live.find((r) => r.watch_id === '100' && r.events.some((e: WatchResponse) => e.kv.key.toString() === 'wd/g1/x'));
  assert.ok(txnResp, 'the 3-op txn arrives');
  const txnRev = txnResp.events.find((e: WatchResponse) => e.kv.key.toString() === 'wd/g1/x').kv.mod_revision;
  const ofTxn = txnResp.events.filter((e: WatchResponse) => e.kv.mod_revision === txnRev);
  assert.deepEqual(ofTxn.map((e: WatchResponse) => e.kv.key.toString()), ['wd/g1/x', 'wd/g1/y', 'wd/g1/a'], 'the 3-op txn arrives in one response');
});
