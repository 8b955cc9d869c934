/**
 * Leases end to end, against real etcd processes.
 *
 * - Differential: the same lease calls and leased puts against a plain etcd (the oracle) and
 *   the proxy (3 shards), with the same answers (codes, messages, TTLs, keys, lease fields).
 * - One lease holding keys on every shard: time-to-live lists them all, revoke deletes them
 *   all and leaves no index entry behind in any member.
 * - Expiry while a member is down: its keys are deleted when it returns; nothing else is lost.
 * - Two proxies: grant through one, keepalive, time-to-live and revoke through the other; the
 *   reaper moves to the other proxy when the reaping one is closed.
 *
 * Deletes are checked by reads (the watch check is in lease-watch.test.ts).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import { RawClient, etcd3Client, etcdctl, metaPerFile, sleep, waitFor, type FileMeta, type Meta } from './harness.js';
import { Code, b, prefixEnd, type CallResult } from './grpc-raw.js';
import { encodeEnvelope } from '../src/shard/envelope.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Msg = any;

const SETUP_TIMEOUT = 120_000;
const T = 60_000;
/** System keys of the members: the lease index lives under lease/. */
const INDEX_PREFIX = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), Buffer.from('metaproxy/lease/')]);
const REAPER_KEY = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), Buffer.from('metaproxy/lease-reaper')]);

let meta: Meta;
let oracle: RawClient;
let viaA: RawClient;
let viaB: RawClient;

const suite = metaPerFile({ tag: 'lease', shards: 3, proxies: 2, oracleName: 'oracle-lease' }, SETUP_TIMEOUT);
before(async () => {
  let o: FileMeta['oracle'];
  ({ meta, clients: [viaA, viaB], oracle: o } = await suite.started());
  oracle = o!.client;
}, { timeout: SETUP_TIMEOUT });

/** An answer without header and revisions: code + message, or the response's fields. */
function outcome(r: CallResult): Msg {
  if (!r.ok) return { code: Code[r.code], details: r.details };
  return { ok: strip(r.res) };
}

function strip(v: Msg): Msg {
  if (Array.isArray(v)) return v.map(strip);
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  if (v && typeof v === 'object') {
    const out: Msg = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'header' || k === 'mod_revision' || k === 'create_revision') continue;
      out[k] = strip(x);
    }
    return out;
  }
  return v;
}

const lease = (c: RawClient, method: string, req: Msg) => c.call('Lease', method, req);

/** Calls both and asserts the same outcome (after `normalize`); returns both answers. */
async function same(method: string, req: Msg, what: string, normalize: (o: Msg) => Msg = (o) => o): Promise<[CallResult, CallResult]> {
  const svc = ['Put', 'Range', 'DeleteRange', 'Txn'].includes(method) ? 'KV' : 'Lease';
  const [e, p] = await Promise.all([oracle.call(svc, method, req), viaA.call(svc, method, req)]);
  assert.deepEqual(normalize(outcome(p)), normalize(outcome(e)), `${what}: proxy vs etcd`);
  return [e, p];
}

/**
 * TimeToLive answers with TTL allowed a second apart (time passes between the calls) and keys
 * sorted (etcd lists them in its map's order; the proxy sorts them).
 */
const ttlApprox = (o: Msg) => (o.ok ? { ...o, ok: { ...o.ok, TTL: Math.ceil(Number(o.ok.TTL) / 2), keys: [...o.ok.keys].sort() } } : o);

/** One keepalive over a fresh stream. */
function keepAliveOnce(c: RawClient, id: string): Promise<Msg> {
  const svc = c.service('Lease') as unknown as { LeaseKeepAlive: () => grpc.ClientDuplexStream<Msg, Msg> };
  const call = svc.LeaseKeepAlive();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      call.cancel();
      reject(new Error('keepalive: no answer'));
    }, 10_000);
    call.on('data', (res: Msg) => {
      clearTimeout(timer);
      call.end();
      resolve(res);
    });
    call.on('error', (err: grpc.ServiceError) => {
      clearTimeout(timer);
      if (err.code !== 1) reject(err);
    });
    call.write({ ID: id });
  });
}

