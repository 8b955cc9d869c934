/**
 * The command line as a user runs it: `etcd-metaproxy local` (the README's first command) and
 * `etcd-metaproxy serve --config FILE` against running clusters. Checks the ready line,
 * etcdctl through it, /health and /metrics, gRPC health (NOT_SERVING while a shard is down),
 * a clean SIGTERM that leaves no etcd behind, and data kept across a restart of `local`.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProto } from 'grpc-health-check';
import { startLocalMetaCluster } from '../src/local/meta-cluster.js';
import { freePort } from '../src/local/ports.js';
import { Cleanup, etcdctl, tempDir, waitFor } from './harness.js';

const cleanup = new Cleanup();
after(() => cleanup.run(), { timeout: 120_000 });

const MAIN = path.resolve(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

interface Cli {
  child: ChildProcess;
  ready: Promise<string>;
  exited: Promise<number | null>;
}

/** Runs the CLI (from source) and resolves `ready` with the address of its ready line. */
function runCli(args: string[]): Cli {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const m = /^etcd-metaproxy ready on (\S+)$/m.exec(stdout);
      if (m) resolve(m[1]!);
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    void exited.then((code) => reject(new Error(`CLI exited (${code}) before it was ready:\n${stderr.slice(-3000)}`)));
  });
  cleanup.add('stop CLI', async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, ready, exited };
}

function healthClient(address: string): grpc.Client & { Check: (req: object, cb: (err: grpc.ServiceError | null, res: { status: string }) => void) => void } {
  const def = protoLoader.loadSync(healthProto, { keepCase: true, enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  const client = new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  cleanup.add('close health client', () => client.close());
  return client as never;
}

function grpcHealth(address: string): Promise<string> {
  const c = healthClient(address);
  return new Promise((resolve, reject) =>
    c.Check({ service: '' }, (err, res) => {
      c.close();
      return err ? reject(err) : resolve(res.status);
    }),
  );
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

/** etcd processes whose command line mentions `dir` (their data lives under it). */
function etcdsUnder(dir: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  // The etcd processes themselves, not their watchdog shells (whose command line quotes theirs).
  return out.split('\n').filter((l) => /^\s*\d+ etcd --name /.test(l) && l.includes(dir));
}

test('local: ready line, etcdctl, /health, /metrics, SIGTERM stops everything, data kept on restart', { timeout: 240_000 }, async () => {
  const dataDir = tempDir(cleanup, 'cli-local');
  const listen = `127.0.0.1:${await freePort()}`;
  const metrics = `127.0.0.1:${await freePort()}`;
  const args = ['local', '--shards', '2', '--listen', listen, '--data-dir', dataDir, '--metrics', metrics];

  const first = runCli(args);
  assert.equal(await first.ready, listen);
  const put = await etcdctl(listen, ['put', 'cli/greeting', 'hello']);
  assert.equal(put.stdout.trim(), 'OK', put.stderr);
  const get = await etcdctl(listen, ['get', 'cli/greeting']);
  assert.equal(get.stdout, 'cli/greeting\nhello\n');

  const health = await httpGet(`http://${metrics}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(JSON.parse(health.body), { health: 'true', reason: '' });
  assert.equal((await httpGet(`http://${metrics}/readyz`)).status, 200);
  const prom = await httpGet(`http://${metrics}/metrics`);
  assert.match(prom.body, /etcd_metaproxy_grpc_requests_total\{method="Put",code="OK"\} 1/);
  assert.match(prom.body, /etcd_metaproxy_clock_allocations_total \d+/);
  assert.equal(await grpcHealth(listen), 'SERVING');

  assert.ok(etcdsUnder(dataDir).length === 3, 'coordinator and 2 shards run while the proxy serves');
  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0);
  await waitFor(() => etcdsUnder(dataDir).length === 0, 10_000, 'every etcd started by `local` to stop');

  const second = runCli(args);
  assert.equal(await second.ready, listen);
  const again = await etcdctl(listen, ['get', 'cli/greeting']);
  assert.equal(again.stdout, 'cli/greeting\nhello\n', 'data survives a restart of `local`');
  second.child.kill('SIGINT');
  assert.equal(await second.exited, 0);
  await waitFor(() => etcdsUnder(dataDir).length === 0, 10_000, 'every etcd to stop after SIGINT');
});

test('serve --config: a YAML file naming running clusters; health follows a shard going down and up', { timeout: 240_000 }, async () => {
  const dir = tempDir(cleanup, 'cli-serve');
  const cluster = await startLocalMetaCluster({ dataDir: path.join(dir, 'cluster'), shards: 2, unsafeNoFsync: true });
  cleanup.add('stop clusters', () => cluster.stop());
  const listen = `127.0.0.1:${await freePort()}`;
  const metrics = `127.0.0.1:${await freePort()}`;
  const file = path.join(dir, 'proxy.yaml');
  fs.writeFileSync(
    file,
    [
      `listen: ${listen}`,
      `metrics: { listen: "${metrics}" }`,
      `coordinator: { endpoints: [${cluster.coordinator.clientUrl}] }`,
      'shards:',
      ...cluster.shards.map((s) => `  - { name: ${s.name}, endpoints: [${s.clientUrl}] }`),
      'partitions: 64',
      'memberLimits: { maxTxnOps: 1024, maxRequestBytes: 4194304 }',
      'log: { level: warn }',
      '',
    ].join('\n'),
  );
  const cli = runCli(['serve', '--config', file]);
  assert.equal(await cli.ready, listen);
  for (let i = 0; i < 10; i++) {
    const r = await etcdctl(listen, ['put', `serve/k${i}`, `v${i}`]);
    assert.equal(r.stdout.trim(), 'OK', r.stderr);
  }
  const count = await etcdctl(listen, ['get', 'serve/', '--prefix', '--keys-only']);
  assert.equal(count.stdout.split('\n').filter((l) => l.startsWith('serve/')).length, 10);

  await cluster.shards[0]!.kill();
  await waitFor(async () => (await grpcHealth(listen)) === 'NOT_SERVING', 15_000, 'gRPC health NOT_SERVING with a shard down');
  const down = await httpGet(`http://${metrics}/health`);
  assert.equal(down.status, 503);
  assert.equal(JSON.parse(down.body).health, 'false');

  await cluster.shards[0]!.restart();
  await waitFor(async () => (await grpcHealth(listen)) === 'SERVING', 20_000, 'gRPC health SERVING again');
  assert.equal((await httpGet(`http://${metrics}/health`)).status, 200);

  cli.child.kill('SIGTERM');
  assert.equal(await cli.exited, 0);
});
