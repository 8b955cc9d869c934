/**
 * The real etcdctl (3.4) against the proxy and against a plain etcd: same commands, outputs
 * compared after normalising what legitimately differs (revision numbers → their order among
 * this side's writes, endpoint addresses, member/cluster/lease IDs, db size, raft indexes, server
 * version, timings, client-side log lines).
 *
 * The proxy runs with routingPrefixSegments = 2, so multi-key write txns use `/t/...` keys (one
 * routing prefix, one shard); `c/1`, `c/2`, ... (one '/') are spread over the shards.
 * E2E_SUBJECT=oracle runs against a second plain etcd instead of the proxy (validation);
 * E2E_CTL_DUMP=FILE appends every command's normalised etcd output to FILE.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Cleanup, etcdctl, startMeta, startOracle, type EtcdctlResult } from './harness.js';

const cleanup = new Cleanup();
/** Per-test limit: no test may hang (each etcdctl run is also killed after 30 s). */
const TEST_TIMEOUT = 180_000;
const SETUP_TIMEOUT = 120_000;

/** One side (oracle or proxy): its endpoint and the header revisions of its writes, in order. */
class Side {
  readonly writes: bigint[] = [];
  readonly leaseIds = new Map<string, string>();
  constructor(
    readonly label: string,
    readonly endpoint: string,
  ) {}

  run(args: string[], stdin?: string): Promise<EtcdctlResult> {
    return etcdctl(this.endpoint, args, { stdin });
  }

  /** A revision as its rank among this side's recorded writes ("r3", "r3+gap" between). */
  rank(v: bigint): string {
    if (v === 0n) return '0';
    let floor = 0;
    for (let i = 0; i < this.writes.length; i++) {
      if (this.writes[i] === v) return `r${i + 1}`;
      if (this.writes[i]! < v) floor = i + 1;
    }
    return `r${floor}+gap`;
  }

  leaseName(hexId: string): string {
    let n = this.leaseIds.get(hexId);
    if (!n) {
      n = `LEASE${this.leaseIds.size + 1}`;
      this.leaseIds.set(hexId, n);
    }
    return n;
  }
}

let oracle: Side;
let proxy: Side;

before(async () => {
  try {
    const o = await startOracle('oracle-ctl');
    cleanup.add('stop oracle', () => o.stop());
    oracle = new Side('etcd', o.address);
    if (process.env.E2E_SUBJECT === 'oracle') {
      // Validation mode: a second plain etcd stands in for the proxy.
      const o2 = await startOracle('oracle-ctl2');
      cleanup.add('stop oracle2', () => o2.stop());
      proxy = new Side('etcd2', o2.address);
    } else {
      const m = await startMeta({ tag: 'ctl', shards: 3, routingPrefixSegments: 2 });
      cleanup.add('stop meta', () => m.stop());
      proxy = new Side('proxy', m.addresses[0]!);
    }
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}, { timeout: SETUP_TIMEOUT });

after(() => cleanup.run(), { timeout: SETUP_TIMEOUT });

// --- normalisation ------------------------------------------------------------------------------

const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** etcdctl's client-side warn logs carry random target ids: keep only their gRPC error, and "Error:" lines. */
function normStderr(stderr: string): string[] {
  const out: string[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.trim()) continue;
    if (line.startsWith('{')) {
      try {
        const j = JSON.parse(line) as { error?: string; msg?: string };
        out.push(`log: ${j.msg ?? ''}: ${j.error ?? ''}`);
        continue;
      } catch {
        // fall through
      }
    }
    out.push(line);
  }
  return out;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** Normalises etcdctl's -w json output (numbers may exceed 2^53: IDs are dropped before use). */
function normJson(text: string, side: Side, problems: string[]): Json {
  // Quote 64-bit integers (IDs) so that they survive JSON.parse exactly.
  const j = JSON.parse(text.replace(/([:\[,])(\d{16,})(?=[,}\]])/g, '$1"$2"')) as Json;
  const walk = (x: Json, inHeaderOf?: Json): Json => {
    if (Array.isArray(x)) return x.map((e) => walk(e));
    if (x === null || typeof x !== 'object') return x;
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(x)) {
      if (k === 'cluster_id' || k === 'member_id' || k === 'raft_term') continue;
      if (k === 'header') {
        out.header = walk(v, x);
        continue;
      }
      if (k === 'revision' && inHeaderOf) {
        // Read headers: must be ≥ every mod_revision in the response; value not compared.
        const mods: number[] = [];
        const collect = (y: Json) => {
          if (Array.isArray(y)) y.forEach(collect);
          else if (y && typeof y === 'object') for (const [kk, vv] of Object.entries(y)) kk === 'mod_revision' ? mods.push(vv as number) : collect(vv);
        };
        collect(inHeaderOf);
        if (mods.some((m) => m > (v as number))) problems.push(`${side.label}: header revision ${v} below a mod_revision (${mods})`);
        out.revision = 'R';
        continue;
      }
      if (k === 'create_revision' || k === 'mod_revision') out[k] = side.rank(BigInt(v as number));
      else if (k === 'lease' || k === 'ID') out[k] = BigInt(v as string | number) === 0n ? 0 : side.leaseName(BigInt(v as string | number).toString(16).padStart(16, '0'));
      else if ((k === 'key' || k === 'value') && typeof v === 'string') out[k] = b64(v);
      else out[k] = walk(v);
    }
    return out;
  };
  return walk(j);
}

