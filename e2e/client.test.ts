/**
 * The `etcd3` npm client through the proxy: put/get/getAll/delete, transactions via
 * if().then().else(), a put naming an ungranted lease, namespaces and historical reads (the
 * Lease and Watch services are not part of this suite). Every scenario runs
 * against a plain etcd too, and the observations (with revisions reduced to their order) must be
 * identical, besides the explicit expectations asserted here.
 *
 * E2E_SUBJECT=oracle runs against a second plain etcd instead of the proxy (validation).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { Cleanup, etcd3Client, startMeta, startOracle } from './harness.js';

const cleanup = new Cleanup();
const SETUP_TIMEOUT = 120_000;
let oracle: Etcd3;
let subject: Etcd3;

before(async () => {
  try {
    const o = await startOracle('oracle-client');
    cleanup.add('stop oracle', () => o.stop());
    oracle = etcd3Client(o.address);
    cleanup.add('close oracle client', () => oracle.close());
    let address: string;
    if (process.env.E2E_SUBJECT === 'oracle') {
      const o2 = await startOracle('oracle-client2');
      cleanup.add('stop oracle2', () => o2.stop());
      address = o2.address;
    } else {
      const meta = await startMeta({ tag: 'client', shards: 3 });
      cleanup.add('stop meta', () => meta.stop());
      address = meta.addresses[0]!;
    }
    subject = etcd3Client(address);
    cleanup.add('close subject client', () => subject.close());
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}, { timeout: SETUP_TIMEOUT });

after(() => cleanup.run(), { timeout: SETUP_TIMEOUT });

/** Records observations; revisions are replaced by their rank among this client's writes. */
class Recorder {
  readonly obs: Array<[string, unknown]> = [];
  private readonly writes: bigint[] = [];
  write(rev: string | number): void {
    this.writes.push(BigInt(rev));
  }
  rank(rev: string | number): string {
    const v = BigInt(rev);
    const i = this.writes.indexOf(v);
    if (i >= 0) return `w${i + 1}`;
    return `between(w${this.writes.filter((w) => w < v).length})`;
  }
  see(what: string, value: unknown): void {
    this.obs.push([what, value]);
  }
}

/** Runs `scenario` on both clients; asserts equal observations and returns the subject's. */
async function both(scenario: (c: Etcd3, r: Recorder) => Promise<void>): Promise<Array<[string, unknown]>> {
  const ro = new Recorder();
  await scenario(oracle, ro);
  const rs = new Recorder();
  await scenario(subject, rs);
  assert.deepEqual(rs.obs, ro.obs, 'observations through the proxy differ from plain etcd');
  return rs.obs;
}

test('put / get / getAll / delete', { timeout: 60_000 }, async () => {
  await both(async (c, r) => {
    r.write((await c.put('cl/a').value('1')).header.revision);
    assert.equal(await c.get('cl/a').string(), '1');
    r.see('get a', await c.get('cl/a').string());
    const prev = await c.put('cl/a').value('2').getPrevious();
    r.write((await c.get('cl/a').exec()).kvs[0]!.mod_revision);
    assert.equal(prev.value.toString(), '1');
    r.see('prev', prev.value.toString());
    for (let i = 0; i < 10; i++) r.write((await c.put(`cl/k${i}`).value(`v${i}`)).header.revision);
    const all = await c.getAll().prefix('cl/k').strings();
    assert.equal(Object.keys(all).length, 10);
    r.see('getAll prefix', all);
    r.see('keys', await c.getAll().prefix('cl/k').keys());
    r.see('count', await c.getAll().prefix('cl/k').count());
    assert.equal(await c.getAll().prefix('cl/k').count(), 10);
    const top3 = await c.getAll().prefix('cl/k').sort('Key', 'Descend').limit(3).keys();
    assert.deepEqual(top3, ['cl/k9', 'cl/k8', 'cl/k7']);
    r.see('sort key desc limit 3', top3);
    r.see('sort mod asc limit 2', await c.getAll().prefix('cl/k').sort('Mod', 'Ascend').limit(2).keys());
    r.see('sort value desc', await c.getAll().prefix('cl/').sort('Value', 'Descend').keys());
    const res = await c.getAll().prefix('cl/k').limit(4).exec();
    r.see('limit exec', { more: res.more, count: res.count, keys: res.kvs.map((kv) => kv.key.toString()) });
    const kv = (await c.get('cl/k3').exec()).kvs[0]!;
    r.see('kv fields', { version: kv.version, create: r.rank(kv.create_revision), mod: r.rank(kv.mod_revision), lease: kv.lease });
    const del = await c.delete().key('cl/a').exec();
    r.write(del.header.revision);
    r.see('deleted', del.deleted);
    assert.equal(await c.get('cl/a').string(), null);
    r.see('get deleted', await c.get('cl/a').string());
    const prevs = await c.delete().prefix('cl/k').getPrevious();
    r.see('delete prefix prev', prevs.map((p) => [p.key.toString(), p.value.toString(), p.version]));
    assert.equal(prevs.length, 10);
    r.see('after delete', await c.getAll().prefix('cl/').keys());
    r.see('missing exists()', await c.get('cl/none').exists());
  });
});

