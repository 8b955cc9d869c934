/**
 * etcd's Auth through the proxy, differentially: the same users, roles, grants and requests
 * against a plain etcd with auth (the oracle) and against the proxy; the same answers (gRPC code
 * and message, and the parts of responses that do not depend on revisions or ids). Then the
 * proxy-only parts: a token issued by one replica used on the other, AuthStatus, and etcdctl's
 * user/role/auth commands with --user against both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { etcdctl, metaPerFile, waitFor } from './harness.js';
import { rng } from '../test/helpers/rng.js';
import { b, prefixEnd, RawClient, type CallResult } from './grpc-raw.js';

// A third replica, added by the JWT test, signs JWT tokens with a key made here.
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-jwt-'));
fs.writeFileSync(path.join(keyDir, 'priv.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }));
const file = metaPerFile({
  tag: 'auth',
  shards: 1, // one shard: write txns over any keys
  proxies: 2,
  oracleName: 'auth-oracle',
  configure: (cfg, i) => {
    if (i === 2) cfg.auth = { token: `jwt,priv-key=${path.join(keyDir, 'priv.pem')},sign-method=RS256,ttl=5m`, tokenTtl: 300, bcryptCost: 10 };
    if (i === 3) cfg.auth = { token: 'simple', tokenTtl: 3, bcryptCost: 4 };
  },
});
file.cleanup.add('remove the JWT key', () => fs.rmSync(keyDir, { recursive: true, force: true }));
const TIMEOUT = 240_000;

type Msg = Record<string, unknown>;
type Tokens = Map<string, string>;

interface Side {
  name: string;
  client: RawClient;
  address: string;
  tokens: Tokens;
}

/** What must match between the two sides: error code and message, or the answer's projection. */
function outcome(r: CallResult, project: (res: Msg) => unknown): unknown {
  return r.ok ? { ok: project(r.res as Msg) } : { code: grpc.status[r.code], details: r.details };
}

const nothing = () => 'ok';
const kvs = (res: Msg) => ((res.kvs as Array<{ key: Buffer; value: Buffer }>) ?? []).map((kv) => `${kv.key.toString()}=${kv.value.toString()}`);

async function both(sides: Side[], what: string, call: (s: Side) => Promise<CallResult>, project: (res: Msg) => unknown = nothing): Promise<unknown> {
  const [o, p] = await Promise.all(sides.map(async (s) => outcome(await call(s), project)));
  assert.deepEqual(p, o, `${what}: proxy answered ${JSON.stringify(p)}, etcd ${JSON.stringify(o)}`);
  return o;
}

function tokenOf(s: Side, user: string | null): string | undefined {
  if (user === null) return undefined;
  if (user === 'bogus') return 'bogusTokenXYZabc.1';
  const t = s.tokens.get(user);
  assert.ok(t, `${s.name}: no token for ${user}`);
  return t;
}

/** A watch create on one stream; resolves with the first response (created or canceled). */
function watchCreate(c: RawClient, key: Buffer, rangeEnd: Buffer, token?: string): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    if (token !== undefined) md.set('token', token);
    const stream = (c.service('Watch') as unknown as { Watch(md: grpc.Metadata): grpc.ClientDuplexStream<Msg, Msg> }).Watch(md);
    const timer = setTimeout(() => {
      stream.cancel();
      reject(new Error('no watch response'));
    }, 10_000);
    stream.on('data', (res: Msg) => {
      clearTimeout(timer);
      stream.cancel();
      resolve(res);
    });
    stream.on('error', () => undefined);
    stream.write({ create_request: { key, range_end: rangeEnd } });
  });
}

/** The first message of a Snapshot stream, or its error. */
function snapshotFirst(c: RawClient, token?: string): Promise<CallResult> {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    if (token !== undefined) md.set('token', token);
    const stream = (c.service('Maintenance') as unknown as { Snapshot(req: Msg, md: grpc.Metadata): grpc.ClientReadableStream<Msg> }).Snapshot({}, md);
    stream.on('data', () => {
      stream.cancel();
      resolve({ ok: true, res: {} });
    });
    stream.on('error', (err: grpc.ServiceError) => resolve({ ok: false, code: err.code, details: err.details }));
  });
}

