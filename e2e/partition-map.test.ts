/**
 * Two proxies that route differently would corrupt data: a proxy whose configuration disagrees
 * with the partition map recorded in the coordinator, or whose shard endpoints hold another
 * shard's data, refuses to start and says why — in-process and through `serve`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import type { ProxyConfig } from '../src/config/types.js';
import { startLocalMetaCluster, type LocalMetaCluster } from '../src/local/meta-cluster.js';
import { freePort } from '../src/local/ports.js';
import { startProxy } from '../src/server/proxy.js';
import { Cleanup, RawClient, proxyConfig, tempDir } from './harness.js';
import { b } from './grpc-raw.js';

const cleanup = new Cleanup();
let cluster: LocalMetaCluster;
let dir: string;

async function config(change: (c: ProxyConfig) => void = () => undefined): Promise<ProxyConfig> {
  const cfg = proxyConfig(cluster, `127.0.0.1:${await freePort()}`, { log: { level: 'silent' } });
  change(cfg);
  return cfg;
}

before(async () => {
  dir = tempDir(cleanup, 'pmap');
  cluster = await startLocalMetaCluster({ dataDir: path.join(dir, 'cluster'), shards: 2, unsafeNoFsync: true });
  cleanup.add('stop clusters', () => cluster.stop());
  const first = await startProxy(await config(), { logger: pino({ level: 'silent' }) });
  cleanup.add('close first proxy', () => first.close());
  const c = new RawClient(first.address);
  const r = await c.kv('Put', { key: b('pm/k'), value: b('v') });
  c.close();
  assert.ok(r.ok);
}, { timeout: 120_000 });

after(() => cleanup.run(), { timeout: 120_000 });

const silent = { logger: pino({ level: 'silent' }) };

test('a different shard list, partition count or routing rule is refused with the reason', { timeout: 60_000 }, async () => {
  await assert.rejects(startProxy(await config((c) => (c.shards = c.shards.slice(0, 1))), silent), /partition map.*shards: recorded \[s1, s2\], configured \[s1\]/s);
  await assert.rejects(startProxy(await config((c) => (c.partitions = 128)), silent), /partitions: recorded 64, configured 128/);
  await assert.rejects(startProxy(await config((c) => (c.routingPrefixSegments = 2)), silent), /routingPrefixSegments: recorded 0, configured 2/);
});

test('shard endpoints swapped between names are refused (each member records its shard)', { timeout: 60_000 }, async () => {
  const swapped = await config((c) => {
    const [a, bb] = c.shards;
    c.shards = [{ name: a!.name, endpoints: bb!.endpoints }, { name: bb!.name, endpoints: a!.endpoints }];
  });
  await assert.rejects(startProxy(swapped, silent), /shard (s1: its endpoints hold the data of shard "s2"|s2: its endpoints hold the data of shard "s1")/);
});

test('serve exits 1 and prints why', { timeout: 60_000 }, async () => {
  const cfg = await config((c) => (c.partitions = 32));
  const file = path.join(dir, 'bad.json');
  fs.writeFileSync(file, JSON.stringify({ ...cfg, metrics: { listen: '' }, log: { level: 'info' } }));
  const main = path.resolve(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
  const res = spawnSync(process.execPath, ['--import', 'tsx', main, 'serve', '--config', file], { encoding: 'utf8', timeout: 50_000 });
  assert.equal(res.status, 1, res.stderr);
  assert.match(res.stderr, /partitions: recorded 64, configured 32/);
  assert.doesNotMatch(res.stdout, /ready/);
});
