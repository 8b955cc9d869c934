/**
 * etcd's own Go client example for auth (clientv3 ExampleAuth, from Debian's
 * golang-etcd-server-dev) run against the proxy: it adds root and a user with a role on
 * [foo, zoo), enables auth, writes as the user, is refused a txn outside its range, reads the
 * role as root and disables auth. Its printed output must be the example's "// Output:".
 * scripts/build-example-auth.sh builds it once (offline, GOPATH mode) into e2e/.cache/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { metaPerFile } from './harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const BIN = path.join(here, '.cache', 'example-auth');
const EXPECTED = path.join(here, '.cache', 'example-auth.expected');
const file = metaPerFile({ tag: 'auth-go', shards: 2, proxies: 1 });

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: root, env: { ...process.env, ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

test('auth: the Go clientv3 ExampleAuth passes through the proxy', { timeout: 600_000 }, async () => {
  const built = await run('bash', ['scripts/build-example-auth.sh'], {}, 540_000);
  // Not skipped: a machine that cannot build it fails here, saying why.
  assert.equal(built.code, 0, `could not build the Go example (needs golang-go and golang-etcd-server-dev, or root to install them):\n${built.stderr}`);
  const { meta } = await file.started();
  const out = await run(BIN, [], { ENDPOINTS: meta.addresses[0]! }, 60_000);
  assert.equal(out.code, 0, `ExampleAuth failed:\n${out.stdout}\n${out.stderr}`);
  assert.equal(out.stdout.trim(), fs.readFileSync(EXPECTED, 'utf8').trim());
});