test('auth: the same answers as etcd for users, roles, permissions and every kind of request', { timeout: TIMEOUT }, async () => {
  const { clients, oracle, meta } = await file.started();
  assert.ok(oracle);
  const sides: Side[] = [
    { name: 'etcd', client: oracle.client, address: oracle.address, tokens: new Map() },
    { name: 'proxy', client: clients[0]!, address: meta.addresses[0]!, tokens: new Map() },
  ];
  const auth = (method: string, req: Msg, user: string | null = null) => (s: Side) => s.client.call('Auth', method, req, { token: tokenOf(s, user) });
  const kv = (method: string, req: Msg, user: string | null) => (s: Side) => s.client.call('KV', method, req, { token: tokenOf(s, user) });
  const login = async (user: string, password: string) => {
    await both(sides, `authenticate ${user}`, async (s) => {
      const r = await s.client.call('Auth', 'Authenticate', { name: user, password });
      if (r.ok) s.tokens.set(user, (r.res as { token: string }).token);
      return r;
    });
  };

  // --- management before auth is on
  await both(sides, 'enable without root', auth('AuthEnable', {}));
  await both(sides, 'add root', auth('UserAdd', { name: 'root', password: 'rootpw' }));
  await both(sides, 'enable: root lacks root role', auth('AuthEnable', {}));
  await both(sides, 'grant root role', auth('UserGrantRole', { user: 'root', role: 'root' }));
  await both(sides, 'add empty user', auth('UserAdd', { name: '', password: 'x' }));
  await both(sides, 'add empty role', auth('RoleAdd', { name: '' }));
  for (const r of ['reader', 'writer', 'mixed']) await both(sides, `add role ${r}`, auth('RoleAdd', { name: r }));
  await both(sides, 'add role twice', auth('RoleAdd', { name: 'reader' }));
  await both(sides, 'grant read on prefix a/', auth('RoleGrantPermission', { name: 'reader', perm: { permType: 0, key: b('a/'), range_end: prefixEnd('a/') } }));
  await both(sides, 'grant readwrite on key b', auth('RoleGrantPermission', { name: 'writer', perm: { permType: 2, key: b('b'), range_end: b('') } }));
  await both(sides, 'grant write from c', auth('RoleGrantPermission', { name: 'writer', perm: { permType: 1, key: b('c'), range_end: Buffer.from([0]) } }));
  await both(sides, 'grant read [m, n)', auth('RoleGrantPermission', { name: 'mixed', perm: { permType: 0, key: b('m'), range_end: b('n') } }));
  await both(sides, 'grant read [n, p)', auth('RoleGrantPermission', { name: 'mixed', perm: { permType: 0, key: b('n'), range_end: b('p') } }));
  await both(sides, 'update grant on b to read', auth('RoleGrantPermission', { name: 'mixed', perm: { permType: 2, key: b('m'), range_end: b('n') } }));
  await both(sides, 'grant to missing role', auth('RoleGrantPermission', { name: 'nope', perm: { permType: 0, key: b('x'), range_end: b('') } }));
  for (const u of ['alice', 'bob', 'carol']) await both(sides, `add ${u}`, auth('UserAdd', { name: u, password: `${u}pw` }));
  await both(sides, 'add alice twice', auth('UserAdd', { name: 'alice', password: 'x' }));
  await both(sides, 'alice gets reader', auth('UserGrantRole', { user: 'alice', role: 'reader' }));
  await both(sides, 'bob gets writer', auth('UserGrantRole', { user: 'bob', role: 'writer' }));
  await both(sides, 'bob gets writer again', auth('UserGrantRole', { user: 'bob', role: 'writer' }));
  await both(sides, 'carol gets mixed', auth('UserGrantRole', { user: 'carol', role: 'mixed' }));
  await both(sides, 'grant missing role', auth('UserGrantRole', { user: 'alice', role: 'nope' }));
  await both(sides, 'grant to missing user', auth('UserGrantRole', { user: 'nobody', role: 'reader' }));
  await both(sides, 'revoke role not granted', auth('UserRevokeRole', { name: 'alice', role: 'writer' }));
  await both(sides, 'revoke permission not granted', auth('RoleRevokePermission', { role: 'reader', key: b('zz'), range_end: b('') }));
  await both(sides, 'role get', auth('RoleGet', { role: 'mixed' }), (r) => (r.perm as Array<{ permType: number; key: Buffer; range_end: Buffer }>).map((p) => [p.permType, p.key.toString(), p.range_end.toString('hex')]));
  await both(sides, 'user list', auth('UserList', {}), (r) => r.users);
  await both(sides, 'role list', auth('RoleList', {}), (r) => r.roles);
  await both(sides, 'user get', auth('UserGet', { name: 'bob' }), (r) => r.roles);
  await both(sides, 'authenticate while disabled', auth('Authenticate', { name: 'root', password: 'rootpw' }));
  // Data written before auth, to read later.
  for (const k of ['a/1', 'a/2', 'b', 'c1', 'm1', 'o1', 'zz']) await both(sides, `put ${k}`, kv('Put', { key: b(k), value: b(`v-${k}`) }, null));

  // --- auth on
  await both(sides, 'enable', auth('AuthEnable', {}));
  await both(sides, 'enable again without a token', auth('AuthEnable', {}));
  await both(sides, 'wrong password', auth('Authenticate', { name: 'alice', password: 'nope' }));
  await both(sides, 'unknown user', auth('Authenticate', { name: 'mallory', password: 'x' }));
  for (const u of ['root', 'alice', 'bob', 'carol']) await login(u, `${u}pw`);
  for (const side of sides) assert.match(side.tokens.get('alice')!, side.name === 'proxy' ? /^[A-Za-z]{16}\.\d+$/ : /./);

  const who = [null, 'bogus', 'root', 'alice', 'bob', 'carol'];
  const reads: Array<[string, Msg]> = [
    ['a/1', { key: b('a/1') }],
    ['prefix a/', { key: b('a/'), range_end: prefixEnd('a/') }],
    ['[a, b)', { key: b('a'), range_end: b('b') }],
    ['b', { key: b('b') }],
    ['c1', { key: b('c1') }],
    ['[m, p)', { key: b('m'), range_end: b('p') }],
    ['[m, q)', { key: b('m'), range_end: b('q') }],
    ['from m', { key: b('m'), range_end: Buffer.from([0]) }],
    ['all', { key: Buffer.from([0]), range_end: Buffer.from([0]) }],
    ['serializable a/2', { key: b('a/2'), serializable: true }],
  ];
  for (const u of who) for (const [name, req] of reads) await both(sides, `${u ?? 'anonymous'} range ${name}`, kv('Range', req, u), kvs);

  const writes: Array<[string, string, Msg]> = [
    ['put a/3', 'Put', { key: b('a/3'), value: b('x') }],
    ['put b', 'Put', { key: b('b'), value: b('bob') }],
    ['put b prev_kv', 'Put', { key: b('b'), value: b('bob2'), prev_kv: true }],
    ['put c2', 'Put', { key: b('c2'), value: b('x') }],
    ['put c2 prev_kv', 'Put', { key: b('c2'), value: b('y'), prev_kv: true }],
    ['delete [c, d)', 'DeleteRange', { key: b('c'), range_end: b('d') }],
    ['delete from c prev_kv', 'DeleteRange', { key: b('c'), range_end: Buffer.from([0]), prev_kv: true }],
    ['delete b', 'DeleteRange', { key: b('b') }],
  ];
  for (const u of ['bogus', null, 'alice', 'bob', 'carol']) {
    for (const [name, method, req] of writes) await both(sides, `${u ?? 'anonymous'} ${name}`, kv(method, req, u), (r) => (r.prev_kv ? kvs({ kvs: [r.prev_kv] }) : r.deleted ?? 'ok'));
  }
  // Root restores what the users changed, so both sides hold the same data again.
  await both(sides, 'root put b', kv('Put', { key: b('b'), value: b('v-b') }, 'root'));
  await both(sides, 'root put c1', kv('Put', { key: b('c1'), value: b('v-c1') }, 'root'));

  const txns: Array<[string, Msg]> = [
    ['compare on a/1, read a/2', { compare: [{ key: b('a/1'), target: 0, result: 0, version: '1' }], success: [{ request_range: { key: b('a/2') } }], failure: [] }],
    ['compare on b (no read)', { compare: [{ key: b('zz'), target: 0, result: 0, version: '1' }], success: [], failure: [] }],
    ['put c3 in failure branch', { compare: [{ key: b('b'), target: 3, result: 0, value: b('v-b') }], success: [{ request_range: { key: b('b') } }], failure: [{ request_put: { key: b('c3'), value: b('x') } }] }],
    ['delete c with prev_kv in txn', { compare: [], success: [{ request_delete_range: { key: b('c'), range_end: b('d'), prev_kv: true } }], failure: [] }],
  ];
  for (const u of [null, 'alice', 'bob', 'root']) for (const [name, req] of txns) await both(sides, `${u ?? 'anonymous'} txn ${name}`, kv('Txn', req, u), (r) => r.succeeded);

  // Watches: read permission on the range at create; refused ones are canceled with the reason.
  const watches: Array<[string, Buffer, Buffer]> = [
    ['a/ prefix', b('a/'), prefixEnd('a/')],
    ['b', b('b'), b('')],
    ['from c (checked as the key)', b('c'), Buffer.from([0])],
    ['[a, z)', b('a'), b('z')],
  ];
  for (const u of [null, 'bogus', 'alice', 'bob', 'root']) {
    for (const [name, key, end] of watches) {
      await both(sides, `${u ?? 'anonymous'} watch ${name}`, async (s) => {
        const res = await watchCreate(s.client, key, end, tokenOf(s, u));
        return { ok: true, res: { created: res.created, canceled: res.canceled, reason: res.cancel_reason, id: res.canceled ? res.watch_id : 'some' } } as CallResult;
      }, (r) => r);
    }
  }

  // Maintenance and lease calls.
  for (const u of [null, 'bogus', 'alice', 'root']) {
    const t = (s: Side) => ({ token: tokenOf(s, u) });
    await both(sides, `${u ?? 'anonymous'} status`, (s) => s.client.call('Maintenance', 'Status', {}, t(s)));
    await both(sides, `${u ?? 'anonymous'} hashkv`, (s) => s.client.call('Maintenance', 'HashKV', { revision: '0' }, t(s)));
    await both(sides, `${u ?? 'anonymous'} defragment`, (s) => s.client.call('Maintenance', 'Defragment', {}, t(s)));
    await both(sides, `${u ?? 'anonymous'} alarm list`, (s) => s.client.call('Maintenance', 'Alarm', { action: 0, memberID: '0', alarm: 0 }, t(s)), (r) => (r.alarms as unknown[]).length);
    await both(sides, `${u ?? 'anonymous'} lease grant`, (s) => s.client.call('Lease', 'LeaseGrant', { TTL: '60', ID: '0' }, t(s)), (r) => r.TTL);
    await both(sides, `${u ?? 'anonymous'} snapshot`, (s) => snapshotFirst(s.client, tokenOf(s, u)));
    await both(sides, `${u ?? 'anonymous'} member list`, (s) => s.client.call('Cluster', 'MemberList', {}, t(s)), (r) => (r.members as unknown[]).length > 0);
  }
  // A lease holding key b (bob may write it, alice may not): revoking needs write on its keys.
  const leases = new Map<string, string>();
  await both(sides, 'root grants a lease', async (s) => {
    const r = await s.client.call('Lease', 'LeaseGrant', { TTL: '600', ID: '0' }, { token: tokenOf(s, 'root') });
    if (r.ok) leases.set(s.name, (r.res as { ID: string }).ID);
    return r;
  });
  await both(sides, 'bob puts b on the lease', (s) => s.client.call('KV', 'Put', { key: b('b'), value: b('v-b'), lease: leases.get(s.name) }, { token: tokenOf(s, 'bob') }));
  await both(sides, 'alice puts a/1 on the lease (needs write on b)', (s) => s.client.call('KV', 'Put', { key: b('a/1'), value: b('v'), lease: leases.get(s.name) }, { token: tokenOf(s, 'alice') }));
  await both(sides, 'alice revokes the lease', (s) => s.client.call('Lease', 'LeaseRevoke', { ID: leases.get(s.name) }, { token: tokenOf(s, 'alice') }));
  await both(sides, 'bob revokes the lease', (s) => s.client.call('Lease', 'LeaseRevoke', { ID: leases.get(s.name) }, { token: tokenOf(s, 'bob') }));
  await both(sides, 'b is gone with its lease', kv('Range', { key: b('b') }, 'root'), kvs);

  // Auth management as a user who is not root, and the root protections.
  await both(sides, 'alice lists users', auth('UserList', {}, 'alice'));
  await both(sides, 'alice gets herself', auth('UserGet', { name: 'alice' }, 'alice'), (r) => r.roles);
  await both(sides, 'alice gets bob', auth('UserGet', { name: 'bob' }, 'alice'));
  await both(sides, 'alice gets her role', auth('RoleGet', { role: 'reader' }, 'alice'), (r) => (r.perm as unknown[]).length);
  await both(sides, 'alice gets another role', auth('RoleGet', { role: 'writer' }, 'alice'));
  await both(sides, 'alice adds a user', auth('UserAdd', { name: 'eve', password: 'x' }, 'alice'));
  await both(sides, 'anonymous adds a role', auth('RoleAdd', { name: 'x' }));
  await both(sides, 'bogus token adds a role', auth('RoleAdd', { name: 'x' }, 'bogus'));
  await both(sides, 'delete root', auth('UserDelete', { name: 'root' }, 'root'));
  await both(sides, 'delete root role', auth('RoleDelete', { role: 'root' }, 'root'));
  await both(sides, 'revoke root from root', auth('UserRevokeRole', { name: 'root', role: 'root' }, 'root'));
  await both(sides, 'revoke read on [n, p)', auth('RoleRevokePermission', { role: 'mixed', key: b('n'), range_end: b('p') }, 'root'));
  await both(sides, 'carol reads [m, p) after the revoke', kv('Range', { key: b('m'), range_end: b('p') }, 'carol'), kvs);
  await both(sides, 'delete role mixed', auth('RoleDelete', { role: 'mixed' }, 'root'));
  await both(sides, 'carol has no roles', auth('UserGet', { name: 'carol' }, 'root'), (r) => r.roles);
  await both(sides, 'carol reads m1', kv('Range', { key: b('m1') }, 'carol'), kvs);

  // Password change and deletion void the user's tokens.
  await both(sides, 'alice password change', auth('UserChangePassword', { name: 'alice', password: 'new' }, 'root'));
  await both(sides, 'old alice token', kv('Range', { key: b('a/1') }, 'alice'), kvs);
  await both(sides, 'old password', auth('Authenticate', { name: 'alice', password: 'alicepw' }));
  await login('alice', 'new');
  await both(sides, 'new alice token', kv('Range', { key: b('a/1') }, 'alice'), kvs);
  await both(sides, 'delete bob', auth('UserDelete', { name: 'bob' }, 'root'));
  await both(sides, 'deleted bob token', kv('Range', { key: b('b') }, 'bob'), kvs);
  await both(sides, 'delete bob again', auth('UserDelete', { name: 'bob' }, 'root'));
  await both(sides, 'user list after', auth('UserList', {}, 'root'), (r) => r.users);

  // Off again: only root may; every simple token is void afterwards.
  await both(sides, 'alice disables', auth('AuthDisable', {}, 'alice'));
  await both(sides, 'root disables', auth('AuthDisable', {}, 'root'));
  await both(sides, 'old root token after disable', kv('Range', { key: b('a/1') }, 'root'), kvs);
  await both(sides, 'anonymous after disable', kv('Range', { key: b('zz') }, null), kvs);
  await both(sides, 'anonymous manages after disable', auth('RoleAdd', { name: 'after' }));
});