async function getKeys(c: RawClient, prefix: string): Promise<Msg[]> {
  const r = await c.kv('Range', { key: b(prefix), range_end: prefixEnd(prefix) });
  assert.ok(r.ok, r.ok ? '' : r.details);
  return r.res.kvs;
}

/** Index entries left in every member (read directly). */
async function indexEntries(): Promise<number> {
  let n = 0;
  for (let i = 0; i < meta.cluster.shards.length; i++) {
    const r = await meta.memberClient(i).kv('Range', { key: INDEX_PREFIX, range_end: prefixEnd(INDEX_PREFIX), count_only: true });
    assert.ok(r.ok);
    n += Number(r.res.count);
  }
  return n;
}


test('grant: chosen and assigned IDs, TTL floor, etcd\'s errors', { timeout: T }, async () => {
  await same('LeaseGrant', { TTL: 30, ID: '4096' }, 'chosen ID');
  await same('LeaseGrant', { TTL: 30, ID: '4096' }, 'duplicate ID');
  await same('LeaseGrant', { TTL: '9000000001', ID: '0' }, 'TTL too large');
  await same('LeaseGrant', { TTL: 1, ID: '4097' }, 'TTL below the minimum');
  await same('LeaseGrant', { TTL: -5, ID: '4098' }, 'negative TTL');
  await same('LeaseGrant', { TTL: 30, ID: '-7' }, 'negative ID');
  const [e, p] = await same('LeaseGrant', { TTL: 20, ID: '0' }, 'assigned ID', (o) => ({ ...o, ok: { ...o.ok, ID: 'any' } }));
  assert.ok(e.ok && p.ok && BigInt(p.res.ID) > 0n, 'an assigned ID is positive');
  // LeaseLeases lists meta leases (not the proxies' own coordinator leases).
  const ids = (r: CallResult) => (r.ok ? r.res.leases.map((l: Msg) => String(l.ID)) : []);
  const listed = ids(await lease(viaA, 'LeaseLeases', {}));
  for (const id of ['4096', '4097', '4098', '-7', String(p.ok ? p.res.ID : '')]) assert.ok(listed.includes(id), `LeaseLeases lists ${id}: ${listed}`);
  assert.equal(listed.length, 5, `only meta leases: ${listed}`);
  assert.deepEqual(ids(await lease(viaB, 'LeaseLeases', {})).sort(), listed.sort(), 'both proxies list the same leases');
  for (const id of ['4097', '4098', '-7']) await same('LeaseRevoke', { ID: id }, `revoke ${id}`);
  await same('LeaseRevoke', { ID: '4098' }, 'revoke twice');
  await same('LeaseRevoke', { ID: '0' }, 'revoke 0');
  await same('LeaseTimeToLive', { ID: '4098', keys: true }, 'time-to-live of a revoked lease');
});

