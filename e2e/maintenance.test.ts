/**
 * Maintenance through the proxy against real etcd processes, next to a plain etcd (the oracle)
 * where etcd's behaviour is the reference: etcdctl defrag (every member of every cluster is
 * defragmented; a member down is named in the error), alarms (a NOSPACE alarm on one member is
 * listed with that member's id and refuses writes as in etcd; etcdctl alarm disarm clears it;
 * ACTIVATE fans out), HashKV (equal on two proxies, changes with the data, stable for a past
 * revision, etcd's errors and fields), MoveLeader and Hash.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Cleanup, RawClient, etcdctl, startMeta, startOracle, waitFor, type Meta, type Oracle } from './harness.js';
import { Code, b } from './grpc-raw.js';

const cleanup = new Cleanup();
const TEST_TIMEOUT = 120_000;

let meta: Meta;
let oracle: Oracle;
let proxyA: RawClient;
let proxyB: RawClient;
let plain: RawClient;

before(async () => {
  try {
    oracle = await startOracle('maint-oracle');
    cleanup.add('stop oracle', () => oracle.stop());
    meta = await startMeta({
      shards: 2,
      proxies: 2,
      tag: 'maint',
      // The second proxy reads from the members (no cache): reads under NOSPACE take that path there.
      configure: (cfg, i) => {
        if (i === 1) cfg.cache.enabled = false;
      },
    });
    cleanup.add('stop meta', () => meta.stop());
    proxyA = new RawClient(meta.addresses[0]!);
    proxyB = new RawClient(meta.addresses[1]!);
    plain = new RawClient(oracle.address);
    cleanup.add('close clients', () => [proxyA, proxyB, plain].forEach((c) => c.close()));
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}, { timeout: 120_000 });
after(() => cleanup.run(), { timeout: 60_000 });

const put = (c: RawClient, key: string, value: string) => c.kv('Put', { key: b(key), value: b(value) });
const maint = (c: RawClient, method: string, req: object = {}) => c.call('Maintenance', method, req);

/** etcdctl's output with this side's endpoint and member ids replaced by placeholders. */
function normalise(text: string, endpoint: string, ids: string[] = []): string {
  let out = endpoint ? text.split(endpoint).join('ENDPOINT') : text;
  ids.forEach((id, i) => (out = out.split(id).join(`MEMBER${i + 1}`)));
  return out.trim();
}

/** A key that lives on shard `i` of the meta-cluster. */
async function keyOnShard(i: number, tag: string): Promise<string> {
  for (let n = 0; n < 200; n++) {
    const key = `maint/${tag}/${n}`;
    assert.ok((await put(proxyA, key, 'probe')).ok);
    if ((await meta.shardOf(key)) === i) return key;
  }
  throw new Error(`no key found on shard ${i}`);
}

function finishedDefrags(name: string): number {
  const log = fs.readFileSync(path.join(meta.dataDir, 'cluster', `${name}.log`), 'utf8');
  return log.split('\n').filter((l) => l.includes('"finished defragment"')).length;
}

test('etcdctl defrag through the proxy defragments every member and the coordinator; a member down is named', { timeout: TEST_TIMEOUT }, async () => {
  const names = ['coordinator', ...meta.cluster.shards.map((s) => s.name)];
  const before = names.map(finishedDefrags);
  const viaProxy = await etcdctl(meta.addresses[0]!, ['defrag']);
  const viaEtcd = await etcdctl(oracle.address, ['defrag']);
  assert.equal(viaProxy.code, 0, viaProxy.stderr);
  assert.equal(normalise(viaProxy.stdout, meta.addresses[0]!), normalise(viaEtcd.stdout, oracle.address));
  assert.equal(normalise(viaProxy.stdout, meta.addresses[0]!), 'Finished defragmenting etcd member[ENDPOINT]');
  await waitFor(() => names.every((n, i) => finishedDefrags(n) === before[i]! + 1), 5_000, 'every member logging one more finished defragment');

  const victim = meta.cluster.shards[1]!;
  await victim.kill();
  try {
    const failed = await etcdctl(meta.addresses[0]!, ['defrag']);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, new RegExp(`Failed to defragment etcd member\\[${meta.addresses[0]!}\\]`));
    assert.match(failed.stderr, new RegExp(`defragment failed on 1 of 3 members: ${victim.name} member 127\\.0\\.0\\.1:\\d+`));
    // The others were still defragmented.
    assert.equal(finishedDefrags('coordinator'), before[0]! + 2);
    // A snapshot needs every shard: it fails with the proxy's UNAVAILABLE, and etcdctl keeps no file.
    const file = path.join(meta.dataDir, 'no.snapshot');
    const snap = await etcdctl(meta.addresses[0]!, ['snapshot', 'save', file]);
    assert.notEqual(snap.code, 0);
    assert.match(snap.stderr, new RegExp(`code = Unavailable desc = etcd-metaproxy: shard ${victim.name} unavailable`));
    assert.equal(fs.existsSync(file), false);
  } finally {
    await victim.restart();
  }
  await waitFor(async () => (await maint(proxyA, 'Defragment')).ok, 20_000, 'defragment working again after the restart');
});

