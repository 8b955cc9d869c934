import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { envName, flagName } from '../src/config/schema.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metaproxy-config-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

const YAML = `
listen: 0.0.0.0:23790
coordinator:
  endpoints: [http://10.0.0.1:2379, "10.0.0.2:2379"]
shards:
  - name: a
    endpoints: [http://10.0.1.1:2379/]
  - name: b
    endpoints: ["https://10.0.2.1:2379"]
partitions: 64
namespace: /meta/
limits:
  maxTxnOps: 256
log:
  level: debug
`;

function expectError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `ConfigError expected, got ${String(err)}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

test('YAML file with defaults filled in and endpoints normalised', () => {
  const cfg = loadConfig({ file: file('a.yaml', YAML), env: {} });
  assert.deepEqual(cfg, {
    listen: '0.0.0.0:23790',
    advertiseClientUrls: ['http://0.0.0.0:23790'],
    metrics: { listen: '127.0.0.1:9379' },
    coordinator: { endpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'] },
    shards: [
      { name: 'a', endpoints: ['http://10.0.1.1:2379'] },
      { name: 'b', endpoints: ['https://10.0.2.1:2379'] },
    ],
    partitions: 64,
    routingPrefixSegments: 0,
    namespace: '/meta/',
    limits: { maxTxnOps: 256, maxRequestBytes: 1572864, memoryBudgetBytes: 536870912 },
    memberLimits: { maxTxnOps: 128, maxRequestBytes: 1572864 },
    timeouts: { requestMs: 5000, dialMs: 10000 },
    watch: { historyEvents: 100000, historyBytes: 134217728, maxPendingEvents: 10000, fenceDelayMs: 5, progressNotifyIntervalMs: 600000 },
    cache: { enabled: true, waitMs: 1000, snapshots: 32, snapshotIdleMs: 60000, maxUndoEvents: 20000, loadPageKeys: 10000 },
    ownership: { ttlSec: 3, pollMs: 200, peerUrl: '' },
    auth: { token: 'simple', tokenTtl: 300, bcryptCost: 10 },
    log: { level: 'debug' },
  });
});

test('JSON file', () => {
  const p = file('a.json', JSON.stringify({
    coordinator: { endpoints: ['127.0.0.1:2379'] },
    shards: [{ name: 's1', endpoints: ['127.0.0.1:2479'] }],
    metrics: { listen: '' },
    timeouts: { requestMs: 100 },
  }));
  const cfg = loadConfig({ file: p, env: {} });
  assert.equal(cfg.listen, '127.0.0.1:2379');
  assert.equal(cfg.metrics.listen, '');
  assert.equal(cfg.timeouts.requestMs, 100);
  assert.equal(cfg.partitions, 1024);
  assert.deepEqual(cfg.shards, [{ name: 's1', endpoints: ['http://127.0.0.1:2479'] }]);
});

test('env overrides the file, flags override env', () => {
  const p = file('b.yaml', YAML);
  const env = {
    ETCD_METAPROXY_LISTEN: '127.0.0.1:3000',
    ETCD_METAPROXY_SHARDS: 'x=127.0.0.1:1,127.0.0.1:2;y=http://127.0.0.1:3',
    ETCD_METAPROXY_COORDINATOR_ENDPOINTS: 'http://127.0.0.1:9,127.0.0.1:10',
    ETCD_METAPROXY_LIMITS_MAX_TXN_OPS: '512',
    ETCD_METAPROXY_LOG_LEVEL: 'warn',
  };
  const fromEnv = loadConfig({ file: p, env });
  assert.equal(fromEnv.listen, '127.0.0.1:3000');
  assert.deepEqual(fromEnv.shards, [
    { name: 'x', endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2'] },
    { name: 'y', endpoints: ['http://127.0.0.1:3'] },
  ]);
  assert.deepEqual(fromEnv.coordinator.endpoints, ['http://127.0.0.1:9', 'http://127.0.0.1:10']);
  assert.equal(fromEnv.limits.maxTxnOps, 512);
  assert.equal(fromEnv.log.level, 'warn');
  assert.equal(fromEnv.partitions, 64, 'file value kept where env is silent');

  const fromFlags = loadConfig({
    file: p,
    env,
    args: ['--listen', '127.0.0.1:4000', '--shards=[{"name":"z","endpoints":["127.0.0.1:7"]}]', '--limits-max-txn-ops', '1000', '--advertise-client-urls', 'https://proxy.example:2379'],
  });
  assert.equal(fromFlags.listen, '127.0.0.1:4000');
  assert.deepEqual(fromFlags.advertiseClientUrls, ['https://proxy.example:2379']);
  assert.deepEqual(fromFlags.shards, [{ name: 'z', endpoints: ['http://127.0.0.1:7'] }]);
  assert.equal(fromFlags.limits.maxTxnOps, 1000);
});

test('everything from env alone; JSON object form of shards', () => {
  const cfg = loadConfig({
    env: {
      ETCD_METAPROXY_COORDINATOR_ENDPOINTS: '127.0.0.1:1',
      ETCD_METAPROXY_SHARDS: '{"s1": "127.0.0.1:2,127.0.0.1:3", "s2": ["127.0.0.1:4"]}',
      ETCD_METAPROXY_ROUTING_PREFIX_SEGMENTS: '2',
    },
  });
  assert.deepEqual(cfg.shards.map((s) => s.name), ['s1', 's2']);
  assert.equal(cfg.routingPrefixSegments, 2);
});

test('env and flag names derive from key paths', () => {
  assert.equal(envName('limits.maxTxnOps'), 'ETCD_METAPROXY_LIMITS_MAX_TXN_OPS');
  assert.equal(envName('coordinator.endpoints'), 'ETCD_METAPROXY_COORDINATOR_ENDPOINTS');
  assert.equal(flagName('metrics.listen'), 'metrics-listen');
  assert.equal(flagName('routingPrefixSegments'), 'routing-prefix-segments');
});

test('invalid values name the offending key', () => {
  const p = file('bad.yaml', `