test('leased puts: lease field, ignore_lease, errors, LEASE compares, time-to-live keys, keepalive, revoke', { timeout: T }, async () => {
  await same('LeaseGrant', { TTL: 60, ID: '8192' }, 'grant 8192');
  await same('LeaseGrant', { TTL: 60, ID: '8193' }, 'grant 8193');
  const keys = Array.from({ length: 12 }, (_, i) => `lp/k${String(i).padStart(3, '0')}`);
  for (const k of keys) await same('Put', { key: b(k), value: b('v'), lease: '8192' }, `put ${k}`);
  const shards = new Set(await Promise.all(keys.map((k) => meta.shardOf(k))));
  assert.equal(shards.size, 3, 'the keys of one lease sit on every shard');
  await same('Put', { key: b('lp/x'), value: b('v'), lease: '999' }, 'put with an unknown lease');
  await same('Put', { key: b('lp/k000'), value: b('v2'), lease: '8192', ignore_lease: true }, 'ignore_lease with a lease');
  await same('Put', { key: b('lp/k000'), value: b('v2'), ignore_lease: true, prev_kv: true }, 'ignore_lease keeps the lease');
  await same('Put', { key: b('lp/nokey'), value: b('v2'), ignore_lease: true }, 'ignore_lease on a missing key');
  await same('Put', { key: b('lp/k001'), value: b('v3'), lease: '8193', prev_kv: true }, 'move to another lease');
  await same('Put', { key: b('lp/k002'), value: b('v3'), prev_kv: true }, 'detach (no lease)');
  await same('DeleteRange', { key: b('lp/k003'), prev_kv: true }, 'delete a leased key');
  await same('Put', { key: b('lp/k004'), value: b(''), ignore_value: true, lease: '8193' }, 'ignore_value with a new lease');
  await same('Range', { key: b('lp/'), range_end: prefixEnd('lp/') }, 'lease fields');
  const leaseCmp = (id: string, key = 'lp/k000') => ({ target: 4, result: 0, key: b(key), lease: id, range_end: Buffer.alloc(0) });
  await same('Txn', { compare: [leaseCmp('8192')], success: [{ request_put: { key: b('lp/k000'), value: b('t'), ignore_lease: true } }], failure: [] }, 'LEASE == 8192');
  await same('Txn', { compare: [leaseCmp('8193')], success: [], failure: [{ request_range: { key: b('lp/k000') } }] }, 'LEASE == 8193 fails');
  await same('Txn', { compare: [leaseCmp('0', 'lp/k002')], success: [{ request_put: { key: b('lp/k002'), value: b('t'), lease: '8193' } }], failure: [] }, 'put with a lease in a txn');
  await same('Txn', { compare: [], success: [{ request_put: { key: b('lp/k005'), value: b('t'), lease: '31337' } }], failure: [] }, 'unknown lease in a txn');
  await same('LeaseTimeToLive', { ID: '8192', keys: true }, 'time-to-live 8192 with keys', ttlApprox);
  await same('LeaseTimeToLive', { ID: '8193', keys: true }, 'time-to-live 8193 with keys', ttlApprox);
  await same('LeaseTimeToLive', { ID: '8193', keys: false }, 'time-to-live without keys', ttlApprox);
  await same('LeaseTimeToLive', { ID: '555', keys: true }, 'time-to-live of an unknown lease');
  // Keepalive: the granted TTL back, TTL 0 for an unknown lease.
  for (const id of ['8192', '555']) {
    const [e, p] = await Promise.all([keepAliveOnce(oracle, id), keepAliveOnce(viaB, id)]);
    assert.deepEqual(strip(p), strip(e), `keepalive ${id}`);
  }
  await same('LeaseRevoke', { ID: '8192' }, 'revoke 8192');
  await same('Range', { key: b('lp/'), range_end: prefixEnd('lp/') }, 'after revoke: only keys not on 8192');
  await same('LeaseRevoke', { ID: '8192' }, 'revoke again');
  await same('LeaseRevoke', { ID: '8193' }, 'revoke 8193');
  await same('Range', { key: b('lp/'), range_end: prefixEnd('lp/') }, 'after both revokes');
  assert.equal(await indexEntries(), 0, 'no lease index entry is left in any member');
});

test('expiry: keys go when the TTL runs out, stay while kept alive; a re-granted ID starts empty', { timeout: T }, async () => {
  await same('LeaseGrant', { TTL: 2, ID: '12288' }, 'grant short');
  await same('LeaseGrant', { TTL: 2, ID: '12289' }, 'grant kept alive');
  for (let i = 0; i < 6; i++) {
    await same('Put', { key: b(`ex/a${i}`), value: b('v'), lease: '12288' }, `put a${i}`);
    await same('Put', { key: b(`ex/b${i}`), value: b('v'), lease: '12289' }, `put b${i}`);
  }
  const stop = Date.now() + 5000;
  while (Date.now() < stop) {
    await Promise.all([keepAliveOnce(oracle, '12289'), keepAliveOnce(viaA, '12289')]);
    await sleep(500);
  }
  await waitFor(async () => (await getKeys(viaA, 'ex/a')).length === 0, 10_000, 'the expired lease\'s keys deleted');
  await same('Range', { key: b('ex/'), range_end: prefixEnd('ex/') }, 'after expiry');
  await same('LeaseTimeToLive', { ID: '12288', keys: true }, 'time-to-live after expiry');
  assert.equal((await getKeys(viaA, 'ex/b')).length, 6, 'the kept-alive lease keeps its keys');
  // The same ID granted again holds nothing of the old grant.
  await same('LeaseGrant', { TTL: 30, ID: '12288' }, 'grant the expired ID again');
  await same('LeaseTimeToLive', { ID: '12288', keys: true }, 're-granted ID', ttlApprox);
  await same('LeaseRevoke', { ID: '12288' }, 'revoke re-granted');
  await same('LeaseRevoke', { ID: '12289' }, 'revoke kept-alive');
  assert.equal((await getKeys(viaA, 'ex/')).length, 0);
});