interface RunSpec {
  args: (s: Side) => string[];
  stdin?: (s: Side) => string;
  /** Output format: 'json' parses stdout; 'text' compares lines after `text` rewriting. */
  json?: boolean;
  text?: (line: string, s: Side) => string;
  /** For writes run with -w json: record the header revision as this side's next write. */
  records?: boolean;
}

interface Outcome {
  code: number | null;
  stdout: Json;
  stderr: string[];
}

async function runOn(side: Side, spec: RunSpec, problems: string[]): Promise<Outcome> {
  const r = await side.run(spec.args(side), spec.stdin?.(side));
  let stdout: Json = r.stdout;
  if (spec.json && r.code === 0) {
    try {
      if (spec.records) {
        const rev = /"revision":(\d+)/.exec(r.stdout);
        if (rev) side.writes.push(BigInt(rev[1]!));
      }
      stdout = normJson(r.stdout, side, problems);
    } catch (err) {
      problems.push(`${side.label}: stdout is not JSON (${(err as Error).message}): ${r.stdout}`);
    }
  } else {
    stdout = r.stdout
      .split('\n')
      .map((l) => (spec.text ? spec.text(l, side) : l))
      .map((l) => l.split(side.endpoint).join('<ENDPOINT>'));
  }
  const stderr = normStderr(r.stderr)
    .map((l) => (spec.text ? spec.text(l, side) : l))
    .map((l) => l.split(side.endpoint).join('<ENDPOINT>'));
  return { code: r.code, stdout, stderr };
}

/** Runs one etcdctl command on both sides and asserts equal normalised results. */
async function same(what: string, spec: RunSpec | string[]): Promise<Outcome> {
  const s: RunSpec = Array.isArray(spec) ? { args: () => spec } : spec;
  const problems: string[] = [];
  const o = await runOn(oracle, s, problems);
  const p = await runOn(proxy, s, problems);
  if (process.env.E2E_CTL_DUMP) fs.appendFileSync(process.env.E2E_CTL_DUMP, `## ${what}: ${s.args(oracle).join(' ')}\n${JSON.stringify(o)}\n`);
  assert.deepEqual(problems, [], `${what}: ${problems.join('; ')}`);
  assert.deepEqual(p, o, `etcdctl ${what}: proxy output differs from etcd's\n  args: ${s.args(proxy).join(' ')}\n`);
  return o;
}

/** A write with -w json whose header revision is recorded as the side's next write. */
const write = (args: string[] | ((s: Side) => string[]), stdin?: (s: Side) => string): RunSpec => ({
  args: (s) => [...(Array.isArray(args) ? args : args(s)), '-w', 'json'],
  stdin,
  json: true,
  records: true,
});