test('alarms: a NOSPACE alarm on one member is listed with its id and refuses its writes like etcd; etcdctl alarm disarm clears it', { timeout: TEST_TIMEOUT }, async () => {
  assert.equal((await etcdctl(meta.addresses[0]!, ['alarm', 'list'])).stdout, '');
  assert.equal((await etcdctl(oracle.address, ['alarm', 'list'])).stdout, '');

  const member = meta.memberClient(1);
  const memberId: string = (await member.callOrThrow('Maintenance', 'Status', {})).header.member_id;
  const oracleId: string = (await plain.callOrThrow('Maintenance', 'Status', {})).header.member_id;
  const key = await keyOnShard(1, 'nospace');
  const other = await keyOnShard(0, 'free');

  // A real alarm in a real member (as etcd raises it when its quota is exceeded), and the same in the oracle.
  assert.ok((await member.call('Maintenance', 'Alarm', { action: 1, memberID: memberId, alarm: 1 })).ok);
  assert.ok((await maint(plain, 'Alarm', { action: 1, memberID: oracleId, alarm: 1 })).ok);
  // A failure below must not leave the alarm raised for the other tests.
  cleanup.add('disarm test alarms', async () => {
    await member.call('Maintenance', 'Alarm', { action: 2, memberID: memberId, alarm: 1 });
    await maint(plain, 'Alarm', { action: 2, memberID: oracleId, alarm: 1 });
  });

  const listed = await etcdctl(meta.addresses[0]!, ['alarm', 'list']);
  const listedPlain = await etcdctl(oracle.address, ['alarm', 'list']);
  assert.equal(normalise(listed.stdout, '', [memberId]), 'memberID:MEMBER1 alarm:NOSPACE');
  assert.equal(normalise(listed.stdout, '', [memberId]), normalise(listedPlain.stdout, '', [oracleId]));
  // Both proxies see it.
  const viaB = await maint(proxyB, 'Alarm', { action: 0, memberID: '0', alarm: 0 });
  assert.ok(viaB.ok);
  assert.deepEqual(viaB.res.alarms, [{ memberID: memberId, alarm: 1 }]);

  // Writes to that shard fail exactly as a plain etcd's do; other shards keep working.
  const refused = await put(proxyA, key, 'x');
  const refusedPlain = await put(plain, key, 'x');
  assert.equal(refused.ok, false);
  assert.equal(refusedPlain.ok, false);
  if (!refused.ok && !refusedPlain.ok) {
    assert.equal(refused.code, refusedPlain.code);
    assert.equal(refused.details, refusedPlain.details);
    assert.equal(refused.details, 'etcdserver: mvcc: database space exceeded');
  }
  assert.ok((await put(proxyA, other, 'still fine')).ok);
  // Reads go on under NOSPACE, linearizable ones too, as on etcd: a write the member refused
  // leaves nothing in doubt, so the shard's owner still vouches for its watermark.
  for (const [name, c] of [['proxyA', proxyA], ['proxyB', proxyB], ['plain', plain]] as const) {
    const one = await c.call('KV', 'Range', { key: b(key) });
    assert.ok(one.ok, `${name}: linearizable get under NOSPACE: ${one.ok ? '' : one.details}`);
    const all = await c.call('KV', 'Range', { key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true });
    assert.ok(all.ok, `${name}: linearizable count under NOSPACE: ${all.ok ? '' : all.details}`);
  }

  const disarm = await etcdctl(meta.addresses[1]!, ['alarm', 'disarm']);
  const disarmPlain = await etcdctl(oracle.address, ['alarm', 'disarm']);
  assert.equal(disarm.code, 0, disarm.stderr);
  assert.equal(normalise(disarm.stdout, '', [memberId]), normalise(disarmPlain.stdout, '', [oracleId]));
  assert.equal((await etcdctl(meta.addresses[0]!, ['alarm', 'list'])).stdout, '');
  assert.ok((await put(proxyA, key, 'after disarm')).ok);
});