test('one lease on 300 keys over every shard: time-to-live lists all, revoke deletes all (each delete a meta revision)', { timeout: T }, async () => {
  const g = await viaA.callOrThrow<Msg>('Lease', 'LeaseGrant', { TTL: 120, ID: '0' });
  const id = String(g.ID);
  const keys = Array.from({ length: 300 }, (_, i) => `many/k${String(i).padStart(3, '0')}`);
  await Promise.all(keys.map((k, i) => (i % 2 ? viaA : viaB).kv('Put', { key: b(k), value: b('v'), lease: id }).then((r) => assert.ok(r.ok))));
  const ttl = await viaB.callOrThrow<Msg>('Lease', 'LeaseTimeToLive', { ID: id, keys: true });
  assert.deepEqual(ttl.keys.map((k: Buffer) => k.toString()), keys);
  const before = BigInt((await viaA.callOrThrow<Msg>('KV', 'Range', { key: b('many/') })).header.revision);
  const revoked = await viaB.callOrThrow<Msg>('Lease', 'LeaseRevoke', { ID: id });
  assert.equal((await getKeys(viaA, 'many/')).length, 0, 'every key deleted before revoke answered');
  assert.equal((await getKeys(viaB, 'many/')).length, 0, 'and read so through the replica that answered the revoke');
  assert.ok(BigInt(revoked.header.revision) > before, 'the deletes took new revisions');
  assert.equal(await indexEntries(), 0);
});

test('etcdctl and the etcd3 client: lease grant, put --lease, keep-alive, timetolive --keys, list, revoke', { timeout: T }, async () => {
  const g = await etcdctl(meta.addresses[0]!, ['lease', 'grant', '30']);
  assert.equal(g.code, 0, g.stderr);
  const id = /lease ([0-9a-f]+) granted with TTL\(30s\)/.exec(g.stdout)?.[1];
  assert.ok(id, g.stdout);
  assert.equal((await etcdctl(meta.addresses[0]!, ['put', '--lease', id, 'ctl/a', '1'])).code, 0);
  const t = await etcdctl(meta.addresses[1]!, ['lease', 'timetolive', id, '--keys']);
  assert.match(t.stdout, new RegExp(`lease ${id} granted with TTL\\(30s\\), remaining\\(\\d+s\\), attached keys\\(\\[ctl/a\\]\\)`));
  const ka = await etcdctl(meta.addresses[1]!, ['lease', 'keep-alive', '--once', id]);
  assert.match(ka.stdout, new RegExp(`lease ${id} keepalived with TTL\\(30\\)`));
  assert.match((await etcdctl(meta.addresses[0]!, ['lease', 'list'])).stdout, new RegExp(id));
  assert.match((await etcdctl(meta.addresses[1]!, ['lease', 'revoke', id])).stdout, /revoked/);
  assert.equal((await getKeys(viaA, 'ctl/')).length, 0);

  const client = etcd3Client(meta.addresses[0]!);
  try {
    const l = client.lease(2);
    await l.put('js/a').value('1');
    await sleep(4000); // the client keeps it alive on its own
    assert.equal(await client.get('js/a').string(), '1');
    await l.revoke();
    assert.equal(await client.get('js/a').string(), null);
  } finally {
    client.close();
  }
});