test('auth: random permissions (odd ranges included) and random requests get the same answers as etcd', { timeout: TIMEOUT }, async () => {
  const { clients, oracle, meta } = await file.started();
  assert.ok(oracle);
  const seed = Number(process.env.E2E_SEED ?? 11);
  const rand = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const key = () => pick(['a', 'b', 'c', 'd', 'e']) + (rand() < 0.5 ? pick(['', 'a', 'c', 'e']) : '');
  // null: no range_end at all. An explicitly empty range_end is left out: etcd checks it as the
  // single key but reads from the key on (gogoproto keeps it non-nil); the proxy reads one key.
  const end = () => pick([null, Buffer.from([0]), b(key()), b(key())]);
  const withEnd = (req: Msg, e: Buffer | null): Msg => (e === null ? req : { ...req, range_end: e });
  const hex = (e: Buffer | null) => (e === null ? '' : e.toString('hex'));
  const sides: Side[] = [
    { name: 'etcd', client: oracle.client, address: oracle.address, tokens: new Map() },
    { name: 'proxy', client: clients[0]!, address: meta.addresses[0]!, tokens: new Map() },
  ];
  const call = (svc: 'Auth' | 'KV', method: string, req: Msg, user: string | null = null) => (s: Side) => s.client.call(svc, method, req, { token: tokenOf(s, user) });
  const login = (user: string, password: string) =>
    both(sides, `login ${user}`, async (s) => {
      const r = await s.client.call('Auth', 'Authenticate', { name: user, password });
      if (r.ok) s.tokens.set(user, (r.res as { token: string }).token);
      return r;
    });
  await both(sides, 'role fz', call('Auth', 'RoleAdd', { name: 'fz' }));
  await both(sides, 'user fz', call('Auth', 'UserAdd', { name: 'fz', password: 'fzpw' }));
  await both(sides, 'grant fz', call('Auth', 'UserGrantRole', { user: 'fz', role: 'fz' }));
  const perms: string[] = [];
  for (let i = 0; i < 8; i++) {
    const perm = withEnd({ permType: pick([0, 1, 2]), key: b(key()) }, end());
    perms.push(`${String(perm.permType)}:${String(perm.key)}..${hex((perm.range_end as Buffer | undefined) ?? null)}`);
    await both(sides, `grant ${perms[i]}`, call('Auth', 'RoleGrantPermission', { name: 'fz', perm }));
  }
  for (const k of ['a', 'ac', 'b', 'be', 'c', 'd', 'da', 'e', 'ee']) await both(sides, `put ${k}`, call('KV', 'Put', { key: b(k), value: b(k) }));
  await both(sides, 'enable', call('Auth', 'AuthEnable', {}));
  await login('fz', 'fzpw');
  await login('root', 'rootpw');
  for (let i = 0; i < 150; i++) {
    const k = b(key());
    const e = end();
    const what = `seed ${seed} #${i} with ${perms.join(' ')}`;
    const op = pick(['range', 'range', 'put', 'delete', 'watch']);
    if (op === 'range') await both(sides, `${what}: range ${k}..${hex(e)}`, call('KV', 'Range', withEnd({ key: k }, e), 'fz'), kvs);
    else if (op === 'put') await both(sides, `${what}: put ${k}`, call('KV', 'Put', { key: k, value: k, prev_kv: rand() < 0.3 }, 'fz'));
    else if (op === 'delete') await both(sides, `${what}: delete ${k}..${hex(e)}`, call('KV', 'DeleteRange', withEnd({ key: k }, e), 'fz'), (r) => r.deleted);
    else {
      await both(sides, `${what}: watch ${k}..${hex(e)}`, async (s) => {
        const res = await watchCreate(s.client, k, e ?? Buffer.alloc(0), tokenOf(s, 'fz'));
        return { ok: true, res: { canceled: res.canceled, reason: res.cancel_reason } } as CallResult;
      }, (r) => r);
    }
  }
  await both(sides, 'disable', call('Auth', 'AuthDisable', {}, 'root'));
});

