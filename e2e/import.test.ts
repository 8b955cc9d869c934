/**
 * `etcd-metaproxy import` as a user runs it, against real etcd processes: a plain etcd (the
 * source) with history (versions, deletes, leases with keys, a keyless lease, multi-key txns,
 * a range delete, one larger than a member txn may hold) is imported with --follow while writers go on; the importer is killed
 * mid-follow and started again (it resumes), stopped (SIGTERM: it finishes), started again after
 * more writes (it goes on), stopped; then a proxy on the clusters answers a Range of everything
 * (every field), the header revision, leases and a watch from the copy revision R+1 exactly
 * as the source does, and its next write gets the next revision. Non-empty clusters are refused; an
 * import interrupted during its copy starts over; a TLS source is read with etcdctl's flags.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import type { ProxyConfig } from '../src/config/types.js';
import { startLocalMetaCluster, type LocalMetaCluster } from '../src/local/meta-cluster.js';
import { freePort } from '../src/local/ports.js';
import { startProxy } from '../src/server/proxy.js';
import { main } from '../src/cli/main.js';
import { runImport, type ImportResult } from '../src/import/importer.js';
import { encodeRecord, IMPORT_KEY, importMarker, type ImportRecord } from '../src/import/record.js';
import { defaultPartitionMap } from '../src/partition/map.js';
import { markerKey } from '../src/lease/keys.js';
import { PARTITION_MAP_KEY } from '../src/partition/map-record.js';
import { Cleanup, RawClient, makeTestCerts, memberVersions, proxyConfig, sleep, startOracle, tempDir, waitFor, type Oracle } from './harness.js';
import { startEtcd } from '../src/local/etcd-process.js';
import { b } from './grpc-raw.js';
import { WatchStream } from './watch-client.js';

const cleanup = new Cleanup();
const MAIN = path.resolve(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const ALL = Buffer.from([0]);
const HIGH_VERSION = 300;

let source: Oracle;
let src: RawClient;
let cluster: LocalMetaCluster;
let cfg: ProxyConfig;
let cfgFile: string;
let dir: string;

before(async () => {
  try {
    dir = tempDir(cleanup, 'import');
    source = await startOracle('import-source');
    cleanup.add('stop source', () => source.stop());
    src = new RawClient(source.address);
    cleanup.add('close source client', () => src.close());
    cluster = await startLocalMetaCluster({ dataDir: path.join(dir, 'meta'), shards: 3, unsafeNoFsync: true });
    cleanup.add('stop meta', () => cluster.stop());
    // Member txns of at most 256 ops (the members take 1024): a range delete of a few hundred
    // keys per shard is already more than one member txn may hold.
    cfg = proxyConfig(cluster, `127.0.0.1:${await freePort()}`, { log: { level: 'warn' }, memberLimits: { maxTxnOps: 256, maxRequestBytes: 4 * 1024 * 1024 } });
    cfgFile = path.join(dir, 'proxy.json');
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}, { timeout: 60_000 });
after(() => cleanup.run(), { timeout: 60_000 });

/** A running `etcd-metaproxy import`, its output collected as it comes. */
class ImportRun {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'import', '--from', source.address, '--config', cfgFile, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    const pid = this.child.pid;
    cleanup.add(`kill import ${pid}`, () => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    });
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** The highest revision a progress line reports as applied. */
  applied(): bigint {
    let top = 0n;
    for (const m of this.stderr.matchAll(/applied revision (\d+) of/g)) if (BigInt(m[1]) > top) top = BigInt(m[1]);
    return top;
  }

  async waitCaughtUp(rev: bigint, what: string): Promise<void> {
    await waitFor(() => this.stderr.includes(`applied revision ${rev} of ${rev} (caught up)`), 30_000, `${what}: caught up at ${rev}; stderr:\n${this.stderr}`);
  }
}