test('alarms: ACTIVATE through the proxy raises the alarm in every cluster (the meta-cluster refuses writes), listed once', { timeout: TEST_TIMEOUT }, async () => {
  const status = await maint(proxyA, 'Status');
  assert.ok(status.ok);
  const proxyId: string = status.res.header.member_id;
  const activated = await maint(proxyA, 'Alarm', { action: 1, memberID: proxyId, alarm: 1 });
  cleanup.add('disarm the fanned-out alarm', () => maint(proxyA, 'Alarm', { action: 2, memberID: proxyId, alarm: 1 }));
  assert.ok(activated.ok);
  assert.deepEqual(activated.res.alarms, [{ memberID: proxyId, alarm: 1 }]);
  for (let i = 0; i < meta.cluster.shards.length; i++) {
    const inMember = await meta.memberClient(i).callOrThrow('Maintenance', 'Alarm', { action: 0, memberID: '0', alarm: 0 });
    assert.deepEqual(inMember.alarms, [{ memberID: proxyId, alarm: 1 }], `shard ${i}`);
  }
  const w = await put(proxyA, 'maint/any', 'x');
  assert.equal(w.ok, false);
  if (!w.ok) assert.equal(w.details, 'etcdserver: mvcc: database space exceeded');
  assert.equal(normalise((await etcdctl(meta.addresses[0]!, ['alarm', 'list'])).stdout, '', [proxyId]), 'memberID:MEMBER1 alarm:NOSPACE');

  const deactivated = await maint(proxyB, 'Alarm', { action: 2, memberID: proxyId, alarm: 1 });
  assert.ok(deactivated.ok);
  assert.deepEqual(deactivated.res.alarms, [{ memberID: proxyId, alarm: 1 }]);
  const none = await maint(proxyA, 'Alarm', { action: 0, memberID: '0', alarm: 0 });
  assert.ok(none.ok);
  assert.deepEqual(none.res.alarms, []);
  assert.ok((await put(proxyA, 'maint/any', 'y')).ok);
});

test('HashKV: equal on two proxies, changes with the data, stable for a past revision; fields like etcd', { timeout: TEST_TIMEOUT }, async () => {
  for (let i = 0; i < 30; i++) assert.ok((await put(proxyA, `hash/k${i}`, `v${i}`)).ok);
  const h1 = await maint(proxyA, 'HashKV', { revision: '0' });
  const h1b = await maint(proxyB, 'HashKV', { revision: '0' });
  assert.ok(h1.ok && h1b.ok);
  assert.equal(h1.res.hash, h1b.res.hash);
  assert.equal(h1.res.hash_revision, h1b.res.hash_revision);
  assert.equal(h1.res.compact_revision, '-1', 'nothing compacted: -1, as etcd reports it');
  const r1 = h1.res.hash_revision as string;
  assert.equal(h1.res.header.revision, r1);

  // etcdctl endpoint hashkv works through the proxy and prints the same hash.
  const ctl = await etcdctl(meta.addresses[1]!, ['endpoint', 'hashkv']);
  assert.equal(ctl.stdout.trim(), `${meta.addresses[1]}, ${h1.res.hash}`);

  const w = await put(proxyB, 'hash/k3', 'changed');
  assert.ok(w.ok);
  const h2 = await maint(proxyA, 'HashKV', { revision: '0' });
  assert.ok(h2.ok);
  assert.notEqual(h2.res.hash, h1.res.hash);
  assert.equal(h2.res.hash_revision, w.res.header.revision);

  // The past revision keeps its hash, on either proxy.
  const again = await maint(proxyB, 'HashKV', { revision: r1 });
  assert.ok(again.ok);
  assert.equal(again.res.hash, h1.res.hash);
  assert.equal(again.res.hash_revision, r1);
  assert.equal(again.res.header.revision, w.res.header.revision, 'header: the current revision');
  // Setting the value back restores the keyspace but not its revisions: a different hash.
  assert.ok((await put(proxyA, 'hash/k3', 'v3')).ok);
  const h3 = await maint(proxyA, 'HashKV', { revision: '0' });
  assert.ok(h3.ok);
  assert.notEqual(h3.res.hash, h1.res.hash);
  // Stable while nothing changes.
  const h3b = await maint(proxyB, 'HashKV', { revision: '0' });
  assert.ok(h3b.ok);
  assert.equal(h3b.res.hash, h3.res.hash);
});

