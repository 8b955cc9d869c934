/**
 * Differential test: the same scripted requests against the proxy (3 shards, 64 partitions,
 * routingPrefixSegments = 2) and against a plain etcd, compared field by field with revisions
 * compared by order (see diff-engine.ts for the rules and diff-script.ts for the key layout).
 *
 * E2E_SUBJECT=oracle runs the script against a second plain etcd instead of the proxy (to
 * validate the script and the comparison itself). E2E_DIFF_DUMP=FILE appends every step's
 * normalised oracle result to FILE.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { DiffRunner, formatMismatches, type Mismatch, type Section, type Step } from './diff-engine.js';
import { differentialScript, cmp, del, get, getPrefix, opGet, opPut, prefixReq, put, txn } from './diff-script.js';
import { Cleanup, RawClient, metricTotal, startMeta, startOracle, type Meta } from './harness.js';
import { Code, b, type CallResult } from './grpc-raw.js';

const SUBJECT = process.env.E2E_SUBJECT === 'oracle' ? 'oracle' : 'proxy';

const cleanup = new Cleanup();
let oracle: RawClient;
let oracle2: RawClient;
let subject: RawClient;
let meta: Meta | undefined;

/** Per-test limit: no test may hang (each raw call also has its own 15 s deadline). */
const TEST_TIMEOUT = 180_000;
const SETUP_TIMEOUT = 120_000;