coordinator: { endpoints: [] }
shards:
  - { name: a, endpoints: [127.0.0.1:1] }
  - { name: b, endpoints: [] }
  - { name: a, endpoints: ["ftp://x"] }
partitions: 2
`);
  expectError(
    () => loadConfig({ file: p, env: {} }),
    /^config: /m,
    /config: shards\[1\]\.endpoints: must be a non-empty list of URLs/,
    /config: coordinator\.endpoints: must be a non-empty list of URLs/,
    /config: shards\[2\]\.name: duplicate shard name "a"/,
    /config: shards\[2\]\.endpoints\[0\]: must be an http\(s\):\/\/ URL/,
    /config: partitions: must be at least the number of shards \(3\)/,
  );
  const base = 'coordinator: {endpoints: [127.0.0.1:1]}\nshards: [{name: a, endpoints: [127.0.0.1:2]}]\n';
  expectError(() => loadConfig({ file: file('p.yaml', `${base}partitions: 0\n`), env: {} }), /config: partitions: must be an integer in \[1, 65536\]/);
  expectError(() => loadConfig({ file: file('l.yaml', `${base}listen: nohost\n`), env: {} }), /config: listen: must be host:port/);
  expectError(() => loadConfig({ file: file('v.yaml', `${base}log: {level: loud}\n`), env: {} }), /config: log\.level: must be one of/);
  expectError(() => loadConfig({ file: file('s.yaml', 'coordinator: {endpoints: [127.0.0.1:1]}\nshards: []\n'), env: {} }), /config: shards: must be a non-empty list/);
  expectError(() => loadConfig({ file: file('d.yaml', `coordinator: {endpoints: [127.0.0.1:1]}\nshards: [{name: a, endpoints: [127.0.0.1:1]}]\n`), env: {} }), /config: shards\[0\]\.endpoints: http:\/\/127\.0\.0\.1:1 is also used by coordinator\.endpoints/);
  expectError(() => loadConfig({ env: { ETCD_METAPROXY_SHARDS: 'garbage' } }), /config: shards: must be a non-empty list/);
});

test('unknown keys are rejected', () => {
  const base = 'coordinator: {endpoints: [127.0.0.1:1]}\nshards: [{name: a, endpoints: [127.0.0.1:2]}]\n';
  expectError(() => loadConfig({ file: file('u1.yaml', `${base}listn: 127.0.0.1:1\n`), env: {} }), /config: listn: unknown key/);
  expectError(() => loadConfig({ file: file('u2.yaml', `${base}limits: {maxTxnOp: 5}\n`), env: {} }), /config: limits\.maxTxnOp: unknown key/);
  expectError(() => loadConfig({ file: file('u3.yaml', `coordinator: {endpoints: [127.0.0.1:1]}\nshards: [{name: a, endpoint: [127.0.0.1:2]}]\n`), env: {} }), /config: shards\[0\]\.endpoint: unknown key/);
  expectError(() => loadConfig({ args: ['--no-such-flag', 'x'], env: {} }), /config: .*--no-such-flag/);
});

test('unreadable and malformed files', () => {
  expectError(() => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} }), /config: cannot read .*missing\.yaml: ENOENT/);
  expectError(() => loadConfig({ file: file('broken.yaml', 'shards: [\n'), env: {} }), /config: .*broken\.yaml: /);
  expectError(() => loadConfig({ file: file('broken.json', '{"shards": '), env: {} }), /config: .*broken\.json: /);
  expectError(() => loadConfig({ file: file('list.yaml', '- 1\n- 2\n'), env: {} }), /top level must be a mapping/);
});

test("TLS: etcd's flag names for client TLS, upstream TLS per cluster or for all", () => {
  const pem = file('x.pem', 'not checked here');
  const other = file('y.pem', 'not checked here');
  const base = ['--coordinator-endpoints', 'https://10.0.0.1:2379', '--shards', 'a=https://10.0.1.1:2379;b=http://10.0.2.1:2379'];
  const cfg = loadConfig({
    args: [...base, '--cert-file', pem, '--key-file', pem, '--trusted-ca-file', other, '--client-cert-auth', '--upstream-ca-file', other, '--upstream-cert-file', pem, '--upstream-key-file', pem],
    env: {},
  });
  assert.deepEqual(cfg.clientTls, { certFile: pem, keyFile: pem, trustedCaFile: other, clientCertAuth: true });
  assert.deepEqual(cfg.advertiseClientUrls, ['https://127.0.0.1:2379'], 'advertised as https by default');
  assert.deepEqual(cfg.coordinator.tls, { caFile: other, certFile: pem, keyFile: pem });
  assert.deepEqual(cfg.shards[0]!.tls, { caFile: other, certFile: pem, keyFile: pem });
  assert.equal(flagName('clientCertAuth'), 'client-cert-auth');
  assert.equal(envName('trustedCaFile'), 'ETCD_METAPROXY_TRUSTED_CA_FILE');

  // Environment, and a per-cluster override in the file.
  const yaml = file(
    'tls.yaml',
    `coordinator:\n  endpoints: [https://10.0.0.1:2379]\n  caFile: ${pem}\nshards:\n  - name: a\n    endpoints: [https://10.0.1.1:2379]\n    caFile: ${pem}\n    certFile: ${other}\n    keyFile: ${other}\n  - name: b\n    endpoints: [https://10.0.2.1:2379]\n`,
  );
  const fromFile = loadConfig({ file: yaml, env: { ETCD_METAPROXY_CERT_FILE: pem, ETCD_METAPROXY_KEY_FILE: pem, ETCD_METAPROXY_UPSTREAM_CA_FILE: other } });
  assert.deepEqual(fromFile.clientTls, { certFile: pem, keyFile: pem, trustedCaFile: '', clientCertAuth: false });
  assert.deepEqual(fromFile.coordinator.tls, { caFile: pem, certFile: '', keyFile: '' });
  assert.deepEqual(fromFile.shards[0]!.tls, { caFile: pem, certFile: other, keyFile: other });
  assert.deepEqual(fromFile.shards[1]!.tls, { caFile: other, certFile: '', keyFile: '' }, 'upstream.* for clusters without their own');
  assert.equal(loadConfig({ args: base, env: {} }).clientTls, undefined, 'no TLS by default');
});

test('TLS: inconsistent or unreadable settings name their key', () => {
  const pem = file('z.pem', 'x');
  const base = ['--coordinator-endpoints', 'https://10.0.0.1:2379', '--shards', 'a=https://10.0.1.1:2379'];
  expectError(() => loadConfig({ args: [...base, '--cert-file', pem], env: {} }), /keyFile: certFile and keyFile must be set together/);
  expectError(() => loadConfig({ args: [...base, '--client-cert-auth'], env: {} }), /clientCertAuth: needs certFile and keyFile/);
  expectError(() => loadConfig({ args: [...base, '--cert-file', pem, '--key-file', pem, '--client-cert-auth=true'], env: {} }), /clientCertAuth: needs trustedCaFile/);
  expectError(() => loadConfig({ args: [...base, '--cert-file', path.join(dir, 'missing.pem'), '--key-file', pem], env: {} }), /certFile: cannot read .*missing\.pem: ENOENT/);
  expectError(() => loadConfig({ args: [...base, '--client-cert-auth=maybe'], env: {} }), /clientCertAuth: must be true or false/);
  expectError(() => loadConfig({ args: [...base, '--upstream-key-file', pem], env: {} }), /upstream.certFile: certFile and keyFile must be set together/);
});
