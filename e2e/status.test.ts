/**
 * `etcd-metaproxy status` against a real meta-cluster (3 shards, coordinator, one proxy): the
 * JSON and table outputs agree with what the members hold (keys per shard, partitions, clock,
 * compaction, registered proxies), a shard that is down turns the exit status to 1, and
 * without any registered proxy the shard endpoints come from --config. --endpoints may name a
 * proxy instead of the coordinator (it names its clusters); a member or a plain etcd gets a hint.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Cleanup, RawClient, startMeta, startOracle, tempDir, type Meta } from './harness.js';
import { b } from './grpc-raw.js';
import type { StatusReport } from '../src/status/report.js';

const cleanup = new Cleanup();
const MAIN = path.resolve(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const KEYS = 40;
let meta: Meta;
let lastRev = 0n;
let compactedAt = 0n;

function status(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'status', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

before(async () => {
  meta = await startMeta({ tag: 'status', shards: 3, proxies: 1 });
  cleanup.add('stop meta', () => meta.stop());
  const c = new RawClient(meta.addresses[0]!);
  try {
    for (let i = 0; i < KEYS; i++) {
      const r = await c.callOrThrow<{ header: { revision: string } }>('KV', 'Put', { key: b(`status/k${i}`), value: b('v'.repeat(100)) });
      lastRev = BigInt(r.header.revision);
    }
    compactedAt = lastRev - 5n;
    await c.callOrThrow('KV', 'Compact', { revision: compactedAt.toString() });
  } finally {
    c.close();
  }
}, { timeout: 120_000 });
after(() => cleanup.run(), { timeout: 120_000 });

/** Keys per shard as the members hold them (counted directly in each member). */
async function memberCounts(): Promise<number[]> {
  const counts: number[] = [];
  for (let i = 0; i < meta.cluster.shards.length; i++) {
    const r = await meta.memberClient(i).kv('Range', { key: b('status/'), range_end: b('status0'), count_only: true });
    assert.ok(r.ok);
    counts.push(Number((r.res as { count: string }).count));
  }
  return counts;
}

