/**
 * The merged stream loses member history it needs (a member compacted past where its watch
 * resumes): the stream restarts at a new consistent point and the read cache loads again. The
 * answers before, during and after must be the acknowledged state, from the cache once it is
 * back.
 *
 * To get there: a member is killed until the proxy's member watch has backed off (its retries
 * are counted by etcd_metaproxy_upstream_watch_restarts_total), then restarted right after a
 * retry; before the watch reconnects, keys on that shard are written and the member is
 * compacted at its own head (directly, behind the proxy's back), so the watch resumes below the
 * compaction.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, metaPerFile, metricTotal, waitFor, type Meta } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';

let meta: Meta;
let client: RawClient;
const PREFIX = 'reset/';
const expected = new Map<string, string>();

const suite = metaPerFile({ tag: 'cache-reset', shards: 3 });
before(async () => {
  ({ meta, clients: [client] } = await suite.started());
}, { timeout: 120_000 });

async function put(key: string, value: string): Promise<void> {
  const r = await client.kv('Put', { key: b(key), value: b(value) });
  assert.ok(r.ok, r.ok ? '' : `put ${key}: ${r.details}`);
  expected.set(key, value);
}

async function state(serializable: boolean): Promise<Map<string, string>> {
  const r = await client.kv('Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX), serializable });
  assert.ok(r.ok, r.ok ? '' : r.details);
  return new Map((r.res.kvs as Array<{ key: Buffer; value: Buffer }>).map((kv) => [kv.key.toString(), kv.value.toString()]));
}

test('a member compacted past the merged stream: the stream restarts, the cache reloads, reads stay exact', { timeout: 120_000 }, async () => {
  for (let i = 0; i < 60; i++) await put(`${PREFIX}k${i}`, `v${i}`);
  // Keys that live on shard 0, to write while the proxy's watch of that member is away.
  const onShard0: string[] = [];
  for (let i = 0; i < 60 && onShard0.length < 5; i++) if ((await meta.shardOf(`${PREFIX}k${i}`)) === 0) onShard0.push(`${PREFIX}k${i}`);
  assert.ok(onShard0.length > 0, 'no key on shard 0');
  assert.deepEqual(await state(false), expected);

  const resetCount = () => metricTotal('etcd_metaproxy_watch_stream_resets_total');
  const resets = await resetCount();
  const member = meta.cluster.shards[0]!;
  const restarts = () => metricTotal('etcd_metaproxy_upstream_watch_restarts_total');
  // The compaction must land before the proxy's member watch reconnects, which a loaded machine
  // can miss (the watch retries every 2 s at most): then nothing needs a reset, reads stay
  // exact, and the test tries again.
  for (let attempt = 1; ; attempt++) {
    const restartsBefore = await restarts();
    await member.kill();
    // The proxy's watch of the dead member retries with a doubling delay: after a few retries it
    // waits long. The member comes back right after a retry, so the writes and the compaction
    // below land while the watch is still away.
    await waitFor(async () => (await restarts()) >= restartsBefore + 5, 30_000, 'the member watch to back off');
    const seen = await restarts();
    await waitFor(async () => (await restarts()) > seen, 30_000, 'the next member watch retry');
    await member.restart();
    await waitFor(async () => (await client.kv('Put', { key: b(onShard0[0]!), value: b(`during${attempt}`) })).ok, 20_000, 'a write to the restarted member');
    expected.set(onShard0[0]!, `during${attempt}`);
    for (const k of onShard0.slice(1)) await put(k, `during${attempt}`);
    const head = await meta.memberClient(0).kv('Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX), count_only: true });
    assert.ok(head.ok);
    const compact = await meta.memberClient(0).kv('Compact', { revision: head.res.header.revision, physical: true });
    assert.ok(compact.ok, compact.ok ? '' : compact.details);
    try {
      await waitFor(async () => (await resetCount()) > resets, 10_000, 'the merged stream to restart');
      break;
    } catch (err) {
      if (attempt >= 4) throw err;
      assert.deepEqual(await state(false), expected, `reads exact after attempt ${attempt}`);
    }
  }
  // Reads are exact throughout (from the members while the cache loads).
  assert.deepEqual(await state(false), expected);
  await waitFor(() => meta.proxies[0]!.cacheNotReady() === null, 30_000, 'the cache to load again');
  const hits = await metricTotal('etcd_metaproxy_cache_hits_total');
  for (let i = 0; i < 10; i++) await put(`${PREFIX}after${i}`, `a${i}`);
  assert.deepEqual(await state(false), expected, 'linearizable read after the reload');
  assert.deepEqual(await state(true), expected, 'serializable read after the reload');
  assert.ok((await metricTotal('etcd_metaproxy_cache_hits_total')) - hits >= 2, 'reads after the reload come from the cache');
});
