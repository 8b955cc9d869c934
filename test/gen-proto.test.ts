/**
 * src/etcd/gen/ is what `npm run gen:proto` makes from proto/ (scripts/gen-proto.sh --check; it
 * installs protoc when missing): a .proto edited without regenerating fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('generated codecs are up to date with proto/', { timeout: 600_000 }, () => {
  const run = spawnSync('bash', ['scripts/gen-proto.sh', '--check'], { cwd: root, encoding: 'utf8' });
  assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /up to date/);
});
