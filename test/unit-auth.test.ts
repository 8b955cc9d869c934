/** Auth building blocks: etcd's range-permission semantics, management rules, JWT tokens, options. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { covered } from '../src/auth/perms.js';
import { IntervalTree } from '../src/auth/interval-tree.js';
import * as manage from '../src/auth/manage.js';
import { checkAdmin, checkPut, checkRange } from '../src/auth/authorize.js';
import { decodeState, EMPTY_STATE, encodeState, READ, READWRITE, WRITE, type AuthState } from '../src/auth/state.js';
import { JwtTokens } from '../src/auth/jwt-tokens.js';
import { goDurationSeconds, parseAuthToken } from '../src/config/auth-options.js';

const b = (s: string) => Buffer.from(s);
const iv = (begin: string, end: string) => ({ begin: b(begin), end: b(end) });
function tree(...ivs: Array<{ begin: Buffer; end: Buffer }>): IntervalTree {
  const t = new IntervalTree();
  for (const i of ivs) t.insert(i);
  return t;
}
const NUL = Buffer.from([0]);

test('a single key needs one permission touching it; a range needs its whole interval covered', () => {
  const perms = tree(iv('a', 'c'), iv('c', 'e'), iv('g', 'h'));
  assert.equal(covered(perms, b('b'), b('')), true);
  assert.equal(covered(perms, b('f'), b('')), false);
  assert.equal(covered(perms, b('a'), b('e')), true, 'contiguous [a,c)+[c,e)');
  assert.equal(covered(perms, b('a'), b('f')), false, 'gap at [e,g)');
  assert.equal(covered(perms, b('b'), NUL), false, '"\\0" as range end means +inf');
  assert.equal(covered(tree({ begin: b('x'), end: Buffer.alloc(0) }), b('y'), NUL), true, 'a from-key permission covers every key after it');
});

function withUsers(): AuthState {
  let s = manage.userAdd(EMPTY_STATE, 'root', 'h', false);
  s = manage.userGrantRole(s, 'root', 'root')!;
  s = manage.roleAdd(s, 'r');
  s = manage.roleGrantPermission(s, 'r', { permType: READ, key: b('foo'), rangeEnd: b('zoo') });
  s = manage.roleGrantPermission(s, 'r', { permType: WRITE, key: b('k'), rangeEnd: Buffer.alloc(0) });
  s = manage.userAdd(s, 'u', 'h', false);
  return manage.userGrantRole(s, 'u', 'r')!;
}

test('management follows etcd: revisions, root protections, errors', () => {
  const s = withUsers();
  assert.equal(s.revision, 8n, 'each of the 7 changes bumps the auth revision from 1');
  assert.equal(manage.userGrantRole(s, 'u', 'r'), null, 'granting a held role changes nothing');
  assert.throws(() => manage.userAdd(s, 'u', 'h', false), /user name already exists/);
  assert.throws(() => manage.userAdd(s, '', 'h', false), /user name is empty/);
  assert.throws(() => manage.userGrantRole(s, 'u', 'nope'), /role name not found/);
  const on = manage.authEnable(s)!;
  assert.equal(on.revision, s.revision, 'AuthEnable keeps the revision');
  assert.throws(() => manage.userDelete(on, 'root'), /invalid auth management/);
  assert.throws(() => manage.roleDelete(on, 'root'), /invalid auth management/);
  assert.throws(() => manage.authEnable(manage.userAdd(EMPTY_STATE, 'x', 'h', false)), /root user does not exist/);
  const updated = manage.roleGrantPermission(s, 'r', { permType: READWRITE, key: b('foo'), rangeEnd: b('zoo') });
  assert.equal(updated.roles.get('r')!.perms.length, 2, 'the same range is updated, not added');
  assert.throws(() => manage.roleRevokePermission(s, 'r', b('foo'), b('zz')), /permission is not granted/);
  const round = decodeState(encodeState(on));
  assert.deepEqual(round, on);
});

test('permission checks: old revisions, missing users, root, empty credentials', () => {
  const s = manage.authEnable(withUsers())!;
  assert.doesNotThrow(() => checkRange(s, { user: 'u', revision: s.revision }, b('foo1'), b('')));
  assert.throws(() => checkPut(s, { user: 'u', revision: s.revision }, b('foo1')), /permission denied/);
  assert.doesNotThrow(() => checkPut(s, { user: 'u', revision: s.revision }, b('k')));
  assert.throws(() => checkRange(s, { user: 'u', revision: s.revision - 1n }, b('foo1'), b('')), /revision of auth store is old/);
  assert.throws(() => checkRange(s, null, b('foo1'), b('')), /user name is empty/);
  assert.doesNotThrow(() => checkPut(s, { user: 'root', revision: s.revision }, b('anything')));
  assert.throws(() => checkAdmin(s, { user: 'u', revision: s.revision }), /permission denied/);
  assert.throws(() => checkAdmin(s, { user: 'gone', revision: s.revision }), /user name not found/);
  assert.doesNotThrow(() => checkAdmin(withUsers(), null), 'auth off: no checks');
});

test('JWT tokens carry the user and the auth revision, and expire', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jwt-'));
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(dir, 'priv.pem'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
  fs.writeFileSync(path.join(dir, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  const kind = parseAuthToken(`jwt,pub-key=${dir}/pub.pem,priv-key=${dir}/priv.pem,sign-method=RS256,ttl=5m`);
  assert.equal(kind.kind, 'jwt');
  if (kind.kind !== 'jwt') return;
  assert.equal(kind.ttlSeconds, 300);
  const jwt = new JwtTokens(kind);
  const s = withUsers();
  const token = await jwt.issue(s.users.get('u')!, s);
  assert.deepEqual(await jwt.info(token), { user: 'u', revision: s.revision });
  assert.equal(await jwt.info(`${token}x`), null);
  const verifier = new JwtTokens({ ...kind, privateKeyFile: '' });
  assert.deepEqual(await verifier.info(token), { user: 'u', revision: s.revision }, 'a verify-only replica accepts it');
  await assert.rejects(verifier.issue(s.users.get('u')!, s), /verify-only/);
  const short = new JwtTokens({ ...kind, ttlSeconds: 1 });
  const expiring = await short.issue(s.users.get('u')!, s);
  await new Promise((r) => setTimeout(r, 2100));
  assert.equal(await short.info(expiring), null, 'expired');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('auth options parse as etcd spells them', () => {
  assert.deepEqual(parseAuthToken('simple'), { kind: 'simple' });
  assert.equal(goDurationSeconds('1h30m'), 5400);
  assert.equal(goDurationSeconds('5x'), null);
  assert.throws(() => parseAuthToken('jwt,sign-method=RS256'), /priv-key/);
  assert.throws(() => parseAuthToken('opaque'), /unknown token type/);
  assert.throws(() => parseAuthToken('jwt,ttl=5m,ttl=6m,priv-key=x,sign-method=RS256'), /twice/);
});
