/**
 * Watch through real clients and under client misbehaviour:
 * - etcdctl watch (--prefix, --prev-kv, --rev) prints the same through the proxy as from a
 *   plain etcd;
 * - the etcd3 Node client's multiplexed watchers get puts and deletes with prev_kv;
 * - a client that stops reading: its watcher is resynced from history (nothing lost, nothing
 *   twice, in order) while another stream keeps getting events at once;
 * - periodic progress notifications (progress_notify) report a revision at which every event
 *   was sent; kube-apiserver's require-leader metadata is accepted.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { RawClient, etcd3Client, hostPort, metaPerFile, metricTotal, sleep, waitFor } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';
import { WatchStream, type WatchResponse } from './watch-client.js';

let proxyAddr: string;
let oracleAddr: string;
let proxy: RawClient;
let oracle: RawClient;

const suite = metaPerFile({
  tag: 'watchclients',
  shards: 3,
  oracleName: 'watchclients-oracle',
  configure: (cfg) => {
    cfg.watch = { ...cfg.watch, maxPendingEvents: 64, progressNotifyIntervalMs: 400 };
  },
});
before(async () => {
  const { meta, clients, oracle: o } = await suite.started();
  proxyAddr = meta.addresses[0]!;
  oracleAddr = o!.address;
  proxy = clients[0]!;
  oracle = o!.client;
}, { timeout: 120_000 });

/** Runs `etcdctl watch ...` until stop() and returns what it printed (`printed`: so far). */
function etcdctlWatch(endpoint: string, args: string[]): { printed: () => string; stop: () => Promise<string> } {
  const child = spawn('etcdctl', ['--endpoints', hostPort(endpoint), 'watch', ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += `[stderr] ${d}`));
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  return {
    printed: () => out,
    stop: async () => {
      child.kill('SIGTERM');
      await closed;
      return out;
    },
  };
}

/** Live watchers: the proxy's gauge, or the plain etcd's own (its /metrics on the client port). */
async function liveWatchers(addr: string): Promise<number> {
  if (addr === proxyAddr) return metricTotal('etcd_metaproxy_watchers');
  const text = await (await fetch(`http://${hostPort(addr)}/metrics`)).text();
  return Number(/^etcd_debugging_mvcc_watcher_total (\S+)$/m.exec(text)?.[1] ?? 'NaN');
}

test('etcdctl watch prints the same through the proxy as from a plain etcd', { timeout: 60_000 }, async () => {
  const outputs: string[] = [];
  for (const [addr, client] of [[oracleAddr, oracle], [proxyAddr, proxy]] as const) {
    const put = (k: string, v: string) => client.callOrThrow('KV', 'Put', { key: b(k), value: b(v) });
    const first = await put('wc/seed', 's0');
    const watching = await liveWatchers(addr);
    const live = etcdctlWatch(addr, ['--prefix', '--prev-kv', 'wc/']);
    const single = etcdctlWatch(addr, ['wc/a']);
    // etcdctl prints nothing once its watches are set up: the server's watcher count tells.
    await waitFor(async () => (await liveWatchers(addr)) >= watching + 2, 20_000, "etcdctl's two watches to be live");
    await put('wc/a', '1');
    await put('wc/b', '2');
    await put('wc/a', '3');
    await client.callOrThrow('KV', 'DeleteRange', { key: b('wc/b') });
    await put('other', 'x');
    const history = etcdctlWatch(addr, ['--prefix', `--rev=${first.header.revision}`, 'wc/']);
    // A last event marks the end: its value is the last line etcdctl prints for it.
    await put('wc/z', 'end');
    await waitFor(
      () => live.printed().includes('wc/z\nend\n') && history.printed().includes('wc/z\nend\n') && single.printed().includes('wc/a\n3\n'),
      20_000,
      'etcdctl to print every event',
    );
    outputs.push([await live.stop(), await single.stop(), await history.stop()].join('\n---\n'));
  }
  assert.ok(outputs[0]!.includes('PUT\nwc/a\n3'), `oracle output: ${outputs[0]}`);
  assert.equal(outputs[1], outputs[0]);
});

test('a watch created without a start revision never sends a write acknowledged before it, like a plain etcd', { timeout: 60_000 }, async () => {
  // Through the proxy the merged stream may release a write after its put was acknowledged:
  // the watch still starts after it (the coordinator clock), as etcd starts after its revision.
  for (const [name, client] of [['oracle', oracle], ['proxy', proxy]] as const) {
    const stream = new WatchStream(client);
    try {
      for (let i = 0; i < 40; i++) {
        const key = `ws/${i}`;
        const before = await client.callOrThrow('KV', 'Put', { key: b(key), value: b('before') });
        stream.create({ key, watchId: i + 1 });
        await stream.until(() => stream.responses.some((r) => r.watch_id === String(i + 1) && r.created), 10_000, `watch ${i + 1} created`);
        const header = stream.responses.find((r) => r.watch_id === String(i + 1) && r.created).header;
        assert.ok(BigInt(header.revision) >= BigInt(before.header.revision), `${name}: created at ${header.revision}, below the put's ${before.header.revision}`);
        await client.callOrThrow('KV', 'Put', { key: b(key), value: b('after') });
        await stream.until(() => stream.events(i + 1).length > 0, 10_000, `an event on ${key}`);
        assert.deepEqual(stream.events(i + 1).map((e: WatchResponse) => e.kv.value.toString()), ['after'], `${name}: ${key}`);
      }
    } finally {
      stream.close();
    }
  }
});