/** This side's mod_revision of a key (from a json get), for --rev and compares. */
async function modRev(side: Side, key: string): Promise<string> {
  const r = await side.run(['get', key, '-w', 'json']);
  const m = /"mod_revision":(\d+)/.exec(r.stdout);
  if (!m) throw new Error(`${side.label}: no mod_revision for ${key}: ${r.stdout} ${r.stderr}`);
  return m[1]!;
}

// --- tests --------------------------------------------------------------------------------------

test('put / get', { timeout: TEST_TIMEOUT }, async () => {
  await same('put a 1', ['put', 'a', '1']);
  await same('put --prev-kv a 2', ['put', '--prev-kv', 'a', '2']);
  await same('put (json)', write(['put', 'b', 'bee']));
  await same('get a', ['get', 'a']);
  await same('get a -w json', { args: () => ['get', 'a', '-w', 'json'], json: true });
  await same('get missing', ['get', 'nope']);
  await same('get missing -w json', { args: () => ['get', 'nope', '-w', 'json'], json: true });
  await same('get --print-value-only', ['get', 'b', '--print-value-only']);
  await same('get --consistency=s', ['get', 'b', '--consistency=s']);
  await same('get --hex', ['get', 'b', '--hex']);
  await same('put with unknown lease', ['put', 'c', '1', '--lease', '1234']);
  await same('put --ignore-value on missing key', ['put', 'zz', '--ignore-value']);
  await same('put value with spaces and newline', ['put', 'sp', 'a b\nc']);
  await same('get sp', ['get', 'sp']);
  await same('put --ignore-lease on an existing key', ['put', '--ignore-lease', 'sp', 'kept-lease']);
  await same('put --ignore-lease on a missing key', ['put', '--ignore-lease', 'nope', 'x']);
  await same('get sp -w json after --ignore-lease', { args: () => ['get', 'sp', '-w', 'json'], json: true });
});

test('get options: --prefix, --from-key, ranges, --limit, --order, --sort-by, --keys-only, --rev, -w json', { timeout: TEST_TIMEOUT }, async () => {
  // Create order 3,1,5,2,4; then updates so that mod order differs from key and create order.
  for (const [k, v] of [['c/3', 'q'], ['c/1', 'z'], ['c/5', 'b'], ['c/2', 'm'], ['c/4', 'f']]) await same(`put ${k}`, write(['put', k!, v!]));
  for (const [k, v] of [['c/2', 'm'], ['c/5', 'b'], ['c/2', 'm'], ['c/1', 'z']]) await same(`update ${k}`, write(['put', k!, v!]));
  await same('put outside c0', write(['put', 'c0', 'outside']));
  await same('get --prefix', ['get', '--prefix', 'c/']);
  await same('get --prefix -w json', { args: () => ['get', '--prefix', 'c/', '-w', 'json'], json: true });
  await same('get range [c/2, c/4)', ['get', 'c/2', 'c/4']);
  await same('get --from-key c/3', ['get', '--from-key', 'c/3']);
  await same('get --from-key c/3 -w json', { args: () => ['get', '--from-key', 'c/3', '-w', 'json'], json: true });
  await same('get --prefix --limit 2', ['get', '--prefix', 'c/', '--limit', '2']);
  await same('get --prefix --limit 2 -w json', { args: () => ['get', '--prefix', 'c/', '--limit', '2', '-w', 'json'], json: true });
  await same('get --prefix --keys-only', ['get', '--prefix', 'c/', '--keys-only']);
  await same('get --prefix --keys-only -w json', { args: () => ['get', '--prefix', 'c/', '--keys-only', '-w', 'json'], json: true });
  for (const sortBy of ['KEY', 'CREATE', 'MODIFY', 'VALUE', 'VERSION']) {
    for (const order of ['ASCEND', 'DESCEND']) {
      await same(`get --sort-by ${sortBy} --order ${order}`, ['get', '--prefix', 'c/', '--sort-by', sortBy, '--order', order]);
      await same(`get --sort-by ${sortBy} --order ${order} --limit 2`, ['get', '--prefix', 'c/', '--sort-by', sortBy, '--order', order, '--limit', '2']);
    }
  }
  await same('get --order DESCEND (key)', ['get', '--prefix', 'c/', '--order', 'DESCEND']);
  // Historical reads: each side at its own revision of the 3rd write to c/... (c/5's creation).
  const revOf = new Map<Side, string>();
  for (const s of [oracle, proxy]) revOf.set(s, String(s.writes[s.writes.length - 8]!)); // c/5 created
  await same('get --prefix --rev', { args: (s) => ['get', '--prefix', 'c/', '--rev', revOf.get(s)!] });
  await same('get --prefix --rev -w json', { args: (s) => ['get', '--prefix', 'c/', '--rev', revOf.get(s)!, '-w', 'json'], json: true });
  await same('get --rev future', { args: (s) => ['get', 'c/1', '--rev', String(s.writes[s.writes.length - 1]! + 1000n)] });
});

