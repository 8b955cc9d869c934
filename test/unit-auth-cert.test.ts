/**
 * The client certificate's common name as the user (etcd's --client-cert-auth): a grpc-js TLS
 * server that verifies client certificates, the guard resolving who calls. Certificates are
 * made at run time with openssl (nothing private is committed).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { RequestGuard } from '../src/auth/guard.js';
import { AuthStore } from '../src/auth/store.js';
import type { AuthInfo } from '../src/auth/authorize.js';
import { etcdService } from '../src/etcd/proto.js';
import { Upstream } from '../src/upstream/upstream.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-cert-'));
const f = (name: string) => path.join(dir, name);
const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

function makeCerts(): void {
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=test-ca');
  const leaf = (name: string, cn: string, ext: string) => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    fs.writeFileSync(f(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '1', '-extfile', f(`${name}.ext`));
  };
  leaf('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'alice', 'extendedKeyUsage=clientAuth\n');
}

let server: grpc.Server;
let port = 0;
const seen: Array<AuthInfo | null | string> = [];

before(async () => {
  makeCerts();
  // The guard over an auth store that is never started: auth off, no tokens involved.
  const store = new AuthStore(new Upstream({ name: 'coordinator', endpoints: ['http://127.0.0.1:1'], requestTimeoutMs: 100 }), pino({ level: 'silent' }));
  const guard = new RequestGuard({
    store,
    tokens: { issue: async () => '', info: async () => null, forget: async () => undefined, close: () => undefined },
    leaseKeys: async () => [],
    validate: () => true,
    logger: pino({ level: 'silent' }),
  });
  server = new grpc.Server();
  server.addService(etcdService('Maintenance').service, {
    Status: (call: grpc.ServerUnaryCall<object, object>, cb: grpc.sendUnaryData<object>) => {
      guard.who(call).then(
        (who) => {
          seen.push(who);
          cb(null, {});
        },
        (err: Error) => {
          seen.push(err.message);
          cb(null, {});
        },
      );
    },
  });
  const creds = grpc.ServerCredentials.createSsl(fs.readFileSync(f('ca.crt')), [{ private_key: fs.readFileSync(f('server.key')), cert_chain: fs.readFileSync(f('server.crt')) }], true);
  port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
});

after(() => {
  server?.forceShutdown();
  fs.rmSync(dir, { recursive: true, force: true });
});

function status(md: grpc.Metadata): Promise<void> {
  const Maintenance = etcdService('Maintenance');
  const creds = grpc.credentials.createSsl(fs.readFileSync(f('ca.crt')), fs.readFileSync(f('client.key')), fs.readFileSync(f('client.crt')));
  const client = new Maintenance(`localhost:${port}`, creds);
  return new Promise((resolve, reject) => {
    (client as unknown as { Status(req: object, md: grpc.Metadata, cb: (err: Error | null) => void): void }).Status({}, md, (err) => {
      client.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

test('a verified client certificate makes its common name the user', async () => {
  await status(new grpc.Metadata());
  assert.deepEqual(seen.pop(), { user: 'alice', revision: 1n });
});

test('a token, when given, wins over the certificate; requests relayed by the gRPC gateway do not use it', async () => {
  const withToken = new grpc.Metadata();
  withToken.set('token', 'abcdefghijklmnop.1');
  await status(withToken);
  assert.equal(seen.pop(), 'etcdserver: invalid auth token');
  const gateway = new grpc.Metadata();
  gateway.set('grpcgateway-accept', 'application/json');
  await status(gateway);
  assert.equal(seen.pop(), null);
});