test('auth: a token from one replica works on the other, and a grant made on one is enforced on the other', { timeout: TIMEOUT }, async () => {
  const { clients } = await file.started();
  const [p0, p1] = clients as [RawClient, RawClient];
  const ok = async (r: Promise<CallResult>, what: string) => {
    const x = await r;
    assert.ok(x.ok, `${what}: ${x.ok ? '' : x.details}`);
    return x.res as Msg;
  };
  await ok(p0.call('Auth', 'AuthEnable', {}), 'enable (root exists from the first test)');
  const root = (await ok(p0.call('Auth', 'Authenticate', { name: 'root', password: 'rootpw' }), 'root login')).token as string;
  const status = await ok(p1.call('Auth', 'AuthStatus', {}, { token: root }), 'status on the other replica');
  assert.equal(status.enabled, true);
  assert.ok(BigInt(status.authRevision as string) > 1n);
  await ok(p1.call('Auth', 'UserAdd', { name: 'dave', password: 'davepw' }, { token: root }), 'root token from replica 0 on replica 1');
  const dave = (await ok(p0.call('Auth', 'Authenticate', { name: 'dave', password: 'davepw' }), 'dave login')).token as string;
  const denied = await p1.call('KV', 'Put', { key: b('d/1'), value: b('x') }, { token: dave });
  assert.deepEqual(denied.ok ? 'ok' : denied.details, 'etcdserver: permission denied');
  await ok(p0.call('Auth', 'RoleAdd', { name: 'd' }, { token: root }), 'role d');
  await ok(p0.call('Auth', 'RoleGrantPermission', { name: 'd', perm: { permType: 2, key: b('d/'), range_end: prefixEnd('d/') } }, { token: root }), 'grant d/');
  await ok(p0.call('Auth', 'UserGrantRole', { user: 'dave', role: 'd' }, { token: root }), 'dave gets d');
  // At once on the other replica (it re-reads the auth state before it refuses).
  await ok(p1.call('KV', 'Put', { key: b('d/1'), value: b('x') }, { token: dave }), 'dave writes d/1 on replica 1');
  // A revocation on replica 0 reaches replica 1 through its coordinator watch.
  await ok(p0.call('Auth', 'UserRevokeRole', { name: 'dave', role: 'd' }, { token: root }), 'revoke d from dave');
  await waitFor(async () => {
    const r = await p1.call('KV', 'Put', { key: b('d/2'), value: b('x') }, { token: dave });
    return !r.ok && r.details === 'etcdserver: permission denied';
  }, 5_000, 'the revocation on replica 1');
  const bad = await p1.call('KV', 'Put', { key: b('d/1'), value: b('x') }, { token: 'abcdefghijklmnop.1' });
  assert.deepEqual(bad.ok ? 'ok' : [bad.code, bad.details], [grpc.status.UNAUTHENTICATED, 'etcdserver: invalid auth token']);
  await ok(p1.call('Auth', 'AuthDisable', {}, { token: root }), 'disable');
});

