/**
 * TLS on both sides, against real etcd processes: every member and the coordinator serve
 * https:// with --client-cert-auth (a test CA made at run time by scripts/make-test-certs.sh),
 * the proxy reaches them with its client certificate, and serves its own clients TLS with
 * client certificate auth:
 * - etcdctl with --cacert/--cert/--key works through the proxy;
 * - clients without a certificate, with one from another CA, or in plain text are refused;
 * - a certificate file replaced on disk is served to new connections without a restart;
 * - the metrics/health listener serves HTTPS with the same rules;
 * - with auth on, a client certificate's common name is the user;
 * - a second replica forwards writes to the shards' owner over TLS.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  RawClient,
  etcdctl,
  issueTestCert,
  makeTestCerts,
  metaPerFile,
  metricTotal,
  tempDir,
  tlsCredentials,
  waitFor,
  type Meta,
  type TestCerts,
} from './harness.js';
import { Cleanup } from './harness.js';
import { Code, b } from './grpc-raw.js';
import { startMetricsServer } from '../src/http/server.js';
import { collectStatus } from '../src/status/collect.js';
import { allHealthy } from '../src/status/report.js';

const SETUP_TIMEOUT = 120_000;
const T = 60_000;

const certsCleanup = new Cleanup();
const certs: TestCerts = makeTestCerts(certsCleanup, 'tls');
const stranger: TestCerts = makeTestCerts(certsCleanup, 'tls-stranger');
/** The proxy's own certificate files: a copy, so that replacing them leaves the etcds' alone. */
const proxyDir = tempDir(certsCleanup, 'tls-proxy');
const proxyCert = path.join(proxyDir, 'proxy.pem');
const proxyKey = path.join(proxyDir, 'proxy-key.pem');
fs.copyFileSync(certs.cert, proxyCert);
fs.copyFileSync(certs.key, proxyKey);
const clientTls = { certFile: proxyCert, keyFile: proxyKey, trustedCaFile: certs.ca, clientCertAuth: true };

const suite = metaPerFile({ tag: 'tls', shards: 2, tls: certs, configure: (cfg) => void Object.assign(cfg, { clientTls, advertiseClientUrls: [`https://${cfg.listen}`] }) }, SETUP_TIMEOUT);
suite.cleanup.add('remove test certificates', () => certsCleanup.run());

let meta: Meta;
let address: string;
let client: RawClient;

before(async () => {
  ({ meta } = await suite.started());
  address = meta.addresses[0]!;
  client = new RawClient(address, tlsCredentials(certs));
  suite.cleanup.add('close TLS client', () => client.close());
}, { timeout: SETUP_TIMEOUT });

const tlsArgs = (c: TestCerts, withCert = true) => ['--cacert', c.ca, ...(withCert ? ['--cert', c.clientCert, '--key', c.clientKey] : [])];

test('etcdctl with --cacert/--cert/--key through the proxy; the data lands in the TLS members', { timeout: T }, async () => {
  const put = await etcdctl(`https://${address}`, [...tlsArgs(certs), 'put', 'tls/k', 'v1']);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(put.stdout.trim(), 'OK');
  const get = await etcdctl(`https://${address}`, [...tlsArgs(certs), 'get', 'tls/k']);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(get.stdout, 'tls/k\nv1\n');
  const r = await client.kv('Range', { key: b('tls/k') });
  assert.ok(r.ok);
  assert.equal(r.res.kvs[0].value.toString(), 'v1');
  // Read straight from the members (https, client certificate): the key is in one of them.
  assert.ok((await meta.shardOf('tls/k')) >= 0);
  const members = await client.callOrThrow('Cluster', 'MemberList', {});
  assert.ok(members.members[0].clientURLs.every((u: string) => u.startsWith('https://')), 'advertised as https');
});