test('del: single, missing, --prev-kv, --prefix, range, -w json', { timeout: TEST_TIMEOUT }, async () => {
  for (const k of ['e/1', 'e/2', 'e/3', 'e/4', 'e/5', 'e/6']) await same(`put ${k}`, write(['put', k, `v-${k}`]));
  await same('del single', ['del', 'e/1']);
  await same('del missing', ['del', 'e/1']);
  await same('del --prev-kv', ['del', '--prev-kv', 'e/2']);
  await same('del --prev-kv -w json', { args: () => ['del', '--prev-kv', 'e/3', '-w', 'json'], json: true, records: true });
  await same('del range [e/4, e/5)', ['del', 'e/4', 'e/5']);
  await same('get --prefix e/ after deletes', ['get', '--prefix', 'e/']);
  await same('del --prefix --prev-kv', ['del', '--prefix', '--prev-kv', 'e/']);
  await same('get --prefix e/ after prefix delete', ['get', '--prefix', 'e/']);
  await same('del --prefix of nothing', ['del', '--prefix', 'e/']);
});

test('txn from stdin (non-interactive and -i)', { timeout: TEST_TIMEOUT }, async () => {
  const create = (key: string, value: string) => () => `mod("${key}") = "0"\n\nput ${key} "${value}"\n\nget ${key}\n\n`;
  await same('txn create', { args: () => ['txn'], stdin: create('/t/x', 'v1') });
  await same('txn create again (fails)', { args: () => ['txn'], stdin: create('/t/x', 'v1') });
  await same('txn -i create (fails)', { args: () => ['txn', '-i'], stdin: create('/t/x', 'v1') });
  await same('txn -w json create /t/y', { ...write(['txn']), stdin: create('/t/y', 'v1') });
  // kube-style update at this side's mod revision of /t/x, and a stale one.
  const rev = new Map<Side, string>();
  for (const s of [oracle, proxy]) rev.set(s, await modRev(s, '/t/x'));
  const update = (value: string) => (s: Side) => `mod("/t/x") = "${rev.get(s)}"\n\nput /t/x "${value}"\n\nget /t/x\n\n`;
  await same('txn update', { args: () => ['txn'], stdin: update('v2') });
  await same('txn update stale (fails)', { args: () => ['txn'], stdin: update('v3') });
  await same('txn compares value/version/create', {
    args: () => ['txn'],
    stdin: () => `value("/t/x") = "v2"\nversion("/t/x") = "2"\ncreate("/t/x") > "0"\n\nput /t/z "zz"\ndel /t/y\nget /t/ --prefix\n\nget /t/x\n\n`,
  });
  await same('txn failure branch with del --prev-kv', {
    args: () => ['txn'],
    stdin: () => `version("/t/x") > "5"\n\nput /t/x "never"\n\ndel --prev-kv /t/z\nget /t/ --prefix --keys-only\n\n`,
  });
  await same('txn -w json', { args: () => ['txn', '-w', 'json'], json: true, stdin: () => `version("/t/x") = "2"\n\nget /t/x\n\nget /t/z\n\n` });
  await same('txn duplicate key', { args: () => ['txn'], stdin: () => `\nput /t/d "1"\nput /t/d "2"\n\n\n` });
  await same('txn -i empty compares', { args: () => ['txn', '-i'], stdin: () => `\nget /t/x\n\n\n` });
});