test('auth: JWT tokens from a replica configured with --auth-token jwt; an older token is refused as etcd does', { timeout: TIMEOUT }, async () => {
  const { meta, clients } = await file.started();
  const p0 = clients[0]!;
  const jwtProxy = await meta.addProxy();
  const j = new RawClient(jwtProxy.address);
  file.cleanup.add('close the JWT replica client', () => j.close());
  const ok = async (r: Promise<CallResult>, what: string) => {
    const x = await r;
    assert.ok(x.ok, `${what}: ${x.ok ? '' : x.details}`);
    return x.res as Msg;
  };
  await ok(p0.call('Auth', 'AuthEnable', {}), 'enable');
  const simpleRoot = (await ok(p0.call('Auth', 'Authenticate', { name: 'root', password: 'rootpw' }), 'simple root login')).token as string;
  const jwtRoot = (await ok(j.call('Auth', 'Authenticate', { name: 'root', password: 'rootpw' }), 'jwt root login')).token as string;
  assert.equal(jwtRoot.split('.').length, 3, 'a JWT');
  await ok(j.call('KV', 'Put', { key: b('j/1'), value: b('x') }, { token: jwtRoot }), 'put with the JWT');
  const foreign = await j.call('KV', 'Put', { key: b('j/1'), value: b('x') }, { token: simpleRoot });
  assert.deepEqual(foreign.ok ? 'ok' : foreign.details, 'etcdserver: invalid auth token', 'a simple token means nothing to a JWT replica');
  // Any auth change makes the JWT's revision old, for root too (etcd checks it first).
  await ok(p0.call('Auth', 'RoleAdd', { name: 'jwt-bump' }, { token: simpleRoot }), 'bump the auth revision');
  await waitFor(async () => {
    const r = await j.call('KV', 'Put', { key: b('j/1'), value: b('y') }, { token: jwtRoot });
    return !r.ok && r.code === grpc.status.INVALID_ARGUMENT && r.details === 'etcdserver: revision of auth store is old';
  }, 5_000, 'an old JWT refused');
  const fresh = (await ok(j.call('Auth', 'Authenticate', { name: 'root', password: 'rootpw' }), 'login again')).token as string;
  await ok(j.call('KV', 'Put', { key: b('j/1'), value: b('z') }, { token: fresh }), 'put with the fresh JWT');
  await ok(j.call('Auth', 'RoleDelete', { role: 'jwt-bump' }, { token: fresh }), 'admin calls do not check the revision');
  await ok(j.call('Auth', 'AuthDisable', {}, { token: fresh }), 'disable');
});