test('clients without a trusted certificate are refused', { timeout: T }, async () => {
  const attempts: Array<[string, grpc.ChannelCredentials]> = [
    ['no client certificate', tlsCredentials(certs, null)],
    ['a certificate from another CA', grpc.credentials.createSsl(fs.readFileSync(certs.ca), fs.readFileSync(stranger.clientKey), fs.readFileSync(stranger.clientCert))],
    ['plain text', grpc.credentials.createInsecure()],
  ];
  for (const [what, creds] of attempts) {
    const c = new RawClient(address, creds);
    try {
      const r = await c.kv('Put', { key: b(`tls/refused`), value: b(what) }, { deadlineMs: 3000 });
      assert.equal(r.ok, false, `${what}: must be refused`);
      assert.ok(!r.ok && (r.code === Code.UNAVAILABLE || r.code === Code.DEADLINE_EXCEEDED), `${what}: ${JSON.stringify(r)}`);
    } finally {
      c.close();
    }
  }
  const noCert = await etcdctl(`https://${address}`, [...tlsArgs(certs, false), 'put', 'tls/refused', 'x'], { timeoutMs: 20_000 });
  assert.notEqual(noCert.code, 0, 'etcdctl without --cert is refused');
  const r = await client.kv('Range', { key: b('tls/refused') });
  assert.ok(r.ok);
  assert.equal(r.res.kvs.length, 0, 'nothing written by a refused client');
});

/** The serial number of the certificate the proxy presents to a new connection. */
function servedSerial(): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host, port, ca: fs.readFileSync(certs.ca), cert: fs.readFileSync(certs.clientCert), key: fs.readFileSync(certs.clientKey), ALPNProtocols: ['h2'], servername: 'localhost' },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.end();
        resolve(serial);
      },
    );
    socket.once('error', reject);
  });
}

test('a certificate replaced on disk is served to new connections without a restart', { timeout: T }, async () => {
  const before = await servedSerial();
  assert.equal(before, new X509Certificate(fs.readFileSync(proxyCert)).serialNumber);
  const next = issueTestCert(certs, 'proxy-next', 'etcd-metaproxy renewed');
  const nextSerial = new X509Certificate(fs.readFileSync(next.cert)).serialNumber;
  assert.notEqual(nextSerial, before);
  // As a renewal tool does: new files renamed into place.
  fs.copyFileSync(next.key, `${proxyKey}.new`);
  fs.copyFileSync(next.cert, `${proxyCert}.new`);
  fs.renameSync(`${proxyKey}.new`, proxyKey);
  fs.renameSync(`${proxyCert}.new`, proxyCert);
  await waitFor(async () => (await servedSerial()) === nextSerial, 20_000, 'the renewed certificate to be served');
  // New clients work with it; the established one still does.
  const fresh = new RawClient(address, tlsCredentials(certs));
  try {
    assert.ok((await fresh.kv('Put', { key: b('tls/after-renewal'), value: b('x') })).ok);
  } finally {
    fresh.close();
  }
  assert.ok((await client.kv('Range', { key: b('tls/after-renewal') })).ok);
});