test('etcd3 client: multiplexed watchers get puts and deletes with prev_kv', { timeout: 60_000 }, async () => {
  const client = etcd3Client(proxyAddr);
  try {
    const seen: string[] = [];
    const w1 = await client.watch().prefix('e3/').withPreviousKV().create();
    const w2 = await client.watch().key('e3/k').create();
    w1.on('put', (kv, prev) => seen.push(`w1 put ${kv.key.toString()}=${kv.value.toString()} prev=${prev?.value.toString() ?? '-'}`));
    w1.on('delete', (kv, prev) => seen.push(`w1 delete ${kv.key.toString()} prev=${prev?.value.toString() ?? '-'}`));
    w2.on('put', (kv) => seen.push(`w2 put ${kv.key.toString()}=${kv.value.toString()}`));
    await client.put('e3/k').value('1');
    await client.put('e3/k').value('2');
    await client.put('e3/j').value('x');
    await client.delete().key('e3/k');
    const want = ['w1 put e3/k=1 prev=-', 'w1 put e3/k=2 prev=1', 'w1 put e3/j=x prev=-', 'w1 delete e3/k prev=2', 'w2 put e3/k=1', 'w2 put e3/k=2'];
    const deadline = Date.now() + 10_000;
    while (seen.length < want.length && Date.now() < deadline) await sleep(50);
    assert.deepEqual([...seen].sort(), [...want].sort());
    await w1.cancel();
    await w2.cancel();
  } finally {
    client.close();
  }
});

test('a client that stops reading is resynced from history; other streams are not stalled', { timeout: 120_000 }, async () => {
  const slow = new WatchStream(proxy);
  const fast = new WatchStream(proxy);
  slow.create({ key: 'slow/', rangeEnd: prefixEnd('slow/'), watchId: 1 });
  fast.create({ key: 'slow/', rangeEnd: prefixEnd('slow/'), watchId: 1 });
  await slow.nth(1);
  await fast.nth(1);
  slow.pause();
  const resyncsBefore = await metricTotal('etcd_metaproxy_watch_slow_resyncs_total');
  const N = 1500;
  const value = Buffer.alloc(4096, 'v');
  const revs: string[] = [];
  for (let i = 0; i < N; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: 50 }, (_, j) => proxy.callOrThrow('KV', 'Put', { key: b(`slow/k${(i + j) % 97}`), value })),
    );
    revs.push(...batch.map((r: WatchResponse) => r.header.revision as string));
  }
  await fast.until(() => fast.events(1).length >= N, 30_000, 'the reading stream gets every event while the other is paused');
  assert.ok((await metricTotal('etcd_metaproxy_watch_slow_resyncs_total')) > resyncsBefore, 'the slow watcher was resynced');
  slow.resume();
  await slow.until(() => slow.events(1).length >= N, 60_000, 'the slow stream catches up');
  await sleep(300);
  const got = slow.events(1).map((e: WatchResponse) => e.kv.mod_revision as string);
  assert.equal(got.length, N, 'no event twice');
  assert.deepEqual(got, [...revs].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : 1)), 'every event, in revision order');
  slow.close();
  fast.close();
});

test('progress notifications and require-leader metadata', { timeout: 60_000 }, async () => {
  const md = new grpc.Metadata();
  md.set('hasleader', 'true');
  const s = new WatchStream(proxy, md);
  s.create({ key: 'pn/', rangeEnd: prefixEnd('pn/'), progressNotify: true, watchId: 5 });
  await s.nth(1);
  const w = await proxy.callOrThrow('KV', 'Put', { key: b('pn/a'), value: b('1') });
  await s.until(() => s.events(5).length === 1, 10_000, 'the event');
  const other = await proxy.callOrThrow('KV', 'Put', { key: b('elsewhere'), value: b('1') });
  await s.until(
    () => s.responses.some((r: WatchResponse) => r.watch_id === '5' && !r.events.length && !r.created && BigInt(r.header.revision) >= BigInt(other.header.revision)),
    10_000,
    'a progress notification at or above the last write',
  );
  assert.ok(BigInt(w.header.revision) < BigInt(other.header.revision));
  s.close();
});