before(async () => {
  try {
    const [o1, o2] = await Promise.all([startOracle('oracle'), startOracle('oracle2')]);
    cleanup.add('stop oracles', () => Promise.all([o1.stop(), o2.stop()]));
    oracle = new RawClient(o1.address);
    oracle2 = new RawClient(o2.address);
    cleanup.add('close oracle clients', () => {
      oracle.close();
      oracle2.close();
    });
    if (SUBJECT === 'proxy') {
      // Proxies added later (the proxy-only checks) run without the read cache: the member path.
      meta = await startMeta({
        tag: 'diff',
        shards: 3,
        partitions: 64,
        routingPrefixSegments: 2,
        configure: (cfg, i) => {
          if (i > 0) cfg.cache = { ...cfg.cache, enabled: false };
        },
      });
      cleanup.add('stop meta', () => meta!.stop());
      subject = new RawClient(meta.addresses[0]!);
    } else {
      subject = new RawClient(o2.address);
    }
    cleanup.add('close subject client', () => subject.close());
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}, { timeout: SETUP_TIMEOUT });

after(() => cleanup.run(), { timeout: SETUP_TIMEOUT });

describe('comparison engine self-test (plain etcd vs plain etcd, injected faults)', () => {
  // A small script on fresh prefixes; each scenario corrupts the second side's results in one way.
  const mini = (p: string): Section => ({
    name: `mini ${p}`,
    steps: [
      put('a1', `${p}a`, '1'),
      put('b1', `${p}b`, '1'),
      put('a2', `${p}a`, '2'),
      get('get-a', `${p}a`),
      getPrefix('list', p),
      del('del-missing', { key: b(`${p}zz`) }),
      put('c1', `${p}c`, '1'),
      getPrefix('list-hist', p, { revision: (c: { rev(s: string): bigint }) => String(c.rev('a2')) }),
      txn('txn', { compare: [cmp('MOD', 'EQUAL', `${p}a`, (c: { rev(s: string): bigint }) => String(c.rev('a2')))], success: [opPut(`${p}a`, '3')], failure: [opGet(`${p}a`)] }),
    ],
  });

  const run = async (p: string, mutate?: (step: Step, r: CallResult) => CallResult): Promise<Mismatch[]> => {
    const runner = new DiffRunner(oracle, oracle2, ['oracle', 'faulty']);
    if (mutate) runner.mutateSubject = mutate;
    await runner.init();
    const ms = await runner.runSection(mini(p));
    // Keep the oracles' keyspaces free of self-test keys (the main script ranges over all keys).
    await oracle.kv('DeleteRange', prefixReq(p));
    await oracle2.kv('DeleteRange', prefixReq(p));
    return ms;
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const clone = (r: CallResult): any => structuredClone(r);

  test('no fault: no mismatch', { timeout: TEST_TIMEOUT }, async () => {
    const ms = await run('st0/');
    assert.equal(ms.length, 0, formatMismatches(ms));
  });

  test('two writes reported in swapped order are detected', { timeout: TEST_TIMEOUT }, async () => {
    let a1 = '0';
    const ms = await run('st1/', (step, r) => {
      if (!r.ok) return r;
      const x = clone(r);
      if (step.name === 'a1') a1 = x.res.header.revision;
      if (step.name === 'b1') x.res.header.revision = String(BigInt(a1) - 1n); // b1 "before" a1
      return x;
    });
    assert.ok(ms.some((m) => m.step === 'b1' && /out of order/.test(m.problem)), formatMismatches(ms));
  });

  test('mod_revisions of two keys swapped in a range are detected', { timeout: TEST_TIMEOUT }, async () => {
    const ms = await run('st2/', (step, r) => {
      if (!r.ok || step.name !== 'list') return r;
      const x = clone(r);
      const [ka, kb] = x.res.kvs;
      [ka.mod_revision, kb.mod_revision] = [kb.mod_revision, ka.mod_revision];
      return x;
    });
    assert.ok(ms.some((m) => m.step === 'list'), formatMismatches(ms));
  });

  test('a wrong create_revision is detected', { timeout: TEST_TIMEOUT }, async () => {
    const ms = await run('st3/', (step, r) => {
      if (!r.ok || step.name !== 'get-a') return r;
      const x = clone(r);
      x.res.kvs[0].create_revision = x.res.kvs[0].mod_revision;
      return x;
    });
    assert.ok(ms.some((m) => m.step === 'get-a'), formatMismatches(ms));
  });

  test('a create_revision off by one (a gap revision) is detected', { timeout: TEST_TIMEOUT }, async () => {
    const ms = await run('st4/', (step, r) => {
      if (!r.ok || step.name !== 'list') return r;
      const x = clone(r);
      x.res.kvs[0].create_revision = String(BigInt(x.res.kvs[0].create_revision) + 1n);
      return x;
    });
    assert.ok(ms.some((m) => m.step === 'list'), formatMismatches(ms));
  });

  test('a wrong version is detected', { timeout: TEST_TIMEOUT }, async () => {
    const ms = await run('st5/', (step, r) => {
      if (!r.ok || step.name !== 'get-a') return r;
      const x = clone(r);
      x.res.kvs[0].version = String(Number(x.res.kvs[0].version) + 1);
      return x;
    });
    assert.ok(ms.some((m) => m.step === 'get-a'), formatMismatches(ms));
  });

  test('a read header below a returned mod_revision is detected', { timeout: TEST_TIMEOUT }, async () => {
    const ms = await run('st6/', (step, r) => {
      if (!r.ok || step.name !== 'list') return r;
      const x = clone(r);
      x.res.header.revision = String(BigInt(x.res.kvs[0].mod_revision) - 1n);
      return x;
    });
    assert.ok(ms.some((m) => m.step === 'list' && /header.revision/.test(m.problem)), formatMismatches(ms));
  });

  test('a past-revision read answering with the requested revision (not the current one) is detected', { timeout: TEST_TIMEOUT }, async () => {
    let a2 = '0';
    const ms = await run('st9/', (step, r) => {
      if (!r.ok) return r;
      const x = clone(r);
      if (step.name === 'a2') a2 = x.res.header.revision;
      if (step.name === 'list-hist') x.res.header.revision = a2;
      return x;
    });
    assert.ok(ms.some((m) => m.step === 'list-hist'), formatMismatches(ms));
  });

  test('a write acknowledged at a revision that is not its own is detected', { timeout: TEST_TIMEOUT }, async () => {
    const ms = await run('st7/', (step, r) => {
      if (!r.ok || step.name !== 'c1') return r;
      const x = clone(r);
      x.res.header.revision = String(BigInt(x.res.header.revision) + 5n);
      return x;
    });
    assert.ok(ms.length > 0, 'expected a mismatch for a header revision that no kv carries');
  });

  test('a different error message is detected', { timeout: TEST_TIMEOUT }, async () => {
    const ms = await run('st8/', (step, r) => {
      if (step.name !== 'del-missing') return r;
      return { ok: false, code: Code.INVALID_ARGUMENT, details: 'etcdserver: something else' };
    });
    assert.ok(ms.some((m) => m.step === 'del-missing'), formatMismatches(ms));
  });
});

describe(`differential: plain etcd vs ${SUBJECT}`, () => {
  let runner: DiffRunner;
  const cache = { hits: 0, misses: 0, history: 0 };
  before(async () => {
    runner = new DiffRunner(oracle, subject, ['etcd', SUBJECT]);
    await runner.init();
    cache.hits = await metricTotal('etcd_metaproxy_cache_hits_total');
    cache.misses = await metricTotal('etcd_metaproxy_cache_misses_total');
    cache.history = await metricTotal('etcd_metaproxy_cache_misses_total', { reason: 'history' });
  }, { timeout: SETUP_TIMEOUT });
  for (const section of differentialScript()) {
    test(section.name, { timeout: TEST_TIMEOUT }, async () => {
      const ms = await runner.runSection(section);
      if (process.env.E2E_DIFF_DUMP) fs.appendFileSync(process.env.E2E_DIFF_DUMP, runner.log.splice(0).join('\n') + '\n');
      assert.equal(ms.length, 0, `${ms.length} mismatch(es):\n${formatMismatches(ms)}`);
    });
  }
  if (SUBJECT === 'proxy') {
    test('the ranges above were answered from the read cache', async () => {
      const hits = (await metricTotal('etcd_metaproxy_cache_hits_total')) - cache.hits;
      const misses = (await metricTotal('etcd_metaproxy_cache_misses_total')) - cache.misses;
      const history = (await metricTotal('etcd_metaproxy_cache_misses_total', { reason: 'history' })) - cache.history;
      console.error(`differential: cache hits ${hits}, misses ${misses} (past revisions inside txns: ${history})`);
      assert.ok(hits >= 100, `only ${hits} reads were served from the cache`);
      // Only txns that read a past revision go to the members (kv/txn-snapshot.ts).
      assert.equal(misses - history, 0, `${misses - history} reads went to the members`);
      assert.ok(history <= 5, `${history} txns read history from the members`);
    });
  }
});

// Only registered when the subject is the proxy (they check proxy-specific behaviour).
if (SUBJECT === 'proxy') describe('proxy-only checks', () => {
  test('a writing txn over keys on two shards fails with FAILED_PRECONDITION (cross-shard) and writes nothing', { timeout: TEST_TIMEOUT }, async () => {
    const m = meta!;
    // Keys with one '/' are routed by the whole key: find two that live on different shards.
    const byShard = new Map<number, string>();
    for (let i = 0; i < 20 && byShard.size < 2; i++) {
      const key = `xs/${i}`;
      const r = await subject.kv('Put', { key: b(key), value: b('orig') });
      assert.ok(r.ok, `put ${key}: ${JSON.stringify(r)}`);
      const shard = await m.shardOf(key);
      assert.ok(shard >= 0, `${key} not found in any member`);
      if (!byShard.has(shard)) byShard.set(shard, key);
    }
    assert.equal(byShard.size, 2, 'could not find keys on two shards');
    const [k1, k2] = [...byShard.values()] as [string, string];
    const attempts = [
      { name: 'two puts', req: { compare: [], success: [opPut(k1, 'new'), opPut(k2, 'new')], failure: [] } },
      { name: 'compare on one shard, put on another', req: { compare: [cmp('VERSION', 'GREATER', k1, '0')], success: [opPut(k2, 'new')], failure: [] } },
      { name: 'put in success, put in failure on another shard', req: { compare: [], success: [opPut(k1, 'new')], failure: [opPut(k2, 'new')] } },
      { name: 'put and a range on another shard', req: { compare: [], success: [opPut(k1, 'new'), opGet(k2)], failure: [] } },
    ];
    const problems: string[] = [];
    for (const a of attempts) {
      const r = await subject.kv('Txn', a.req);
      if (r.ok) problems.push(`${a.name}: succeeded (${JSON.stringify(r.res.succeeded)}) but must fail`);
      else if (r.code !== Code.FAILED_PRECONDITION || !/cross-shard/.test(r.details))
        problems.push(`${a.name}: got ${Code[r.code]} "${r.details}", want FAILED_PRECONDITION containing "cross-shard"`);
    }
    for (const k of [k1, k2]) {
      const r = await subject.kv('Range', { key: b(k) });
      assert.ok(r.ok);
      if (r.res.kvs[0]?.value.toString() !== 'orig') problems.push(`${k} changed to ${r.res.kvs[0]?.value} by a rejected txn`);
    }
    assert.deepEqual(problems, []);
  });

  test('a read at a past revision answers with the current revision, from the cache and from the members', { timeout: TEST_TIMEOUT }, async () => {
    const m = meta!;
    const memberPath = new RawClient((await m.addProxy()).address);
    try {
      // Written and first read through the member-path proxy (idle shards are usually fenced up
      // by the merged streams within fenceDelayMs anyway: this checks the header, not the fence).
      const first = await memberPath.kv('Put', { key: b('pr/a'), value: b('old') });
      assert.ok(first.ok);
      const past = first.res.header.revision as string;
      // Writes after it, the last one on another shard (keys with one '/' are routed by the whole key).
      const shardOfA = await m.shardOf('pr/a');
      let current = 0n;
      for (let i = 0; ; i++) {
        assert.ok(i < 40, 'no key found on another shard');
        const w = await memberPath.kv('Put', { key: b(`pr/k${i}`), value: b('x') });
        assert.ok(w.ok);
        current = BigInt(w.res.header.revision);
        if (i >= 4 && (await m.shardOf(`pr/k${i}`)) !== shardOfA) break;
      }
      const problems: string[] = [];
      for (const [label, c] of [['members', memberPath], ['cache', subject]] as const) {
        for (const serializable of [false, true]) {
          // A serializable read through another proxy may trail; the member path reads the clock anyway.
          if (serializable && label === 'members') continue;
          const r = await c.kv('Range', { key: b('pr/a'), revision: past, serializable });
          assert.ok(r.ok, `${label}: ${r.ok ? '' : r.details}`);
          assert.equal(r.res.kvs[0]?.value.toString(), 'old', `${label}: the value at the past revision`);
          const h = BigInt(r.res.header.revision);
          if (h < current) problems.push(`${label}${serializable ? ' serializable' : ''}: Range at ${past}: header ${h} < current ${current}`);
          // Later reads of that key never stand below the header it was given.
          const now = await c.kv('Range', { key: b('pr/a') });
          assert.ok(now.ok);
          if (BigInt(now.res.header.revision) < h) problems.push(`${label}: a later read's header ${now.res.header.revision} < ${h}`);
        }
        const t = await c.kv('Txn', { compare: [], success: [opGet('pr/a', { revision: past })], failure: [] });
        assert.ok(t.ok, `${label}: ${t.ok ? '' : t.details}`);
        assert.equal(t.res.responses[0].response_range.kvs[0]?.value.toString(), 'old');
        for (const [what, rev] of [['txn', t.res.header.revision], ['its range', t.res.responses[0].response_range.header.revision]]) {
          if (BigInt(rev) < current) problems.push(`${label}: read-only Txn at ${past}: ${what} header ${rev} < current ${current}`);
        }
      }
      assert.deepEqual(problems, []);
    } finally {
      memberPath.close();
    }
  });

  test('invalid sort order / target gets etcd 3.5\'s "invalid sort option"', { timeout: TEST_TIMEOUT }, async () => {
    for (const req of [{ key: b('k/a'), sort_order: 7 }, { key: b('k/a'), sort_target: 9 }]) {
      const r = await subject.kv('Range', req);
      assert.ok(!r.ok, `range ${JSON.stringify(req)} succeeded`);
      assert.deepEqual({ code: Code[r.code], details: r.details }, { code: 'INVALID_ARGUMENT', details: 'etcdserver: invalid sort option' });
    }
  });

  test('system keys are neither visible nor writable', { timeout: TEST_TIMEOUT }, async () => {
    const all = await subject.kv('Range', { key: Buffer.from([0]), range_end: Buffer.from([0]), keys_only: true });
    assert.ok(all.ok);
    const hidden = (all.res.kvs as Array<{ key: Buffer }>).filter((kv) => kv.key[0] === 0xff);
    assert.deepEqual(hidden.map((kv) => kv.key.toString('hex')), []);
    const reserved = Buffer.from([0xff, 0xff, 0xff, 0x41]);
    const r = await subject.kv('Put', { key: reserved, value: b('x') });
    assert.ok(!r.ok, 'put of a reserved key succeeded');
    assert.equal(Code[r.code], 'INVALID_ARGUMENT', r.details);
  });
});

