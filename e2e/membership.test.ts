/**
 * Cluster.MemberList lists every live proxy replica: each registers itself in the coordinator
 * under a coordinator lease and deregisters on close; a replica killed without deregistering
 * drops out when its lease expires. Clients that sync endpoints (etcdctl `member list`, clientv3
 * auto-sync) find every replica's client URL, and each listed URL serves.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../src/local/ports.js';
import { REGISTRATION_TTL_SECONDS } from '../src/membership/registration.js';
import { Cleanup, RawClient, etcdctl, startMeta, waitFor, type Meta } from './harness.js';

const cleanup = new Cleanup();
const MAIN = path.resolve(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
let meta: Meta;

before(async () => {
  meta = await startMeta({ tag: 'members', shards: 2, proxies: 2 });
  cleanup.add('stop meta', () => meta.stop());
}, { timeout: 120_000 });
after(() => cleanup.run(), { timeout: 120_000 });

interface ListedMember {
  ID: string;
  name: string;
  clientURLs: string[];
}

async function memberList(address: string): Promise<{ memberId: string; members: ListedMember[] }> {
  const c = new RawClient(address);
  try {
    const res = await c.callOrThrow<{ header: { member_id: string }; members: ListedMember[] }>('Cluster', 'MemberList', {});
    return { memberId: res.header.member_id, members: res.members };
  } finally {
    c.close();
  }
}

const urlsOf = (members: ListedMember[]) => members.flatMap((m) => m.clientURLs).sort();

test('both replicas list both replicas, with stable ids; a closed one is gone', { timeout: 120_000 }, async () => {
  const [a, b] = meta.addresses as [string, string];
  const viaA = await memberList(a);
  const viaB = await memberList(b);
  assert.deepEqual(urlsOf(viaA.members), [`http://${a}`, `http://${b}`].sort());
  assert.deepEqual(viaA.members, viaB.members, 'every replica gives the same list');
  const ids = viaA.members.map((m) => m.ID);
  assert.equal(new Set(ids).size, 2, 'distinct ids');
  assert.deepEqual([...ids].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : 1)), ids, 'ordered by id as etcd orders members');
  // Each replica's header names its own entry.
  assert.equal(viaA.members.find((m) => m.clientURLs[0] === `http://${a}`)?.ID, viaA.memberId);
  assert.equal(viaB.members.find((m) => m.clientURLs[0] === `http://${b}`)?.ID, viaB.memberId);
  // Stable: asking again gives the same ids.
  assert.deepEqual((await memberList(a)).members.map((m) => m.ID), ids);

  // etcdctl sees both, and every listed URL answers as an etcd endpoint.
  const listed = await etcdctl(a, ['member', 'list', '-w', 'json']);
  assert.equal(listed.code, 0, listed.stderr);
  const j = JSON.parse(listed.stdout.replace(/:(\d{15,})/g, ':"$1"')) as { members: Array<{ clientURLs: string[] }> };
  const urls = j.members.flatMap((m) => m.clientURLs).sort();
  assert.deepEqual(urls, [`http://${a}`, `http://${b}`].sort());
  for (const url of urls) {
    const st = await etcdctl(url, ['endpoint', 'status']);
    assert.equal(st.code, 0, `${url}: ${st.stderr}`);
  }

  await meta.proxies[1]!.close();
  const after = await memberList(a);
  assert.deepEqual(urlsOf(after.members), [`http://${a}`], 'deregistered on close, right away');
  assert.equal(after.members[0]!.ID, viaA.memberId);
});

test('a replica killed without deregistering drops out when its lease expires', { timeout: 120_000 }, async () => {
  const listen = `127.0.0.1:${await freePort()}`;
  const { cluster } = meta;
  const child = spawn(
    process.execPath,
    [
      '--import', 'tsx', MAIN, 'serve',
      '--listen', listen,
      '--metrics-listen', '',
      '--coordinator-endpoints', cluster.coordinator.clientUrl,
      '--shards', cluster.shards.map((s) => `${s.name}=${s.clientUrl}`).join(';'),
      '--partitions', '64',
      '--log-level', 'warn',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  cleanup.add('kill serve', async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('etcd-metaproxy ready on')) resolve();
    });
    void exited.then(() => reject(new Error('serve exited before it was ready')));
  });
  const a = meta.addresses[0]!;
  assert.ok(urlsOf((await memberList(a)).members).includes(`http://${listen}`), 'the new replica is listed');

  child.kill('SIGKILL');
  await exited;
  const killedAt = Date.now();
  assert.ok(urlsOf((await memberList(a)).members).includes(`http://${listen}`), 'still listed until its lease expires');
  await waitFor(async () => !urlsOf((await memberList(a)).members).includes(`http://${listen}`), (REGISTRATION_TTL_SECONDS + 10) * 1000, 'the killed replica to drop out');
  assert.ok(Date.now() - killedAt >= (REGISTRATION_TTL_SECONDS - 4) * 1000, 'it went away by lease expiry, not earlier');
});
