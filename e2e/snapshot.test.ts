/**
 * Backup and restore as a user does it, against real etcd processes: `etcdctl snapshot save`
 * through the proxy while writes go on, `etcd-metaproxy restore` (the CLI) into fresh clusters,
 * then a new proxy on them serves exactly the keyspace of the snapshot revision (keys, values,
 * create/mod revisions, versions (one member put per key, however high its version), leases),
 * the same HashKV, and new writes above that revision.
 * A truncated snapshot and non-empty clusters are refused without writing anything; a restore
 * into another shard layout (with --reset-versions) places keys by the new configuration.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import type { ProxyConfig } from '../src/config/types.js';
import { startLocalMetaCluster, type LocalMetaCluster } from '../src/local/meta-cluster.js';
import { freePort } from '../src/local/ports.js';
import { startProxy } from '../src/server/proxy.js';
import { readSnapshot } from '../src/backup/reader.js';
import { SnapshotEncoder } from '../src/backup/encoder.js';
import { Cleanup, RawClient, etcdctl, memberVersions, proxyConfig, startMeta, tempDir, type Meta } from './harness.js';
import { Code, b } from './grpc-raw.js';

const cleanup = new Cleanup();
const MAIN = path.resolve(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const ALL = Buffer.from([0]);
const HIGH_VERSION = 400;

let meta: Meta;
let source: RawClient;
let dir: string;

before(async () => {
  try {
    meta = await startMeta({ shards: 3, tag: 'snap' });
    cleanup.add('stop meta', () => meta.stop());
    source = new RawClient(meta.addresses[0]!);
    cleanup.add('close client', () => source.close());
    dir = tempDir(cleanup, 'snap-files');
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}, { timeout: 120_000 });
after(() => cleanup.run(), { timeout: 60_000 });

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function freshClusters(tag: string, shards: number): Promise<LocalMetaCluster> {
  const cluster = await startLocalMetaCluster({ dataDir: path.join(dir, tag), shards, unsafeNoFsync: true });
  cleanup.add(`stop ${tag}`, () => cluster.stop());
  return cluster;
}

async function configFile(cluster: LocalMetaCluster, tag: string, change: Partial<ProxyConfig> = {}): Promise<{ file: string; cfg: ProxyConfig }> {
  const cfg = proxyConfig(cluster, `127.0.0.1:${await freePort()}`, { log: { level: 'warn' }, ...change });
  const file = path.join(dir, `${tag}.json`);
  fs.writeFileSync(file, JSON.stringify(cfg));
  return { file, cfg };
}

async function proxyOn(cfg: ProxyConfig, tag: string): Promise<RawClient> {
  const logger = pino({ level: 'info' }, pino.destination({ dest: path.join(dir, `${tag}-proxy.log`), sync: true }));
  const proxy = await startProxy(cfg, { logger });
  cleanup.add(`close ${tag} proxy`, () => proxy.close());
  const client = new RawClient(proxy.address);
  cleanup.add(`close ${tag} client`, () => client.close());
  return client;
}

/** Every key of a meta-cluster (or at `revision`), every field. */
async function everything(c: RawClient, revision = '0') {
  const r = await c.kv('Range', { key: ALL, range_end: ALL, revision });
  if (!r.ok) throw new Error(`range: ${r.details}`);
  return { revision: r.res.header.revision as string, kvs: r.res.kvs as unknown[] };
}

/** Keys in every cluster, counted on the members themselves (system keys included). */
async function memberKeys(cluster: LocalMetaCluster): Promise<number> {
  let n = 0;
  for (const e of [cluster.coordinator, ...cluster.shards]) {
    const c = new RawClient(e.clientUrl);
    const r = await c.kv('Range', { key: ALL, range_end: ALL, count_only: true });
    c.close();
    if (!r.ok) throw new Error(r.details);
    n += Number(r.res.count);
  }
  return n;
}

async function snapshotRevision(file: string): Promise<string> {
  for await (const r of readSnapshot(file)) if (r.type === 'header') return r.header.revision;
  throw new Error('no header');
}

let saved: string;
let snapRev: string;
let expected: unknown[];