test('two proxies: grant through one, keepalive / time-to-live / revoke through the other; the reaper moves when its proxy closes', { timeout: 120_000 }, async () => {
  const g = await viaA.callOrThrow<Msg>('Lease', 'LeaseGrant', { TTL: 3, ID: '0' });
  const id = String(g.ID);
  for (let i = 0; i < 9; i++) assert.ok((await viaA.kv('Put', { key: b(`tw/${i}`), value: b('v'), lease: id })).ok);
  for (let i = 0; i < 8; i++) {
    const ka = await keepAliveOnce(viaB, id);
    assert.equal(String(ka.TTL), '3');
    await sleep(500);
  }
  const ttl = await viaB.callOrThrow<Msg>('Lease', 'LeaseTimeToLive', { ID: id, keys: true });
  assert.equal(ttl.keys.length, 9, 'alive after 4 s of keepalives through the other proxy');
  await viaB.callOrThrow('Lease', 'LeaseRevoke', { ID: id });
  assert.equal((await getKeys(viaA, 'tw/')).length, 0);

  // Which proxy reaps: its address is in the election key on the coordinator.
  const coord = new RawClient(meta.cluster.coordinator.clientUrl);
  try {
    const holder = async () => {
      const r = await coord.kv('Range', { key: REAPER_KEY });
      return r.ok && r.res.kvs[0] ? r.res.kvs[0].value.toString() : '';
    };
    await waitFor(async () => (await holder()) !== '', 10_000, 'a reaper elected');
    // The reaper's own coordinator lease is no meta lease: clients can neither see nor revoke it.
    const el = await coord.kv('Range', { key: REAPER_KEY });
    assert.ok(el.ok);
    const own = String(el.res.kvs[0].lease);
    assert.notEqual(own, '0');
    assert.equal(String((await viaA.callOrThrow<Msg>('Lease', 'LeaseTimeToLive', { ID: own, keys: true })).TTL), '-1');
    assert.deepEqual(outcome(await viaA.call('Lease', 'LeaseRevoke', { ID: own })), { code: 'NOT_FOUND', details: 'etcdserver: requested lease not found' });
    const listed = (await viaA.callOrThrow<Msg>('Lease', 'LeaseLeases', {})).leases.map((l: Msg) => String(l.ID));
    assert.ok(!listed.includes(own), 'not listed');
    const value = await holder();
    const idx = meta.addresses.findIndex((a) => value.startsWith(`${a}/`));
    assert.ok(idx >= 0, `the reaper is one of the proxies: ${await holder()}`);
    const other = idx === 0 ? 1 : 0;
    const survivor = other === 0 ? viaA : viaB;
    await meta.proxies[idx]!.close();
    const g2 = await survivor.callOrThrow<Msg>('Lease', 'LeaseGrant', { TTL: 2, ID: '0' });
    for (let i = 0; i < 6; i++) assert.ok((await survivor.kv('Put', { key: b(`to/${i}`), value: b('v'), lease: String(g2.ID) })).ok);
    await waitFor(async () => (await getKeys(survivor, 'to/')).length === 0, 15_000, 'expiry handled by the remaining proxy');
    assert.ok((await holder()).startsWith(`${meta.addresses[other]}/`), 'the remaining proxy holds the election key');
    // Keep the closed proxy's client out of later tests.
    if (survivor === viaA) viaB = viaA;
    else viaA = viaB;
  } finally {
    coord.close();
  }
});