/** The CLI in this process (a command that ends by itself: refusals). */
async function runOnce(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(['import', '--from', source.address, '--config', cfgFile, ...args], { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}

/** An import --follow in this process, stopped by abort(), as SIGTERM stops the CLI. */
class InProcessImport {
  lines: string[] = [];
  private readonly stopper = new AbortController();
  readonly done: Promise<ImportResult>;

  constructor() {
    const add = (t: string) => void this.lines.push(t);
    this.done = runImport({
      config: cfg,
      logger: pino({ level: 'warn' }, pino.destination({ dest: path.join(dir, 'import-in-process.log'), sync: true })),
      from: [source.address],
      tls: { caFile: '', certFile: '', keyFile: '' },
      follow: true,
      progress: { status: add, note: add },
      signal: this.stopper.signal,
    });
  }

  applied(): bigint {
    let top = 0n;
    for (const l of this.lines) {
      const m = /applied revision (\d+) of/.exec(l);
      if (m && BigInt(m[1]) > top) top = BigInt(m[1]);
    }
    return top;
  }

  async waitCaughtUp(rev: bigint): Promise<void> {
    await waitFor(() => this.lines.some((l) => l.startsWith(`import: applied revision ${rev} of ${rev} (caught up)`)), 30_000, `caught up at ${rev}:\n${this.lines.join('\n')}`);
  }

  stop(): Promise<ImportResult> {
    this.stopper.abort();
    return this.done;
  }
}

async function put(key: string, value: string, lease = '0'): Promise<bigint> {
  const r = await src.kv('Put', { key: b(key), value: b(value), lease });
  if (!r.ok) throw new Error(`put ${key}: ${r.details}`);
  return BigInt(r.res.header.revision);
}

async function grant(ttl: number): Promise<string> {
  const r = await src.callOrThrow<{ ID: string }>('Lease', 'LeaseGrant', { TTL: String(ttl), ID: '0' });
  return r.ID;
}

async function sourceRevision(): Promise<bigint> {
  const r = await src.kv('Range', { key: ALL, range_end: ALL, count_only: true });
  if (!r.ok) throw new Error(r.details);
  return BigInt(r.res.header.revision);
}

async function everything(c: RawClient) {
  const r = await c.kv('Range', { key: ALL, range_end: ALL });
  if (!r.ok) throw new Error(`range: ${r.details}`);
  return { revision: r.res.header.revision as string, kvs: r.res.kvs as unknown[] };
}

/** Every event from `from` to `to`, flattened, as a watcher with prev_kv sees them. */
async function watchEvents(c: RawClient, from: bigint, to: bigint): Promise<unknown[]> {
  const w = new WatchStream(c);
  try {
    w.create({ key: ALL, rangeEnd: ALL, startRevision: from, prevKv: true });
    const last = () => {
      const ev = w.events(0);
      return ev.length ? BigInt(ev[ev.length - 1].kv.mod_revision) : 0n;
    };
    await w.until(() => last() >= to, 30_000, `events up to ${to} from ${c.address}`);
    return w.events(0);
  } finally {
    w.close();
  }
}

/** Events grouped by revision, each revision's events in key order. */
function byRevision(events: unknown[]): unknown[][] {
  const out: Array<Array<{ kv: { key: Buffer; mod_revision: string } }>> = [];
  for (const e of events as Array<{ kv: { key: Buffer; mod_revision: string } }>) {
    const last = out[out.length - 1];
    if (last && last[0].kv.mod_revision === e.kv.mod_revision) last.push(e);
    else out.push([e]);
  }
  for (const group of out) group.sort((a, b) => Buffer.compare(a.kv.key, b.kv.key));
  return out;
}

/** Writes of every kind, until told to stop: puts, leased puts, deletes, multi-key txns, a new lease, a revoke. */
function startWriters(lease: string, tag: string): { stop(): Promise<number> } {
  let going = true;
  let n = 0;
  const one = async (w: number) => {
    let i = 0;
    while (going) {
      const k = `live/${tag}/w${w}/k${i % 40}`;
      switch (i % 7) {
        case 3:
          await put(k, `leased ${i}`, lease);
          break;
        case 5:
          assert.ok((await src.kv('DeleteRange', { key: b(`live/${tag}/w${w}/k${(i + 11) % 40}`) })).ok);
          break;
        case 6:
          assert.ok(
            (
              await src.kv('Txn', {
                compare: [],
                success: [
                  { request_put: { key: b(`txn/${tag}/w${w}/a`), value: b(`a${i}`) } },
                  { request_put: { key: b(`txn/${tag}/w${w}/b`), value: b(`b${i}`) } },
                  { request_delete_range: { key: b(`live/${tag}/w${w}/k${(i + 3) % 40}`) } },
                ],
                failure: [],
              })
            ).ok,
          );
          break;
        case 4:
          // A key the copy wrote at a high version, updated on.
          await put('hot/k', `${tag}${w}-${i}`);
          break;
        default:
          await put(k, `v${i}`);
      }
      i++;
      n++;
      // Paced (~150 writes/s per writer): the point is writes during the import, not load.
      await sleep(5);
    }
  };
  const done = Promise.all([one(1), one(2)]);
  return {
    async stop() {
      going = false;
      await done;
      return n;
    },
  };
}

test('import refuses clusters that are not empty, writing nothing', { timeout: 30_000 }, async () => {
  const shard = new RawClient(cluster.shards[1].clientUrl);
  try {
    assert.ok((await shard.kv('Put', { key: b('stray'), value: b('x') })).ok);
    const r = await runOnce([]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /etcd-metaproxy import: import needs empty clusters: s2 holds 1 keys/);
    const coordinator = new RawClient(cluster.coordinator.clientUrl);
    const c = await coordinator.kv('Range', { key: ALL, range_end: ALL, count_only: true });
    coordinator.close();
    assert.ok(c.ok);
    assert.equal(c.res.count, '0', 'nothing written to the coordinator');
    assert.ok((await shard.kv('DeleteRange', { key: b('stray') })).ok);
  } finally {
    shard.close();
  }
});

/** Empties every cluster (keys and coordinator leases), as an operator's wipe would. */
async function wipeClusters(): Promise<void> {
  for (const e of [cluster.coordinator, ...cluster.shards]) {
    const c = new RawClient(e.clientUrl);
    try {
      const leases = await c.callOrThrow<{ leases: Array<{ ID: string }> }>('Lease', 'LeaseLeases', {});
      for (const l of leases.leases) await c.callOrThrow('Lease', 'LeaseRevoke', { ID: l.ID });
      assert.ok((await c.kv('DeleteRange', { key: ALL, range_end: ALL })).ok);
    } finally {
      c.close();
    }
  }
}

test('an import interrupted while copying starts over: its partial copy is cleared', { timeout: 30_000 }, async () => {
  await put('pre/a', 'before everything');
  await put('pre/a', 'version 2');
  const head = await src.kv('Range', { key: ALL, count_only: true });
  assert.ok(head.ok);
  // What a killed copy leaves: the marker, the record in phase "copy", some keys, a lease.
  const record: ImportRecord = {
    format: 1,
    source: String(head.res.header.cluster_id),
    endpoints: [source.address],
    copyRevision: String(head.res.header.revision),
    applied: '0',
    phase: 'copy',
    map: defaultPartitionMap(cfg.partitions, cfg.routingPrefixSegments, cfg.shards.map((x) => x.name)),
    namespace: cfg.namespace,
    updatedAt: new Date().toISOString(),
  };
  const coordinator = new RawClient(cluster.coordinator.clientUrl);
  const shard = new RawClient(cluster.shards[2].clientUrl);
  try {
    const lease = await coordinator.callOrThrow<{ ID: string }>('Lease', 'LeaseGrant', { TTL: '600', ID: '0' });
    assert.ok((await coordinator.kv('Put', { key: markerKey(BigInt(lease.ID)), value: Buffer.alloc(0), lease: lease.ID })).ok);
    assert.ok((await coordinator.kv('Put', { key: IMPORT_KEY, value: encodeRecord(record) })).ok);
    assert.ok((await coordinator.kv('Put', { key: PARTITION_MAP_KEY, value: importMarker(record.source) })).ok);
    assert.ok((await shard.kv('Put', { key: b('partial/junk'), value: b('x') })).ok);

    const r = await runOnce([]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /import: an earlier import was interrupted while copying: its partial copy was cleared/);
    assert.match(r.stdout, new RegExp(`^imported 1 keys at revision ${head.res.header.revision}, applied 0 events after it`));
    const junk = await shard.kv('Range', { key: b('partial/junk') });
    assert.ok(junk.ok);
    assert.equal(junk.res.kvs.length, 0, 'the partial copy is gone');
    const ttl = await coordinator.callOrThrow<{ TTL: string }>('Lease', 'LeaseTimeToLive', { ID: lease.ID });
    assert.equal(ttl.TTL, '-1', "the partial copy's lease is revoked");
  } finally {
    coordinator.close();
    shard.close();
  }
  // A proxy on it serves the source's key as it was.
  const logger = pino({ level: 'warn' }, pino.destination({ dest: path.join(dir, 'proxy-restarted-copy.log'), sync: true }));
  const proxy = await startProxy(cfg, { logger });
  const meta = new RawClient(proxy.address);
  try {
    assert.deepEqual((await everything(meta)).kvs, (await everything(src)).kvs);
  } finally {
    meta.close();
    await proxy.close();
  }
  await wipeClusters();
});

test('a TLS source with client certificate auth is read with --cacert, --cert and --key', { timeout: 30_000 }, async () => {
  const certs = makeTestCerts(cleanup, 'import');
  const secure = await startEtcd({
    name: 'import-tls-source',
    dataDir: path.join(dir, 'tls-source'),
    unsafeNoFsync: true,
    tls: { certFile: certs.cert, keyFile: certs.key, trustedCaFile: certs.ca },
  });
  cleanup.add('stop TLS source', () => secure.stop());
  assert.match(secure.clientUrl, /^https:\/\//);
  const hostPort = secure.clientUrl.replace(/^https:\/\//, '');
  // The clusters hold a key: the refusal comes after the source was read.
  const shard = new RawClient(cluster.shards[0].clientUrl);
  try {
    assert.ok((await shard.kv('Put', { key: b('stray'), value: b('x') })).ok);
    const importFrom = async (extra: string[]) => {
      let stderr = '';
      const code = await main(['import', '--config', cfgFile, ...extra], { out: () => undefined, err: (t) => void (stderr += t) });
      return { code, stderr };
    };
    const ok = await importFrom(['--from', hostPort, '--cacert', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey]);
    assert.equal(ok.code, 1);
    assert.match(ok.stderr, /import needs empty clusters: s1 holds 1 keys/);
    const noCert = await importFrom(['--from', secure.clientUrl, '--cacert', certs.ca]);
    assert.equal(noCert.code, 1);
    assert.match(noCert.stderr, /the source https:\/\/\S+ cannot be read/);
    assert.ok((await shard.kv('DeleteRange', { key: b('stray') })).ok);
  } finally {
    shard.close();
  }
});

test('live import with --follow while writes go on; killed and restarted, stopped and restarted; then the proxy is the source', { timeout: 120_000 }, async () => {
  // The source's history before the import.
  for (let i = 0; i < 200; i++) await put(`hist/k${i}`, `v0-${i}`);
  for (let i = 0; i < 200; i += 3) await put(`hist/k${i}`, `v1-${i}`);
  for (let i = 0; i < 200; i += 9) await put(`hist/k${i}`, `v2-${i}`);
  for (let i = 0; i < 200; i += 10) assert.ok((await src.kv('DeleteRange', { key: b(`hist/k${i}`) })).ok);
  await put('hist/k0', 'created again');
  // Keys at high versions: the copy writes each with one member put (its envelope's version
  // delta); the follow's later puts must keep counting from there, and a delete starts over.
  for (let v = 0; v < HIGH_VERSION; v++) await put('hot/k', `h${v}`);
  for (let v = 0; v < HIGH_VERSION; v++) await put('hot/gone', `g${v}`);
  const leased = await grant(600);
  const keyless = await grant(300);
  await put('lease/a', 'on a lease', leased);
  await put('lease/b', 'on a lease too', leased);
  for (let i = 0; i < 20; i++) await put(`range/k${i}`, `r${i}`);
  assert.ok((await src.kv('DeleteRange', { key: b('range/'), range_end: b('range0') })).ok);
  assert.ok(
    (
      await src.kv('Txn', {
        compare: [],
        success: [
          { request_put: { key: b('txn/x'), value: b('x') } },
          { request_put: { key: b('txn/y'), value: b('y'), lease: leased } },
          { request_delete_range: { key: b('hist/k1') } },
        ],
        failure: [],
      })
    ).ok,
  );

  const t0 = Date.now();
  const phase = (what: string) => console.log(`# ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // Import while writers go on.
  const writers = startWriters(leased, 'a');
  let run = new ImportRun(['--follow']);
  await waitFor(() => /copied \d+ keys at revision (\d+)/.test(run.stderr), 30_000, `the copy; stderr:\n${run.stderr}`);
  const R = BigInt(/copied \d+ keys at revision (\d+)/.exec(run.stderr)![1]);
  console.log(`# ${/import: copied \d+ keys at revision.*/.exec(run.stderr)![0]}`);
  await waitFor(() => run.applied() > R, 30_000, `follow progress; stderr:\n${run.stderr}`);

  phase('following');
  assert.ok((await src.kv('DeleteRange', { key: b('hot/gone') })).ok);
  await put('hot/gone', 'created again after the copy');
  await put('hot/gone', 'and put once more');
  // Killed mid-follow: started again, it resumes after the revision it recorded.
  run.kill('SIGKILL');
  await run.exited;
  // A lease granted and one revoked while nobody imports: the restarted import picks both up.
  const late = await grant(600);
  await put('late/leased', 'on a lease granted during the import', late);
  const doomed = await grant(600);
  await put('doomed/a', 'x', doomed);
  await put('doomed/b', 'y', doomed);
  run = new ImportRun(['--follow']);
  await waitFor(() => run.stderr.includes('resuming the import'), 30_000, `resume; stderr:\n${run.stderr}`);
  await src.callOrThrow('Lease', 'LeaseRevoke', { ID: doomed });
  await waitFor(() => run.applied() > 0n, 30_000, `follow progress after the restart; stderr:\n${run.stderr}`);
  // A range delete of more keys per shard than a member txn may hold (memberLimits.maxTxnOps).
  for (let i = 0; i < 1200; i += 120) {
    const success = Array.from({ length: 120 }, (_, j) => ({ request_put: { key: b(`bulk/${String(i + j).padStart(5, '0')}`), value: b('x') } }));
    assert.ok((await src.kv('Txn', { compare: [], success, failure: [] })).ok);
  }
  await put('bulk0', 'just past the prefix');
  const bulk = await src.kv('DeleteRange', { key: b('bulk/'), range_end: b('bulk0') });
  assert.ok(bulk.ok && bulk.res.deleted === '1200');

  phase('resumed, bulk written');
  const writes = await writers.stop();
  assert.ok(writes > 50, `writers wrote during the import (${writes})`);
  let S = await sourceRevision();
  await run.waitCaughtUp(S, 'first run');
  run.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr);
  console.log(`# ${[...run.stderr.matchAll(/import: applied revision.*/g)].pop()?.[0] ?? ''}`);
  assert.match(run.stdout, new RegExp(`^resumed the import \\(copied at revision ${R}\\), applied \\d+ events after it; the meta-cluster stands at revision ${S}\\n$`));

  phase('stopped');
  // Stopped and started again while no proxy ran: it goes on following.
  const more = startWriters(leased, 'b');
  const third = new InProcessImport();
  await waitFor(() => third.applied() > S, 30_000, `follow after a finished import:\n${third.lines.join('\n')}`);
  await more.stop();
  S = await sourceRevision();
  await third.waitCaughtUp(S);
  const result = await third.stop();
  assert.equal(result.resumed, true);
  assert.equal(result.revision, S);
  assert.equal(result.copyRevision, R);

  phase('stopped again');
  // A proxy on the clusters is the source, revision for revision.
  const logger = pino({ level: 'warn' }, pino.destination({ dest: path.join(dir, 'proxy.log'), sync: true }));
  const proxy = await startProxy(cfg, { logger });
  cleanup.add('close proxy', () => proxy.close());
  const meta = new RawClient(proxy.address);
  cleanup.add('close proxy client', () => meta.close());

  const want = await everything(src);
  const got = await everything(meta);
  assert.equal(got.revision, S.toString(), 'header revision');
  assert.equal(got.revision, want.revision);
  assert.equal(got.kvs.length, want.kvs.length);
  assert.deepEqual(got.kvs, want.kvs);
  // One member put copied hot/k, whatever its version: the member's own count is far below it.
  const hot = (want.kvs as Array<{ key: Buffer; version: string }>).find((kv) => kv.key.toString() === 'hot/k')!;
  const held = await memberVersions(cluster, cfg.namespace, b('hot/k'));
  assert.equal(held.length, 1, 'one shard holds hot/k');
  const member = held[0]!;
  assert.ok(Number(hot.version) > HIGH_VERSION && Number(member) <= Number(hot.version) - HIGH_VERSION + 1, `hot/k: version ${hot.version}, member version ${member}`);

  const wantEvents = await watchEvents(src, R + 1n, S);
  const gotEvents = await watchEvents(meta, R + 1n, S);
  assert.ok(wantEvents.length > 100, `events after R (${wantEvents.length})`);
  // A source txn whose keys live on several shards is one revision on the proxy too, but its
  // events come grouped by shard (README "Differences from etcd"): compare each revision's
  // events as a set, and the revisions in order.
  assert.deepEqual(byRevision(gotEvents), byRevision(wantEvents));

  phase('compared');
  // Leases: the same IDs with the same keys; the keyless one too; the revoked one is gone.
  for (const id of [leased, late]) {
    const w = await src.callOrThrow<{ keys: Buffer[] }>('Lease', 'LeaseTimeToLive', { ID: id, keys: true });
    const g = await meta.callOrThrow<{ keys: Buffer[]; TTL: string }>('Lease', 'LeaseTimeToLive', { ID: id, keys: true });
    assert.ok(BigInt(g.TTL) > 0n, `lease ${id} alive on the proxy`);
    assert.deepEqual(g.keys.map(String).sort(), w.keys.map(String).sort());
  }
  const ids = (c: RawClient) => c.callOrThrow<{ leases: Array<{ ID: string }> }>('Lease', 'LeaseLeases', {}).then((r) => r.leases.map((l) => l.ID).sort());
  assert.deepEqual(await ids(meta), await ids(src));
  assert.ok((await ids(meta)).includes(keyless));
  assert.ok(!(await ids(meta)).includes(doomed));

  // The next write continues the source's revisions.
  const next = await meta.kv('Put', { key: b('after/import'), value: b('x') });
  assert.ok(next.ok);
  assert.equal(next.res.header.revision, (S + 1n).toString());

  // With a proxy registered, the import refuses to go on.
  const again = await runOnce(['--follow']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /proxies are registered on these clusters: stop them before importing more/);
});