test('the metrics/health listener serves HTTPS and requires a client certificate with client-cert-auth', { timeout: T }, async () => {
  const server = await startMetricsServer('127.0.0.1:0', { upstreams: async () => [], ready: () => true, cacheNotReady: () => null }, clientTls);
  try {
    const get = (withCert: boolean) =>
      new Promise<number>((resolve, reject) => {
        const req = https.get(
          `https://${server.address}/metrics`,
          { ca: fs.readFileSync(certs.ca), ...(withCert ? { cert: fs.readFileSync(certs.clientCert), key: fs.readFileSync(certs.clientKey) } : {}), agent: false },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.once('error', reject);
      });
    assert.equal(await get(true), 200);
    await assert.rejects(get(false), 'no client certificate: refused');
  } finally {
    await server.close();
  }
});

test('status reads the TLS clusters with the configured CA and client certificate', { timeout: T }, async () => {
  const upstream = { caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey };
  const report = await collectStatus({
    coordinatorEndpoints: [meta.cluster.coordinator.clientUrl],
    shards: Object.fromEntries(meta.cluster.shards.map((s) => [s.name, [s.clientUrl]])),
    timeoutMs: 3000,
    tls: () => upstream,
  });
  assert.ok(allHealthy(report), JSON.stringify(report));
  const without = await collectStatus({ coordinatorEndpoints: [meta.cluster.coordinator.clientUrl], timeoutMs: 2000 });
  assert.equal(allHealthy(without), false, 'without the client certificate the members refuse');

  // The CLI with a configuration file naming the certificates; it exits when done (no watcher left running).
  const file = path.join(proxyDir, 'status.yaml');
  fs.writeFileSync(
    file,
    JSON.stringify({
      coordinator: { endpoints: [meta.cluster.coordinator.clientUrl] },
      shards: meta.cluster.shards.map((s) => ({ name: s.name, endpoints: [s.clientUrl] })),
      upstream: upstream,
    }),
  );
  const main = path.resolve(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
  const cli = spawnSync(process.execPath, ['--import', 'tsx', main, 'status', '--config', file], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(cli.status, 0, `${cli.stdout}\n${cli.stderr}`);
  assert.match(cli.stdout, /https:\/\/127\.0\.0\.1:\d+ +\| healthy/);
});

test("with auth on, a client certificate's common name is the user (etcd's --client-cert-auth)", { timeout: T }, async () => {
  const alice = issueTestCert(certs, 'alice', 'alice');
  const asAlice = new RawClient(address, tlsCredentials(certs, alice));
  suite.cleanup.add('close alice', () => asAlice.close());
  const ok = async (what: string, p: Promise<{ ok: boolean; details?: string }>) => {
    const r = await p;
    assert.ok(r.ok, `${what}: ${r.details ?? ''}`);
  };
  await ok('add root', client.call('Auth', 'UserAdd', { name: 'root', password: 'rootpw' }));
  await ok('root role', client.call('Auth', 'UserGrantRole', { user: 'root', role: 'root' }));
  await ok('add alice', client.call('Auth', 'UserAdd', { name: 'alice', password: 'alicepw' }));
  await ok('add role', client.call('Auth', 'RoleAdd', { name: 'cn-writer' }));
  await ok('grant', client.call('Auth', 'RoleGrantPermission', { name: 'cn-writer', perm: { permType: 2, key: b('cn/'), range_end: b('cn0') } }));
  await ok('alice role', client.call('Auth', 'UserGrantRole', { user: 'alice', role: 'cn-writer' }));
  await ok('enable', client.call('Auth', 'AuthEnable', {}));
  try {
    // No token: the verified certificate's common name is the user.
    await ok('alice writes under cn/', asAlice.kv('Put', { key: b('cn/x'), value: b('1') }));
    const denied = await asAlice.kv('Put', { key: b('other/x'), value: b('1') });
    assert.deepEqual(denied.ok ? 'accepted' : { code: Code[denied.code], details: denied.details }, { code: 'PERMISSION_DENIED', details: 'etcdserver: permission denied' });
    await ok('the root certificate writes anywhere', client.kv('Put', { key: b('other/x'), value: b('root') }));
  } finally {
    await ok('disable', client.call('Auth', 'AuthDisable', {}));
  }
});

test('a second replica forwards its writes to the owner over TLS (the replicas present their certificates)', { timeout: T }, async () => {
  const second = await meta.addProxy();
  const viaSecond = new RawClient(second.address, tlsCredentials(certs));
  suite.cleanup.add('close second', () => viaSecond.close());
  // The first replica owns every shard: these writes are forwarded to it.
  const forwarded = await metricTotal('etcd_metaproxy_forwarded_writes_total', { code: 'OK' });
  for (let i = 0; i < 6; i++) {
    const r = await viaSecond.kv('Put', { key: b(`fw/${i}`), value: b('v') });
    assert.ok(r.ok, r.ok ? '' : r.details);
  }
  assert.equal((await metricTotal('etcd_metaproxy_forwarded_writes_total', { code: 'OK' })) - forwarded, 6, 'forwarded to the owner');
  const got = await client.kv('Range', { key: b('fw/'), range_end: b('fw0'), count_only: true });
  assert.ok(got.ok);
  assert.equal(String(got.res.count), '6');
});