test('historical reads (.revision) and revision filters', { timeout: 60_000 }, async () => {
  await both(async (c, r) => {
    const p1 = await c.put('hi/x').value('1');
    r.write(p1.header.revision);
    const p2 = await c.put('hi/x').value('2');
    r.write(p2.header.revision);
    r.see('at p1', await c.get('hi/x').revision(p1.header.revision).string());
    r.see('at p2', await c.get('hi/x').revision(p2.header.revision).string());
    r.see('min mod', await c.getAll().prefix('hi/').minModRevision(p2.header.revision).keys());
    r.see('max mod', await c.getAll().prefix('hi/').maxModRevision(p1.header.revision).keys());
  });
});

test('transactions: if().then().else()', { timeout: 60_000 }, async () => {
  await both(async (c, r) => {
    const create = () => c.if('tx/a', 'Mod', '==', 0).then(c.put('tx/a').value('v1')).commit();
    const t1 = await create();
    r.write(t1.header.revision);
    assert.equal(t1.succeeded, true);
    r.see('create', t1.succeeded);
    const t2 = await create();
    assert.equal(t2.succeeded, false);
    r.see('create again', t2.succeeded);
    const t3 = await c.if('tx/a', 'Value', '==', 'v1').then(c.put('tx/a').value('v2')).else(c.get('tx/a')).commit();
    r.write(t3.header.revision);
    r.see('update by value', t3.succeeded);
    const t4 = await c.if('tx/a', 'Mod', '==', t1.header.revision).then(c.put('tx/a').value('v3')).else(c.get('tx/a')).commit();
    assert.equal(t4.succeeded, false);
    const got = t4.responses[0]!.response_range!.kvs[0]!;
    r.see('stale update else branch', { value: got.value.toString(), version: got.version, mod: r.rank(got.mod_revision) });
    const t5 = await c.if('tx/a', 'Version', '>', 1).and('tx/a', 'Create', '==', t1.header.revision).then(c.delete().key('tx/a')).commit();
    r.write(t5.header.revision);
    r.see('delete guarded', { ok: t5.succeeded, deleted: t5.responses[0]?.response_delete_range?.deleted });
    r.see('gone', await c.get('tx/a').string());
  });
});

test('put with a lease that was never granted fails', { timeout: 60_000 }, async () => {
  await both(async (c, r) => {
    const err = await c
      .put('ls/b')
      .value('1')
      .lease('123456789')
      .then(
        () => 'ok',
        (e: Error) => `${e.constructor.name}: ${e.message}`,
      );
    assert.notEqual(err, 'ok', 'put with an unknown lease succeeded');
    r.see('unknown lease', err);
    r.see('key not written', await c.get('ls/b').string());
  });
});

test('namespaces', { timeout: 60_000 }, async () => {
  await both(async (c, r) => {
    const ns = c.namespace('ns1/');
    await ns.put('a').value('1');
    await ns.put('b').value('2');
    r.see('raw get', await c.get('ns1/a').string());
    r.see('ns getAll', await ns.getAll().strings());
    r.see('ns count', await ns.getAll().count());
    await ns.delete().all();
    r.see('after ns delete all', await c.getAll().prefix('ns1/').keys());
  });
});
