/**
 * Previous values from the read cache (cache/prev-fill.ts): once the cache is loaded, the
 * proxy's member watches no longer ask the members for prev_kv, and every event's prev_kv is
 * filled in from the cache when it is released. Checked two ways, with real etcds:
 * - differential: the same sequential writes on a plain etcd and on the proxy give watchers
 *   with prev_kv the same events (types, keys, values, versions, leases; revisions by rank);
 * - chains: concurrent writers on a few hot keys (so that several writes to one key are
 *   released in one batch), and each event's prev_kv is exactly the event before it on that key.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, metaPerFile, waitFor } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';
import { WatchStream, type WatchResponse } from './watch-client.js';
import { memberWatchPrevKv } from '../src/metrics/registry.js';

let proxy: RawClient;
let oracle: RawClient;

const suite = metaPerFile({ tag: 'prevcache', shards: 3, routingPrefixSegments: 2, oracleName: 'prevcache-oracle' });

async function prevKvGauge(): Promise<number[]> {
  return (await memberWatchPrevKv.get()).values.map((v) => v.value);
}

before(async () => {
  const { clients, oracle: o, meta } = await suite.started();
  proxy = clients[0]!;
  oracle = o!.client;
  // The cache loads, then the member watches are reopened without prev_kv.
  await waitFor(async () => meta.proxies[0]!.cacheNotReady() === null, 30_000, 'read cache loaded');
  await waitFor(async () => {
    const g = await prevKvGauge();
    return g.length === 3 && g.every((v) => v === 0);
  }, 30_000, 'member watches without prev_kv');
}, { timeout: 120_000 });

interface Kv {
  key: string;
  value: string;
  version: string;
  lease: string;
  create: string;
  mod: string;
}

function kv(k: WatchResponse | null, rank: (rev: string) => string): Kv | null {
  if (!k) return null;
  return { key: k.key.toString(), value: k.value.toString(), version: k.version, lease: k.lease === '0' ? '0' : 'L', create: rank(k.create_revision), mod: rank(k.mod_revision) };
}

async function script(c: RawClient, lease: string): Promise<string[]> {
  const revs: string[] = [];
  const w = async (method: string, req: unknown) => revs.push((await c.callOrThrow('KV', method, req)).header.revision);
  await w('Put', { key: b('pc/a'), value: b('1') });
  await w('Put', { key: b('pc/a'), value: b('2') });
  await w('Put', { key: b('pc/b'), value: b('x'), lease });
  await w('Put', { key: b('pc/b'), value: b('y'), ignore_lease: true });
  await w('DeleteRange', { key: b('pc/a') });
  await w('Put', { key: b('pc/a'), value: b('3') });
  await w('Put', { key: b('pc/t/2'), value: b('t2') });
  // One txn, two keys of one shard: two events at one revision.
  await w('Txn', { compare: [], success: [{ request_put: { key: b('pc/t/1'), value: b('c1') } }, { request_delete_range: { key: b('pc/t/2') } }], failure: [] });
  for (let i = 0; i < 5; i++) await w('Put', { key: b('pc/d'), value: b(`d${i}`) });
  await w('Put', { key: b('pc/t/3'), value: b('t3') });
  // A range on one shard (a prefix over shards is deleted shard by shard, a documented difference).
  await w('DeleteRange', { key: b('pc/t/'), range_end: prefixEnd('pc/t/') });
  for (const k of ['pc/a', 'pc/b', 'pc/d']) await w('DeleteRange', { key: b(k) });
  await w('Put', { key: b('pc/t/1'), value: b('c2') });
  return revs;
}

test('differential: prev_kv from the cache equals etcd prev_kv', { timeout: 120_000 }, async () => {
  const sides = await Promise.all(
    [proxy, oracle].map(async (c) => {
      const lease = (await c.callOrThrow('Lease', 'LeaseGrant', { TTL: '600', ID: '0' })).ID as string;
      const start = BigInt((await c.callOrThrow('KV', 'Range', { key: b('pc/') })).header.revision) + 1n;
      const ws = new WatchStream(c);
      ws.create({ key: 'pc/', rangeEnd: prefixEnd('pc/'), prevKv: true, startRevision: start });
      await ws.nth(1);
      const revs = await script(c, lease);
      // Revisions compared by rank among this side's own write revisions (and the lease's key).
      const order = [...new Set(revs)];
      const rank = (r: string) => (r === '0' ? '0' : String(order.indexOf(r)));
      const total = 21;
      await ws.until(() => ws.events(0).length >= total, 20_000, `${total} events`);
      ws.close();
      return ws.events(0).map((e: WatchResponse) => ({ type: e.type, kv: kv(e.kv, rank), prev: kv(e.prev_kv, rank) }));
    }),
  );
  assert.deepEqual(await prevKvGauge(), [0, 0, 0], 'the member watches ran without prev_kv');
  assert.deepEqual(sides[0], sides[1]);
});

test('chains: each event prev_kv is the event before it on that key, under concurrent writers', { timeout: 120_000 }, async () => {
  const KEYS = ['pch/k0', 'pch/k1', 'pch/k2'];
  const start = BigInt((await proxy.callOrThrow('KV', 'Range', { key: b('pch/') })).header.revision) + 1n;
  const ws = new WatchStream(proxy);
  ws.create({ key: 'pch/', rangeEnd: prefixEnd('pch/'), prevKv: true, startRevision: start });
  await ws.nth(1);
  let last = 0n;
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 30; i++) {
        const key = b(KEYS[(w + i) % KEYS.length]!);
        const res = i % 7 === 6 ? await proxy.callOrThrow('KV', 'DeleteRange', { key }) : await proxy.callOrThrow('KV', 'Put', { key, value: b(`${w}-${i}`) });
        const rev = BigInt(res.header.revision);
        if (rev > last) last = rev;
      }
    }),
  );
  await ws.until(() => ws.events(0).some((e: WatchResponse) => BigInt(e.kv.mod_revision) >= last), 20_000, 'every write watched');
  ws.close();
  const before = new Map<string, { value: string; mod: string } | null>();
  let batched = 0;
  for (const r of ws.responses) {
    const seen = new Set<string>();
    for (const e of r.events as WatchResponse[]) {
      const key = e.kv.key.toString();
      if (seen.has(key)) batched++;
      seen.add(key);
      const expected = before.has(key) ? before.get(key) : null;
      const prev = e.prev_kv ? { value: e.prev_kv.value.toString(), mod: e.prev_kv.mod_revision } : null;
      assert.deepEqual(prev, expected ?? null, `prev_kv of ${key} at ${e.kv.mod_revision}`);
      before.set(key, e.type === 1 ? null : { value: e.kv.value.toString(), mod: e.kv.mod_revision });
    }
  }
  assert.deepEqual(await prevKvGauge(), [0, 0, 0], 'the member watches ran without prev_kv');
  // Not asserted (it depends on timing), printed: how often one response held two writes to one key.
  console.log(`chains: ${ws.events(0).length} events, ${batched} with an earlier event on the same key in the same response`);
});