test('compaction', { timeout: TEST_TIMEOUT }, async () => {
  for (const v of ['1', '2', '3']) await same(`put k/cmp ${v}`, write(['put', 'k/cmp', v]));
  const at = (back: number) => (s: Side) => String(s.writes[s.writes.length - back]!);
  const rankText = (line: string, s: Side) => line.replace(/^compacted revision (\d+)$/, (_m, n: string) => `compacted revision ${s.rank(BigInt(n))}`);
  await same('compaction', { args: (s) => ['compaction', at(2)(s)], text: rankText });
  await same('get --rev below compaction', { args: (s) => ['get', 'k/cmp', '--rev', at(3)(s)] });
  await same('get --rev at compaction', { args: (s) => ['get', 'k/cmp', '--rev', at(2)(s)] });
  await same('compaction again (already compacted)', { args: (s) => ['compaction', at(2)(s)], text: rankText });
  await same('compaction --physical', { args: (s) => ['compaction', '--physical', at(1)(s)], text: rankText });
  await same('get after compaction', ['get', 'k/cmp']);
});

test('endpoint status', { timeout: TEST_TIMEOUT }, async () => {
  const statusText = (line: string) => {
    const cols = line.split(', ');
    if (cols.length < 9) return line;
    // endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors
    return [cols[0], '<ID>', '<VERSION>', '<DBSIZE>', cols[4], cols[5], '<TERM>', '<INDEX>', '<APPLIED>', ...cols.slice(9)].join(', ');
  };
  const o = await same('endpoint status', { args: () => ['endpoint', 'status'], text: statusText });
  assert.equal(o.code, 0);
  // json: same keys, version semver ≥ 3.4, leader == member_id
  const shape = async (s: Side) => {
    const r = await s.run(['endpoint', 'status', '-w', 'json']);
    assert.equal(r.code, 0, `${s.label}: ${r.stderr}`);
    const txt = r.stdout.replace(/:(\d{15,})/g, ':"$1"'); // keep 64-bit IDs exact
    const [st] = JSON.parse(txt) as Json[];
    assert.equal(st.Endpoint, s.endpoint);
    assert.match(st.Status.version, /^3\.\d+\.\d+/);
    return { keys: Object.keys(st.Status).sort(), headerKeys: Object.keys(st.Status.header).sort(), leaderIsMember: st.Status.leader === st.Status.header.member_id };
  };
  assert.deepEqual(await shape(proxy), await shape(oracle));
});

test('endpoint health', { timeout: TEST_TIMEOUT }, async () => {
  await same('endpoint health', {
    args: () => ['endpoint', 'health'],
    text: (l) => l.replace(/took = [0-9.]+[µm]?s/, 'took = <T>'),
  });
});

test('member list', { timeout: TEST_TIMEOUT }, async () => {
  const memberText = (line: string, s: Side) => {
    const cols = line.split(', ');
    if (cols.length < 6) return line;
    // ID, status, name, peer URLs, client URLs, is learner
    const clientUrls = cols[4]!.split(',').map((u) => (u === `http://${s.endpoint}` ? '<SELF>' : u));
    return ['<ID>', cols[1], '<NAME>', '<PEERS>', clientUrls.join(','), cols[5]].join(', ');
  };
  await same('member list', { args: () => ['member', 'list'], text: memberText });
  const members = async (s: Side) => {
    const r = await s.run(['member', 'list', '-w', 'json']);
    assert.equal(r.code, 0, `${s.label}: ${r.stderr}`);
    const j = JSON.parse(r.stdout.replace(/:(\d{15,})/g, ':"$1"')) as Json;
    return (j.members as Json[]).map((m) => ({ keys: Object.keys(m).sort(), clientURLs: m.clientURLs.map((u: string) => (u === `http://${s.endpoint}` ? '<SELF>' : u)) }));
  };
  assert.deepEqual(await members(proxy), await members(oracle));
});