test('HashKV errors: future and compacted revisions answered like a plain etcd', { timeout: TEST_TIMEOUT }, async () => {
  for (let i = 0; i < 5; i++) {
    assert.ok((await put(proxyA, `hcomp/k${i}`, `v${i}`)).ok);
    assert.ok((await put(plain, `hcomp/k${i}`, `v${i}`)).ok);
  }
  const now = await maint(proxyA, 'HashKV', { revision: '0' });
  assert.ok(now.ok);
  const cur = BigInt(now.res.hash_revision);
  const curPlain = BigInt((await plain.callOrThrow('Maintenance', 'Status', {})).header.revision);

  const future = await maint(proxyA, 'HashKV', { revision: (cur + 100n).toString() });
  const futurePlain = await maint(plain, 'HashKV', { revision: (curPlain + 100n).toString() });
  assert.deepEqual(future, futurePlain);
  assert.deepEqual(future, { ok: false, code: Code.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision is a future revision' });

  const before = await maint(proxyA, 'HashKV', { revision: (cur - 1n).toString() });
  assert.ok(before.ok);
  assert.ok((await proxyA.kv('Compact', { revision: cur.toString() })).ok);
  assert.ok((await plain.kv('Compact', { revision: curPlain.toString() })).ok);

  const compacted = await maint(proxyB, 'HashKV', { revision: (cur - 1n).toString() });
  const compactedPlain = await maint(plain, 'HashKV', { revision: (curPlain - 1n).toString() });
  assert.deepEqual(compacted, compactedPlain);
  assert.deepEqual(compacted, { ok: false, code: Code.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' });

  // Current hash after compaction: compact_revision reported as etcd does.
  const after = await maint(proxyA, 'HashKV', { revision: '0' });
  const afterPlain = await maint(plain, 'HashKV', { revision: '0' });
  assert.ok(after.ok && afterPlain.ok);
  assert.equal(after.res.compact_revision, cur.toString());
  assert.equal(afterPlain.res.compact_revision, curPlain.toString());
  // At the compaction revision itself: served (etcd 3.5's rule; 3.4 refused it).
  const at = await maint(proxyA, 'HashKV', { revision: cur.toString() });
  assert.ok(at.ok);
  assert.equal(at.res.hash, after.res.hash);
});

test('MoveLeader answers as a one-member etcd (itself: OK; anyone else: bad leader transferee); Hash is refused', { timeout: TEST_TIMEOUT }, async () => {
  const selfId: string = (await proxyA.callOrThrow('Maintenance', 'Status', {})).header.member_id;
  const plainId: string = (await plain.callOrThrow('Maintenance', 'Status', {})).header.member_id;
  const toSelf = await maint(proxyA, 'MoveLeader', { targetID: selfId });
  const toSelfPlain = await maint(plain, 'MoveLeader', { targetID: plainId });
  assert.equal(toSelf.ok, true);
  assert.equal(toSelfPlain.ok, true);
  const elsewhere = await maint(proxyA, 'MoveLeader', { targetID: '12345' });
  const elsewherePlain = await maint(plain, 'MoveLeader', { targetID: '12345' });
  assert.deepEqual(elsewhere, elsewherePlain);
  assert.deepEqual(elsewhere, { ok: false, code: Code.FAILED_PRECONDITION, details: 'etcdserver: bad leader transferee' });

  const hash = await maint(proxyA, 'Hash');
  assert.equal(hash.ok, false);
  if (!hash.ok) {
    assert.equal(hash.code, Code.UNIMPLEMENTED);
    assert.match(hash.details, /Maintenance\.Hash .*use HashKV/);
  }
});
