/**
 * Lease expiry and revoke as a watcher sees them: one DELETE event per key, with prev_kv (the
 * value and the lease it held), at a revision above the puts, on a plain etcd and through the
 * proxy alike (keys on every shard). Needs the Watch service (it lands on its own branch).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { Cleanup, RawClient, etcd3Client, startMeta, startOracle, waitFor } from './harness.js';

const cleanup = new Cleanup();
const SETUP_TIMEOUT = 120_000;
const T = 60_000;
let oracle: Etcd3;
let proxy: Etcd3;
let proxyAddress: string;

before(async () => {
  try {
    const [o, m] = await Promise.all([startOracle('oracle-lease-watch'), startMeta({ tag: 'lease-watch', shards: 3 })]);
    cleanup.add('stop oracle', () => o.stop());
    cleanup.add('stop meta', () => m.stop());
    oracle = etcd3Client(o.address);
    proxy = etcd3Client(m.addresses[0]!);
    proxyAddress = m.addresses[0]!;
    cleanup.add('close clients', () => {
      oracle.close();
      proxy.close();
    });
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}, { timeout: SETUP_TIMEOUT });

after(() => cleanup.run(), { timeout: SETUP_TIMEOUT });

interface Seen {
  key: string;
  rev: bigint;
  prevValue: string | null;
  prevLease: string | null;
}

/** Grants, attaches `n` keys, ends the lease (`end`), and returns the DELETE events a prefix watcher saw. */
async function scenario(client: Etcd3, prefix: string, n: number, end: 'expire' | 'revoke'): Promise<{ seen: Seen[]; lastPut: bigint; leaseId: string }> {
  const seen: Seen[] = [];
  const watcher = await client.watch().prefix(prefix).withPreviousKV().create();
  try {
    watcher.on('delete', (kv, prev) => {
      seen.push({ key: kv.key.toString(), rev: BigInt(kv.mod_revision), prevValue: prev ? prev.value.toString() : null, prevLease: prev ? String(prev.lease) : null });
    });
    const g = await client.leaseClient.leaseGrant({ TTL: 2, ID: 0 });
    const leaseId = String(g.ID);
    let lastPut = 0n;
    for (let i = 0; i < n; i++) {
      const r = await client.kv.put({ key: Buffer.from(`${prefix}${i}`), value: Buffer.from(`v${i}`), lease: leaseId });
      lastPut = BigInt(r.header.revision);
    }
    if (end === 'revoke') await client.leaseClient.leaseRevoke({ ID: leaseId });
    await waitFor(() => seen.length >= n, 15_000, `${n} DELETE events under ${prefix}`);
    return { seen, lastPut, leaseId };
  } finally {
    await watcher.cancel();
  }
}

/**
 * Fails fast (instead of leaving the etcd3 client retrying forever) when the proxy does not
 * serve Watch: one raw watch create must be answered.
 */
async function assertWatchServed(address: string): Promise<void> {
  const raw = new RawClient(address);
  try {
    const svc = raw.service('Watch') as unknown as { Watch: () => grpc.ClientDuplexStream<object, { created: boolean }> };
    const call = svc.Watch();
    const outcome = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('no answer within 5 s'), 5000);
      call.on('data', (res) => {
        clearTimeout(timer);
        resolve(res.created ? 'ok' : 'an answer other than created');
      });
      call.on('error', (err: grpc.ServiceError) => {
        clearTimeout(timer);
        resolve(`${err.code} ${err.details}`);
      });
      call.write({ create_request: { key: Buffer.from('lw'), range_end: Buffer.from('lx') } });
    });
    call.cancel();
    assert.equal(outcome, 'ok', 'the proxy serves Watch');
  } finally {
    raw.close();
  }
}

for (const end of ['expire', 'revoke'] as const) {
  test(`lease ${end}: every watcher sees a DELETE with prev_kv per key, as on etcd`, { timeout: T }, async () => {
    await assertWatchServed(proxyAddress);
    const n = 12;
    const [e, p] = await Promise.all([scenario(oracle, `lw-${end}/`, n, end), scenario(proxy, `lw-${end}/`, n, end)]);
    const shape = (r: { seen: Seen[]; leaseId: string }) =>
      r.seen.map((s) => ({ key: s.key, prevValue: s.prevValue, prevLeaseIsTheLease: s.prevLease === r.leaseId })).sort((a, b) => a.key.localeCompare(b.key));
    assert.deepEqual(shape(p), shape(e));
    assert.equal(p.seen.length, n, 'one event per key, none twice');
    for (const s of p.seen) assert.ok(s.rev > p.lastPut, `DELETE of ${s.key} at ${s.rev}, after the last put (${p.lastPut})`);
    const revs = p.seen.map((s) => s.rev);
    assert.deepEqual([...revs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), revs, 'events in revision order');
  });
}