test('etcdctl snapshot save through the proxy while writes go on: a consistent file at one revision', { timeout: 180_000 }, async () => {
  const put = async (key: Buffer | string, value: Buffer | string) => assert.ok((await source.kv('Put', { key: b(key), value: b(value) })).ok);
  for (let i = 0; i < 1200; i++) await put(`snap/k${i}`, i % 50 === 0 ? '' : `value-${i}`);
  for (let v = 0; v < 7; v++) await put('snap/multi', `v${v}`);
  // A key at a high version: restored with one member put, not one per version.
  for (let v = 0; v < HIGH_VERSION; v++) await put('snap/high', `h${v}`);
  await put(Buffer.from([0x00, 0x01]), Buffer.from([0xff, 0x00]));
  await put(Buffer.from([0xfe, 0xff, 0x00]), 'binary key');
  await put(Buffer.from([0xff, 0xfe]), 'high key');
  await put('snap/big', Buffer.alloc(200 * 1024, 0x61));
  await put('snap/gone', 'deleted before the snapshot');
  assert.ok((await source.kv('DeleteRange', { key: b('snap/gone') })).ok);

  // Writes keep going during the save: the snapshot must hold exactly one revision's state.
  let writing = true;
  let writes = 0;
  const writer = (async () => {
    while (writing) {
      await put(`snap/k${writes % 1200}`, `during-${writes}`);
      writes++;
    }
  })();
  saved = path.join(dir, 'meta.snapshot');
  const res = await etcdctl(meta.addresses[0]!, ['snapshot', 'save', saved], { timeoutMs: 120_000 });
  writing = false;
  await writer;
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /Snapshot saved at /);
  assert.ok(writes > 0, 'writes went on during the save');

  snapRev = await snapshotRevision(saved);
  const at = await everything(source, snapRev);
  expected = at.kvs;
  assert.equal(expected.length, 1200 + 2 + 3 + 1);

  // What etcdctl's own tools make of it (docs/SNAPSHOT.md): not a bolt database.
  const status = await etcdctl(meta.addresses[0]!, ['snapshot', 'status', saved]);
  assert.notEqual(status.code, 0);
  assert.match(status.stderr, /invalid database/);

  // Writes after the snapshot are not part of it.
  await put('snap/after', 'not in the snapshot');
});

