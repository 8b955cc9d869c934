import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startEtcd } from '../src/local/etcd-process.js';
import { startLocalMetaCluster } from '../src/local/meta-cluster.js';
import { freePort, canBind } from '../src/local/ports.js';

const run = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'metaproxy-local-'));
}

async function etcdctl(endpoint: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('etcdctl', ['--endpoints', endpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  return stdout;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!groupAlive(pgid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !groupAlive(pgid);
}

test('freePort returns distinct bindable ports', async () => {
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  assert.equal(new Set(ports).size, ports.length);
  for (const p of ports) assert.ok(await canBind(p), `port ${p} bindable`);
});

test('etcd: put/get, SIGKILL, restart keeps data, stop leaves nothing behind', { timeout: 60_000 }, async () => {
  const dir = tmpDir();
  const etcd = await startEtcd({ name: 'unit', dataDir: path.join(dir, 'd'), unsafeNoFsync: true });
  try {
    assert.match(etcd.clientUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    await etcdctl(etcd.clientUrl, 'put', 'foo', 'bar');
    assert.equal(await etcdctl(etcd.clientUrl, 'get', '--print-value-only', 'foo'), 'bar\n');

    const first = etcd.pid;
    assert.ok(first !== undefined);
    await etcd.kill();
    assert.equal(etcd.pid, undefined);
    assert.ok(await waitGone(first, 5000), 'killed etcd group is gone');

    await etcd.restart();
    const second = etcd.pid;
    assert.ok(second !== undefined && second !== first);
    assert.equal(await etcdctl(etcd.clientUrl, 'get', '--print-value-only', 'foo'), 'bar\n');

    await etcd.stop();
    assert.equal(etcd.pid, undefined);
    assert.ok(!alive(second), 'etcd process gone after stop');
    assert.ok(await waitGone(second, 5000), 'no process of its group remains');
    assert.ok(fs.statSync(path.join(dir, 'd', 'etcd.log')).size > 0, 'log written');
  } finally {
    await etcd.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('etcd: start failure reports the log tail', { timeout: 30_000 }, async () => {
  const dir = tmpDir();
  try {
    await assert.rejects(
      startEtcd({ name: 'bad', dataDir: path.join(dir, 'd'), extraArgs: ['--no-such-flag'] }),
      (err: Error) => /exited during start/.test(err.message) && /no-such-flag/.test(err.message),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Starts an etcd from a child Node process, returns the child and etcd's pid. */
async function etcdFromChild(dataDir: string, then: 'hang' | 'exit'): Promise<{ child: ReturnType<typeof spawn>; etcdPid: number }> {
  const mod = path.join(repo, 'src/local/etcd-process.ts');
  const script = `
    import { startEtcd } from ${JSON.stringify(mod)};
    const e = await startEtcd({ name: 'orphan', dataDir: ${JSON.stringify(dataDir)}, unsafeNoFsync: true });
    process.stdout.write(String(e.pid) + '\\n');
    ${then === 'hang' ? 'setInterval(() => {}, 1000);' : 'setTimeout(() => process.exit(0), 50);'}
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const etcdPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve(Number(line));
    });
    child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
  });
  return { child, etcdPid };
}

test('etcd does not outlive a SIGKILLed parent', { timeout: 60_000 }, async () => {
  const dir = tmpDir();
  try {
    const { child, etcdPid } = await etcdFromChild(path.join(dir, 'd'), 'hang');
    assert.ok(alive(etcdPid));
    child.kill('SIGKILL');
    assert.ok(await waitGone(etcdPid, 10_000), 'watchdog killed etcd after parent SIGKILL');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('etcd does not outlive a parent calling process.exit', { timeout: 60_000 }, async () => {
  const dir = tmpDir();
  try {
    const { child, etcdPid } = await etcdFromChild(path.join(dir, 'd'), 'exit');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    assert.ok(await waitGone(etcdPid, 10_000), 'exit handler killed etcd');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('local meta-cluster: starts in parallel, restarts on the same ports with its data', { timeout: 90_000 }, async () => {
  const dir = tmpDir();
  try {
    const first = await startLocalMetaCluster({ dataDir: dir, shards: 2, unsafeNoFsync: true });
    const urls = [first.coordinator.clientUrl, ...first.shards.map((s) => s.clientUrl)];
    assert.equal(first.shards.length, 2);
    assert.deepEqual(first.shards.map((s) => s.name), ['s1', 's2']);
    await etcdctl(first.shards[1].clientUrl, 'put', 'k', 'v');
    // Members accept bigger txns than etcd's default of 128 ops.
    const ops = Array.from({ length: 200 }, (_, i) => `put k${i} v`).join('\n');
    const txn = await new Promise<string>((resolve, reject) => {
      const p = spawn('etcdctl', ['--endpoints', first.shards[0].clientUrl, 'txn'], { env: { ...process.env, ETCDCTL_API: '3' } });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(out))));
      p.stdin.end(`\n${ops}\n\n\n`);
    });
    assert.match(txn, /SUCCESS/);
    const ports = JSON.parse(fs.readFileSync(path.join(dir, 'ports.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(ports).sort(), ['coordinator', 's1', 's2']);
    const pids = [first.coordinator, ...first.shards].map((e) => e.pid);
    await first.stop();
    for (const pid of pids) assert.ok(pid !== undefined && (await waitGone(pid, 5000)));

    const second = await startLocalMetaCluster({ dataDir: dir, shards: 2, unsafeNoFsync: true });
    try {
      assert.deepEqual([second.coordinator.clientUrl, ...second.shards.map((s) => s.clientUrl)], urls);
      assert.equal(await etcdctl(second.shards[1].clientUrl, 'get', '--print-value-only', 'k'), 'v\n');
    } finally {
      await second.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