test('status -w json: coordinator, shards and proxies as they are', { timeout: 60_000 }, async () => {
  const coordinator = meta.cluster.coordinator.clientUrl;
  const r = await status(['--endpoints', coordinator, '-w', 'json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const rep = JSON.parse(r.stdout) as StatusReport;

  assert.equal(rep.coordinator.health, 'healthy');
  assert.deepEqual(rep.coordinator.endpoints.map((e) => e.endpoint), [coordinator]);
  assert.ok(BigInt(rep.coordinator.clockRevision!) >= lastRev, 'the clock is at least the last write');
  assert.equal(rep.coordinator.compactRevision, compactedAt.toString());
  assert.equal(rep.coordinator.partitions, 64);

  assert.deepEqual(rep.shards.map((s) => s.name), ['s1', 's2', 's3']);
  const counts = await memberCounts();
  assert.equal(counts.reduce((a, x) => a + x, 0), KEYS);
  rep.shards.forEach((s, i) => {
    assert.equal(s.health, 'healthy');
    assert.equal(s.endpointsFrom, 'proxy', 'endpoints from the registered proxy');
    assert.deepEqual(s.endpoints.map((e) => e.endpoint), [meta.cluster.shards[i]!.clientUrl]);
    assert.equal(s.keys, String(counts[i]), `${s.name}: user keys only (no clock, marker or name keys)`);
    assert.ok(BigInt(s.dbSize!) > 0n);
    assert.ok(BigInt(s.revision!) <= BigInt(rep.coordinator.clockRevision!));
    assert.equal(s.error, null);
  });
  assert.equal(rep.shards.reduce((a, s) => a + s.partitions, 0), 64);
  assert.deepEqual(rep.shards.map((s) => s.partitions), [22, 21, 21]);

  assert.equal(rep.proxies.length, 1);
  assert.deepEqual(rep.proxies[0]!.clientURLs, [`http://${meta.addresses[0]}`]);
  assert.match(rep.proxies[0]!.id, /^\d+$/);
  assert.deepEqual(rep.notes, []);
});

test('status table: one row per shard, the coordinator and the proxies', { timeout: 60_000 }, async () => {
  const r = await status(['--endpoints', meta.cluster.coordinator.clientUrl]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], 'COORDINATOR');
  assert.match(r.stdout, /\| ENDPOINTS +\| HEALTH +\| CLOCK REVISION \| COMPACT REVISION \| PARTITIONS \|/);
  assert.match(r.stdout, new RegExp(`\\| ${compactedAt} +\\| 64 +\\|`));
  assert.match(r.stdout, /\| NAME \| ENDPOINTS +\| HEALTH +\| KEYS \| DB SIZE +\| PARTITIONS \| REVISION \|/);
  const counts = await memberCounts();
  for (const [i, s] of meta.cluster.shards.entries()) {
    const row = lines.find((l) => l.startsWith(`| ${s.name} `));
    assert.ok(row, `a row for ${s.name}`);
    const cells = row.split('|').map((x) => x.trim());
    assert.equal(cells[2], s.clientUrl);
    assert.equal(cells[3], 'healthy');
    assert.equal(cells[4], String(counts[i]));
    assert.match(cells[5]!, /^[\d.]+ (B|kB|MB)$/);
  }
  assert.ok(lines.includes('PROXIES'));
  assert.ok(lines.some((l) => l.includes(`http://${meta.addresses[0]}`)), 'the proxy is listed');
});

test('status --endpoints <a proxy>: the proxy names its coordinator and shards; the same report', { timeout: 60_000 }, async () => {
  const proxy = meta.addresses[0]!;
  const r = await status(['--endpoints', proxy, '-w', 'json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const rep = JSON.parse(r.stdout) as StatusReport;
  assert.equal(rep.via?.endpoint, proxy);
  assert.match(rep.via!.name, /^etcd-metaproxy-/);
  assert.deepEqual(rep.coordinator.endpoints.map((e) => e.endpoint), [meta.cluster.coordinator.clientUrl]);
  assert.equal(rep.coordinator.health, 'healthy');
  assert.equal(rep.coordinator.partitions, 64);
  assert.deepEqual(rep.shards.map((s) => s.name), ['s1', 's2', 's3']);
  rep.shards.forEach((s, i) => {
    assert.equal(s.health, 'healthy');
    assert.equal(s.endpointsFrom, 'proxy');
    assert.deepEqual(s.endpoints.map((e) => e.endpoint), [meta.cluster.shards[i]!.clientUrl]);
  });
  assert.deepEqual(rep.shards.map((s) => s.keys), (await memberCounts()).map(String));
  assert.deepEqual(rep.proxies.map((p) => p.clientURLs), [[`http://${proxy}`]]);

  const table = await status(['--endpoints', `http://${proxy}`]);
  assert.equal(table.code, 0, table.stderr + table.stdout);
  assert.match(table.stdout.split('\n')[0]!, new RegExp(`^VIA PROXY http://${proxy} \\(etcd-metaproxy-`));
  assert.ok(table.stdout.includes(meta.cluster.shards[2]!.clientUrl), 'shard endpoints listed');
});

test('status --endpoints <a member of a shard> or <a plain etcd>: says so, exit status 1', { timeout: 60_000 }, async () => {
  const r = await status(['--endpoints', meta.cluster.shards[0]!.clientUrl, '-w', 'json']);
  assert.equal(r.code, 1, r.stdout);
  const rep = JSON.parse(r.stdout) as StatusReport;
  assert.equal(rep.via, undefined);
  assert.match(rep.notes.join('\n'), /is the member of shard "s1", not the coordinator: pass the coordinator's endpoints, a proxy's, or --config/);
  assert.deepEqual(rep.shards, []);

  const plain = await startOracle('status-plain');
  cleanup.add('stop plain etcd', () => plain.stop());
  const p = await status(['--endpoints', plain.address]);
  assert.equal(p.code, 1, p.stdout);
  assert.match(p.stdout, /note: no meta-cluster at .*: no proxy has started on this coordinator yet, or it is not the coordinator \(pass the coordinator's endpoints, a proxy's, or --config\)/);
});

test('a shard down: unhealthy in the report, exit status 1; --config supplies endpoints when no proxy is registered', { timeout: 90_000 }, async () => {
  await meta.cluster.shards[1]!.kill();
  try {
    const r = await status(['--endpoints', meta.cluster.coordinator.clientUrl, '-w', 'json']);
    assert.equal(r.code, 1);
    const rep = JSON.parse(r.stdout) as StatusReport;
    assert.equal(rep.shards[1]!.health, 'unhealthy');
    assert.match(rep.shards[1]!.endpoints[0]!.error!, /unavailable/);
    assert.equal(rep.shards[0]!.health, 'healthy');
  } finally {
    await meta.cluster.shards[1]!.restart();
  }

  await meta.proxies[0]!.close();
  const bare = await status(['--endpoints', meta.cluster.coordinator.clientUrl, '-w', 'json']);
  assert.equal(bare.code, 1, 'shards whose endpoints are unknown are not healthy');
  const unknown = JSON.parse(bare.stdout) as StatusReport;
  assert.deepEqual(unknown.proxies, []);
  assert.ok(unknown.shards.every((s) => s.health === 'unknown' && s.endpointsFrom === 'none'));
  assert.match(unknown.notes.join('\n'), /shard s1: endpoints unknown/);

  const dir = tempDir(cleanup, 'status-config');
  const file = path.join(dir, 'proxy.yaml');
  fs.writeFileSync(
    file,
    [
      `coordinator: { endpoints: [${meta.cluster.coordinator.clientUrl}] }`,
      'shards:',
      ...meta.cluster.shards.map((s) => `  - { name: ${s.name}, endpoints: [${s.clientUrl}] }`),
      'partitions: 64',
      '',
    ].join('\n'),
  );
  const withConfig = await status(['--config', file, '-w', 'json']);
  assert.equal(withConfig.code, 0, withConfig.stderr + withConfig.stdout);
  const rep = JSON.parse(withConfig.stdout) as StatusReport;
  assert.ok(rep.shards.every((s) => s.health === 'healthy' && s.endpointsFrom === 'config'));
  assert.equal(rep.shards.reduce((a, s) => a + Number(s.keys), 0), KEYS);
});

test('status usage errors exit 2', { timeout: 30_000 }, async () => {
  const none = await status([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /status needs --endpoints/);
  const bad = await status(['--endpoints', 'http://127.0.0.1:1', '-w', 'yaml']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--write-out must be table or json/);
});