test('restore: a truncated snapshot is refused and nothing is written; then the whole file restores; non-empty clusters are refused', { timeout: 180_000 }, async () => {
  const cluster = await freshClusters('restored', 3);
  const { file: cfgFile, cfg } = await configFile(cluster, 'restored');

  const truncated = path.join(dir, 'truncated.snapshot');
  const whole = fs.readFileSync(saved);
  fs.writeFileSync(truncated, whole.subarray(0, whole.length - 1000));
  const bad = await runCli(['restore', '--file', truncated, '--config', cfgFile]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /etcd-metaproxy restore: snapshot .*truncated\.snapshot: .*(truncated|checksum)/);
  assert.equal(await memberKeys(cluster), 0, 'nothing written for a refused snapshot');

  // A crafted file (valid checksum) with a key in the reserved range, after a good key: refused
  // by the check before any write, so no "restoring" marker blocks the good restore below.
  const crafted = path.join(dir, 'crafted.snapshot');
  const enc = new SnapshotEncoder();
  const parts: Buffer[] = [];
  for await (const r of readSnapshot(saved)) {
    if (r.type === 'header') parts.push(enc.start(r.header));
    else if (r.type === 'key' && parts.length === 1) {
      parts.push(enc.key(r.kv));
      parts.push(enc.key({ ...r.kv, key: Buffer.from([0xff, 0xff, 0xff, 0x41]) }));
    }
  }
  parts.push(enc.finish());
  fs.writeFileSync(crafted, Buffer.concat(parts));
  const reserved = await runCli(['restore', '--file', crafted, '--config', cfgFile]);
  assert.equal(reserved.code, 1);
  assert.match(reserved.stderr, /snapshot .*crafted\.snapshot: key ffffff41 lies in the reserved range/);
  assert.equal(await memberKeys(cluster), 0, 'nothing written (no restoring marker) for a crafted snapshot');

  const ok = await runCli(['restore', '--file', saved, '--config', cfgFile]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`^restored ${expected.length} keys at revision ${snapRev} \\(s1: \\d+, s2: \\d+, s3: \\d+\\)\\n$`));

  const again = await runCli(['restore', '--file', saved, '--config', cfgFile]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /restore needs empty clusters: coordinator holds \d+ keys, s1 holds/);

  // A proxy on the restored clusters serves the snapshot's keyspace exactly.
  const restored = await proxyOn(cfg, 'restored');
  const now = await everything(restored);
  assert.equal(now.revision, snapRev);
  assert.deepEqual(now.kvs, expected);
  assert.deepEqual((await everything(restored, snapRev)).kvs, expected);
  const hashThere = await source.callOrThrow('Maintenance', 'HashKV', { revision: snapRev });
  const hashHere = await restored.callOrThrow('Maintenance', 'HashKV', { revision: '0' });
  assert.equal(hashHere.hash, hashThere.hash);
  assert.equal(hashHere.hash_revision, snapRev);

  // History before the snapshot revision was not restored: etcd's compacted error.
  const older = await restored.kv('Range', { key: b('snap/k1'), revision: (BigInt(snapRev) - 1n).toString() });
  assert.deepEqual(older, { ok: false, code: Code.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' });

  // The clock continues right above the snapshot revision; existing keys keep their create revision.
  const fresh = await restored.kv('Put', { key: b('snap/new'), value: b('x') });
  assert.ok(fresh.ok);
  assert.equal(BigInt(fresh.res.header.revision), BigInt(snapRev) + 1n);
  const w = await restored.kv('Put', { key: b('snap/multi'), value: b('after restore'), prev_kv: true });
  assert.ok(w.ok);
  assert.ok(BigInt(w.res.header.revision) > BigInt(fresh.res.header.revision));
  const multi = (expected as Array<{ key: Buffer; create_revision: string; version: string }>).find((kv) => kv.key.toString() === 'snap/multi')!;
  assert.equal(multi.version, '7');
  assert.deepEqual(w.res.prev_kv, multi);
  const got = await restored.kv('Range', { key: b('snap/multi') });
  assert.ok(got.ok);
  assert.equal(got.res.kvs[0].create_revision, multi.create_revision);
  assert.equal(got.res.kvs[0].mod_revision, w.res.header.revision);
  assert.equal(got.res.kvs[0].version, '8');

  // The high version came back with one member put: the member's own version is 1, the envelope
  // carries the rest. Later puts count on from it; a delete and a new put start again at 1.
  const stored = await memberVersions(cluster, cfg.namespace, b('snap/high'));
  assert.deepEqual(stored, ['1'], 'one member holds snap/high, at its own version 1');
  const high = (expected as Array<{ key: Buffer; version: string }>).find((kv) => kv.key.toString() === 'snap/high')!;
  assert.equal(high.version, String(HIGH_VERSION));
  const next = await restored.kv('Put', { key: b('snap/high'), value: b('next'), prev_kv: true });
  assert.ok(next.ok);
  assert.deepEqual(next.res.prev_kv, high);
  const after = await restored.kv('Range', { key: b('snap/high') });
  assert.ok(after.ok);
  assert.equal(after.res.kvs[0].version, String(HIGH_VERSION + 1));
  assert.ok((await restored.kv('DeleteRange', { key: b('snap/high') })).ok);
  assert.ok((await restored.kv('Put', { key: b('snap/high'), value: b('again') })).ok);
  const recreated = await restored.kv('Range', { key: b('snap/high') });
  assert.ok(recreated.ok);
  assert.equal(recreated.res.kvs[0].version, '1');
  assert.equal(recreated.res.kvs[0].create_revision, recreated.res.kvs[0].mod_revision);
});

test('restore into another shard layout with --reset-versions: keys placed by the new map, versions 1, revisions kept', { timeout: 180_000 }, async () => {
  const cluster = await freshClusters('relayout', 2);
  const { file: cfgFile, cfg } = await configFile(cluster, 'relayout', { partitions: 16 });
  const ok = await runCli(['restore', '--file', saved, '--config', cfgFile, '--reset-versions']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /placed by the configuration's partition map/);
  const restored = await proxyOn(cfg, 'relayout');
  const now = await everything(restored);
  assert.equal(now.revision, snapRev);
  const withVersion1 = (expected as Array<Record<string, unknown>>).map((kv) => ({ ...kv, version: '1' }));
  assert.deepEqual(now.kvs, withVersion1);
});
