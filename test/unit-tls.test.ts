/**
 * Certificate files re-read on change (src/tls/cert-files.ts): a changed, valid pair is passed on;
 * a mismatched or half-written one is not (the previous pair stays in use); unchanged reads are
 * not passed on again. Test certificates come from scripts/make-test-certs.sh (openssl).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { CheckedCertificateProvider, CERT_RELOAD_INTERVAL_MS } from '../src/tls/cert-files.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metaproxy-tls-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const script = path.resolve(import.meta.dirname, '..', 'scripts', 'make-test-certs.sh');
const run = (...args: string[]) => assert.equal(spawnSync('bash', [script, dir, ...args]).status, 0);
const f = (n: string) => path.join(dir, n);
const serial = (pem: Buffer) => new X509Certificate(pem).serialNumber;

test('a renewed pair is passed on once; a mismatched pair never; a bad file fails the start', { timeout: 30_000 }, async () => {
  run();
  run('issue', 'next', 'next');
  fs.copyFileSync(f('server.pem'), f('live.pem'));
  fs.copyFileSync(f('server-key.pem'), f('live-key.pem'));
  const provider = new CheckedCertificateProvider({ certFile: f('live.pem'), keyFile: f('live-key.pem') }, 'test');
  const seen: string[] = [];
  let notify: (() => void) | null = null;
  const listener = (u: { certificate: Buffer } | null) => {
    if (u) seen.push(serial(u.certificate));
    notify?.();
  };
  provider.addIdentityCertificateListener(listener);
  try {
    const next = () => new Promise<void>((r) => (notify = r));
    await next();
    assert.deepEqual(seen, [serial(fs.readFileSync(f('server.pem')))], 'the first pair at once');

    // Half-way through a renewal: the new certificate with the old key. Not passed on.
    fs.copyFileSync(f('next.pem'), f('live.pem'));
    await new Promise((r) => setTimeout(r, 2.5 * CERT_RELOAD_INTERVAL_MS));
    assert.equal(seen.length, 1, 'a mismatched pair is not served');

    fs.copyFileSync(f('next-key.pem'), f('live-key.pem'));
    await next();
    assert.deepEqual(seen.slice(1), [serial(fs.readFileSync(f('next.pem')))], 'the completed renewal');
    await new Promise((r) => setTimeout(r, 1.5 * CERT_RELOAD_INTERVAL_MS));
    assert.equal(seen.length, 2, 'unchanged files are not passed on again');
  } finally {
    provider.removeIdentityCertificateListener(listener);
  }
  assert.throws(() => new CheckedCertificateProvider({ certFile: f('ca.pem'), keyFile: f('server-key.pem') }, 'test'), /test: cannot use .*ca\.pem/);
});