test('auth: a simple token lives while it is used and expires once unused for its TTL', { timeout: TIMEOUT }, async () => {
  const { meta, clients } = await file.started();
  const shortTtl = await meta.addProxy(); // index 3: auth.tokenTtl 3 s
  const c = new RawClient(shortTtl.address);
  file.cleanup.add('close the short-TTL replica client', () => c.close());
  const ok = async (r: Promise<CallResult>, what: string) => {
    const x = await r;
    assert.ok(x.ok, `${what}: ${x.ok ? '' : x.details}`);
    return x.res as Msg;
  };
  await ok(c.call('Auth', 'AuthEnable', {}), 'enable');
  const token = (await ok(c.call('Auth', 'Authenticate', { name: 'root', password: 'rootpw' }), 'login')).token as string;
  // Used every half second for twice its TTL: refreshed on use, so it stays valid.
  const until = Date.now() + 6_000;
  while (Date.now() < until) {
    await ok(c.call('KV', 'Range', { key: b('t') }, { token }), 'a token in use');
    await new Promise((r) => setTimeout(r, 500));
  }
  // Also on another replica, which has never seen it used.
  await ok(clients[0]!.call('KV', 'Range', { key: b('t') }, { token }), 'the token on another replica');
  // Unused now: its coordinator record goes with its lease (watched without touching the token).
  const coordinator = new RawClient(meta.cluster.coordinator.clientUrl);
  file.cleanup.add('close the coordinator client', () => coordinator.close());
  const record = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), b('metaproxy/auth/tokens/'), b(token)]);
  assert.equal(Number(((await ok(coordinator.call('KV', 'Range', { key: record, count_only: true }), 'token record')) as { count: string }).count), 1);
  await waitFor(async () => {
    const r = await coordinator.call('KV', 'Range', { key: record, count_only: true });
    return r.ok && Number((r.res as { count: string }).count) === 0;
  }, 15_000, 'the unused token to expire');
  // Every replica drops it once the deletion reaches its watch (or its next refresh finds no lease).
  for (const client of [c, clients[0]!]) {
    await waitFor(async () => {
      const r = await client.call('KV', 'Range', { key: b('t') }, { token });
      return !r.ok && r.code === grpc.status.UNAUTHENTICATED && r.details === 'etcdserver: invalid auth token';
    }, 5_000, 'the expired token refused');
  }
  const again = (await ok(c.call('Auth', 'Authenticate', { name: 'root', password: 'rootpw' }), 'login again')).token as string;
  await ok(c.call('Auth', 'AuthDisable', {}, { token: again }), 'disable');
});

