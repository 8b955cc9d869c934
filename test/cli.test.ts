import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../src/cli/main.js';
import { parseCommand, UsageError } from '../src/cli/args.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function runMain(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

test('parseCommand: local defaults and flags', () => {
  assert.deepEqual(parseCommand(['local']), {
    kind: 'local', shards: 3, listen: '127.0.0.1:2379', dataDir: './.data/local', metrics: '127.0.0.1:9379', logLevel: 'info',
  });
  assert.deepEqual(parseCommand(['local', '--shards', '5', '--listen=127.0.0.1:0', '--data-dir', '/tmp/x', '--metrics', '']), {
    kind: 'local', shards: 5, listen: '127.0.0.1:0', dataDir: '/tmp/x', metrics: '', logLevel: 'info',
  });
  assert.throws(() => parseCommand(['local', '--shards', 'two']), UsageError);
  assert.throws(() => parseCommand(['local', '--shards', '0']), UsageError);
  assert.throws(() => parseCommand(['local', '--bogus']), UsageError);
  assert.throws(() => parseCommand(['local', 'extra']), UsageError);
});

test('parseCommand: serve passes config flags through', () => {
  assert.deepEqual(parseCommand(['serve', '--config', 'a.yaml', '--listen', '127.0.0.1:1', '--limits-max-txn-ops=7']), {
    kind: 'serve', configFile: 'a.yaml', configArgs: ['--listen', '127.0.0.1:1', '--limits-max-txn-ops', '7'],
  });
  assert.deepEqual(parseCommand(['serve']), { kind: 'serve', configFile: undefined, configArgs: [] });
  // etcd's TLS flag names; --client-cert-auth may stand alone, as etcd's boolean flags.
  assert.deepEqual(parseCommand(['serve', '--client-cert-auth', '--cert-file', 'c.pem', '--key-file=k.pem', '--trusted-ca-file', 'ca.pem']), {
    kind: 'serve',
    configFile: undefined,
    configArgs: ['--cert-file', 'c.pem', '--key-file', 'k.pem', '--trusted-ca-file', 'ca.pem', '--client-cert-auth', 'true'],
  });
  assert.throws(() => parseCommand(['serve', '--lisen', 'x']), UsageError);
  assert.deepEqual(parseCommand(['serve', '--help']), { kind: 'help' });
});

test('help, version, unknown command', async () => {
  const help = await runMain('--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /Usage: etcd-metaproxy <command>/);
  assert.match(help.out, /ETCD_METAPROXY_COORDINATOR_ENDPOINTS/);
  const version = await runMain('--version');
  assert.equal(version.code, 0);
  assert.match(version.out, /^etcd-metaproxy \d+\.\d+\.\d+\n$/);
  const unknown = await runMain('frobnicate');
  assert.equal(unknown.code, 2);
  assert.equal(unknown.out, '');
  assert.match(unknown.err, /unknown command "frobnicate"/);
  assert.match(unknown.err, /Usage:/);
  assert.equal((await runMain()).code, 2);
});

test('serve: configuration errors exit 2 with the offending key', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metaproxy-cli-'));
  try {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'coordinator: {endpoints: [127.0.0.1:1]}\nshards:\n  - {name: a, endpoints: [127.0.0.1:2]}\n  - {name: b, endpoints: []}\n');
    const bad = await runMain('serve', '--config', file);
    assert.equal(bad.code, 2);
    assert.equal(bad.out, '');
    assert.match(bad.err, /config: shards\[1\]\.endpoints: must be a non-empty list of URLs/);
    const missing = await runMain('serve', '--config', path.join(dir, 'nope.yaml'));
    assert.equal(missing.code, 2);
    assert.match(missing.err, /cannot read/);
    const flag = await runMain('serve', '--config', file, '--partitions', 'many');
    assert.equal(flag.code, 2);
    assert.match(flag.err, /config: partitions: must be an integer/);
    const local = await runMain('local', '--listen', 'nowhere');
    assert.equal(local.code, 2);
    assert.match(local.err, /config: listen: must be host:port/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the entry point exits with the code (usage error → 2)', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'nonsense'], { cwd: repo, encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /unknown command/);
});