test('expiry while a member is down: its keys are deleted when it returns, nothing else is lost', { timeout: 120_000 }, async () => {
  const c = viaA;
  const g = await c.callOrThrow<Msg>('Lease', 'LeaseGrant', { TTL: 3, ID: '0' });
  const keys = Array.from({ length: 18 }, (_, i) => `md/k${i}`);
  for (const k of keys) assert.ok((await c.kv('Put', { key: b(k), value: b('v'), lease: String(g.ID) })).ok);
  const plain = Array.from({ length: 9 }, (_, i) => `md/plain${i}`);
  for (const k of plain) assert.ok((await c.kv('Put', { key: b(k), value: b('keep') })).ok);
  // A second lease, revoked while the member is down.
  const g2 = await c.callOrThrow<Msg>('Lease', 'LeaseGrant', { TTL: 60, ID: '0' });
  const revoked = Array.from({ length: 18 }, (_, i) => `md/r${i}`);
  for (const k of revoked) assert.ok((await c.kv('Put', { key: b(k), value: b('v'), lease: String(g2.ID) })).ok);
  const victim = await meta.shardOf(keys[0]!);
  const onVictim: string[] = [];
  for (const k of keys) if ((await meta.shardOf(k)) === victim) onVictim.push(k);
  await meta.cluster.shards[victim]!.kill();
  try {
    const r = await c.call('Lease', 'LeaseRevoke', { ID: String(g2.ID) });
    assert.ok(r.ok, r.ok ? '' : `revoke with a member down: ${r.details}`);
    const all = await c.kv('Range', { key: b('md/r'), range_end: prefixEnd('md/r') });
    assert.equal(all.ok, false, 'a range over every shard fails while one is down');
    for (const k of revoked) {
      const got = await c.kv('Range', { key: b(k) });
      if (got.ok) assert.equal(got.res.kvs.length, 0, `${k} (on a live shard) deleted by the revoke`);
    }
    // The other shards' keys go at expiry.
    await waitFor(async () => {
      const left = await Promise.all(keys.filter((k) => !onVictim.includes(k)).map((k) => c.kv('Range', { key: b(k) })));
      return left.every((r) => r.ok && r.res.kvs.length === 0);
    }, 15_000, 'keys on live shards deleted at expiry');
  } finally {
    await meta.cluster.shards[victim]!.restart();
  }
  await waitFor(async () => (await getKeys(c, 'md/k')).length === 0, 30_000, 'keys of the expired lease on the returned shard deleted');
  await waitFor(async () => (await getKeys(c, 'md/r')).length === 0, 30_000, 'keys of the revoked lease on the returned shard deleted');
  const left = await getKeys(c, 'md/');
  assert.deepEqual(left.map((kv: Msg) => kv.key.toString()).sort(), [...plain].sort(), 'unleased keys kept');
  await waitFor(async () => (await indexEntries()) === 0, 10_000, 'no index entries left');
});

test('reconcile: an attachment to a lease that died unseen (a put that raced with a revoke) is reaped; a stale entry alone deletes nothing', { timeout: 60_000 }, async () => {
  // Written straight into a member: key k with lease 0x5eed in its envelope and its index entry
  // (incarnation 1: a grant long gone), and key s whose entry names 0x5eed while its envelope
  // has no lease (left behind by a range delete). No proxy ever saw lease 0x5eed live.
  const dead = 0x5eedn;
  const member = meta.memberClient(0);
  const entry = (k: string) => Buffer.concat([INDEX_PREFIX, Buffer.from(dead.toString(16).padStart(16, '0')), Buffer.from('/'), b(k)]);
  const one = Buffer.alloc(8);
  one.writeBigInt64BE(1n);
  for (const [k, leaseId] of [['rc/k', dead], ['rc/s', 0n]] as const) {
    assert.ok((await member.kv('Put', { key: b(k), value: encodeEnvelope(5n, 5n, leaseId, b('v')) })).ok);
    assert.ok((await member.kv('Put', { key: entry(k), value: one })).ok);
  }
  // Read in the member: keys written behind the proxies' back (no revision marker) never reach
  // their caches, so only the member shows what the reaper did.
  await waitFor(async () => (await getKeys(member, 'rc/')).length === 1, 20_000, 'the attached key reaped by the reconcile');
  assert.equal((await getKeys(member, 'rc/'))[0].key.toString(), 'rc/s', 'the key without the lease is kept');
  await waitFor(async () => (await indexEntries()) === 0, 10_000, 'both entries removed');
});