test('auth: etcdctl user, role and auth commands, and --user, answer as etcd', { timeout: TIMEOUT }, async () => {
  const { meta, oracle } = await file.started();
  assert.ok(oracle);
  const endpoints = { etcd: oracle.address, proxy: meta.addresses[1]! };
  const script: string[][] = [
    ['user', 'add', 'root:rootpw'],
    ['user', 'grant-role', 'root', 'root'],
    ['role', 'add', 'ctl'],
    ['role', 'grant-permission', 'ctl', 'readwrite', 'ctl/', '--prefix=true'],
    ['role', 'grant-permission', 'ctl', 'read', 'x', 'y'],
    ['user', 'add', 'ctluser:ctlpw'],
    ['user', 'grant-role', 'ctluser', 'ctl'],
    ['auth', 'enable'],
    ['--user', 'ctluser:ctlpw', 'put', 'ctl/1', 'one'],
    ['--user', 'ctluser:ctlpw', 'get', 'ctl/', '--prefix'],
    ['--user', 'ctluser:ctlpw', 'put', 'other', 'x'],
    ['--user', 'ctluser:wrong', 'get', 'ctl/1'],
    ['get', 'ctl/1'],
    ['--user', 'root:rootpw', 'role', 'get', 'ctl'],
    ['--user', 'root:rootpw', 'user', 'get', 'ctluser'],
    ['--user', 'root:rootpw', 'user', 'list'],
    ['--user', 'root:rootpw', 'role', 'list'],
    ['--user', 'ctluser:ctlpw', 'user', 'list'],
    ['--user', 'root:rootpw', 'role', 'revoke-permission', 'ctl', 'ctl/', '--prefix=true'],
    ['--user', 'ctluser:ctlpw', 'get', 'ctl/1'],
    ['--user', 'root:rootpw', 'user', 'revoke-role', 'ctluser', 'ctl'],
    ['--user', 'root:rootpw', 'role', 'delete', 'ctl'],
    ['--user', 'root:rootpw', 'user', 'delete', 'ctluser'],
    ['--user', 'root:rootpw', 'auth', 'disable'],
    ['get', 'ctl/1'],
  ];
  // The second test may have left users and roles behind on the proxy only; start both clean.
  for (const [name, ep] of Object.entries(endpoints)) {
    for (const u of ['root', 'dave', 'alice', 'carol']) await etcdctl(ep, ['user', 'delete', u]);
    for (const r of ['d', 'reader', 'writer', 'after', 'root']) await etcdctl(ep, ['role', 'delete', r]);
    void name;
  }
  for (const args of script) {
    const [o, p] = await Promise.all([etcdctl(endpoints.etcd, args), etcdctl(endpoints.proxy, args)]);
    const norm = (s: string) => s.replace(/\d{4}-\d\d-\d\d[ T][\d:.]+\S*/g, 'TIME').replace(/\{"level".*\n?/g, '').trim();
    assert.deepEqual(
      { code: p.code, out: norm(p.stdout), err: norm(p.stderr) },
      { code: o.code, out: norm(o.stdout), err: norm(o.stderr) },
      `etcdctl ${args.join(' ')}`,
    );
  }
});
