/**
 * Prometheus for real: Debian's `prometheus` (installed by scripts/setup-prometheus.sh) scrapes
 * two proxy processes (`etcd-metaproxy serve --config`) and every etcd of their meta-cluster,
 * with the repo's deploy/prometheus/prometheus.yml (only the targets rewritten to this test's
 * ports and the intervals shortened to 1 s). Load runs through both proxies (puts, gets,
 * ranges read by many clients at once, txns, a read-only txn at a past revision, watches, a
 * lease, a compaction, requests etcd rejects, and a shard killed and restarted so upstream
 * errors show). Then EVERY query of the Grafana dashboard (deploy/grafana/dashboards), with its
 * variables substituted as Grafana does (all proxies, or one; $__rate_interval a few scrape
 * intervals), is evaluated through Prometheus's HTTP API: each must return a sample that is a
 * number. The dashboard's `instance` variable query must list both proxies, and every etcd
 * target must be up.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { freePort } from '../src/local/ports.js';
import { LOCAL_MEMBER_LIMITS } from '../src/local/meta-cluster.js';
import { RawClient, hostPort, metaPerFile, serveProcess, sleep, tempDir, waitFor, type Meta } from './harness.js';
import { b, prefixEnd } from './grpc-raw.js';
import { cmp } from './diff-script.js';
import { WatchStream } from './watch-client.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const SETUP_TIMEOUT = 120_000;
const TEST_TIMEOUT = 150_000;
/** What Grafana's $__rate_interval comes to with a 1 s scrape interval (4 scrapes), with room. */
const RATE_INTERVAL = '10s';

const suite = metaPerFile({ tag: 'prom', shards: 2, proxies: 0 }, SETUP_TIMEOUT);
const cleanup = suite.cleanup;

interface ProxyProcess {
  child: ChildProcess;
  /** gRPC host:port */
  address: string;
  /** host:port of /metrics */
  metrics: string;
}

let meta: Meta;
let proxies: ProxyProcess[] = [];
let prometheus = '';

/** A proxy as a user runs it: its own process (its own metrics registry), from a YAML file. */
async function startProxyProcess(dir: string, index: number): Promise<ProxyProcess> {
  const listen = `127.0.0.1:${await freePort()}`;
  const metrics = `127.0.0.1:${await freePort()}`;
  const file = path.join(dir, `proxy-${index}.yaml`);
  fs.writeFileSync(
    file,
    yaml.dump({
      listen,
      metrics: { listen: metrics },
      coordinator: { endpoints: [meta.cluster.coordinator.clientUrl] },
      shards: meta.cluster.shards.map((s) => ({ name: s.name, endpoints: [s.clientUrl] })),
      partitions: 64,
      memberLimits: { ...LOCAL_MEMBER_LIMITS },
      log: { level: 'warn' },
    }),
  );
  const { child } = await serveProcess({
    name: `proxy ${index}`,
    config: file,
    log: path.join(dir, `proxy-${index}.log`),
    cwd: ROOT,
    onSpawn: (p) =>
      cleanup.add(`stop proxy ${index}`, async () => {
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
        await p.exited;
      }),
  });
  return { child, address: listen, metrics };
}

interface ScrapeConfig {
  global?: Record<string, unknown>;
  scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
}

/** The repo's prometheus.yml with this test's targets (the compose service names replaced) and 1 s intervals. */
function prometheusConfig(): ScrapeConfig {
  const cfg = yaml.load(fs.readFileSync(path.join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8')) as ScrapeConfig;
  assert.deepEqual(cfg.scrape_configs.map((j) => j.job_name).sort(), ['etcd', 'etcd-metaproxy'], 'the jobs this test rewrites');
  const targets: Record<string, string[]> = {
    'etcd-metaproxy': proxies.map((p) => p.metrics),
    etcd: [meta.cluster.coordinator, ...meta.cluster.shards].map((e) => hostPort(e.clientUrl)),
  };
  for (const job of cfg.scrape_configs) {
    const before = job.static_configs.flatMap((c) => c.targets);
    assert.ok(before.length > 0, `${job.job_name}: has targets`);
    job.static_configs = [{ targets: targets[job.job_name]! }];
  }
  cfg.global = { ...cfg.global, scrape_interval: '1s', evaluation_interval: '1s' };
  return cfg;
}

/** scripts/setup-prometheus.sh: installs Debian's prometheus when it is missing (a clean CI machine). */
function installPrometheus(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(ROOT, 'scripts/setup-prometheus.sh')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`scripts/setup-prometheus.sh exited ${code}:\n${out.slice(-3000)}`))));
  });
}

async function startPrometheus(dir: string): Promise<string> {
  const config = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(config, yaml.dump(prometheusConfig()));
  const address = `127.0.0.1:${await freePort()}`;
  const log = fs.openSync(path.join(dir, 'prometheus.log'), 'a');
  const child = spawn(
    'prometheus',
    [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=${address}`, '--log.level=warn'],
    { stdio: ['ignore', log, log] },
  );
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  cleanup.add('stop prometheus', async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  await waitFor(async () => (await fetch(`http://${address}/-/ready`)).ok, 30_000, `prometheus ready (log: ${dir}/prometheus.log)`);
  return address;
}

// Installing can take minutes on a clean machine (apt-get update, the package and its dependencies).
const installed = installPrometheus();
installed.catch(() => undefined);

before(async () => {
  await installed;
  ({ meta } = await suite.started());
  const dir = tempDir(cleanup, 'prom-procs');
  proxies = await Promise.all([0, 1].map((i) => startProxyProcess(dir, i)));
  prometheus = await startPrometheus(dir);
}, { timeout: SETUP_TIMEOUT + 600_000 });

// ---------------------------------------------------------------------------------------------

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function promQuery(query: string): Promise<Sample[]> {
  const res = await fetch(`http://${prometheus}/api/v1/query?${new URLSearchParams({ query })}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Sample[] | [number, string] } };
  if (body.status !== 'success') throw new Error(`${query}: ${body.error}`);
  const { resultType, result } = body.data!;
  if (resultType === 'scalar') return [{ metric: {}, value: result as [number, string] }];
  return result as Sample[];
}

/** The scrape targets that are not up, with Prometheus's reason. */
async function targetsDown(): Promise<Array<{ job: string; url: string; health: string; error: string }>> {
  const res = await fetch(`http://${prometheus}/api/v1/targets`);
  const body = (await res.json()) as { data: { activeTargets: Array<{ labels: { job: string }; scrapeUrl: string; health: string; lastError: string }> } };
  return body.data.activeTargets.filter((t) => t.health !== 'up').map((t) => ({ job: t.labels.job, url: t.scrapeUrl, health: t.health, error: t.lastError }));
}

interface Dashboard {
  panels: Array<{ type: string; title: string; targets?: Array<{ expr: string; refId?: string }> }>;
  templating: { list: Array<{ name: string; query: string | { query: string } }> };
}

function dashboard(): Dashboard {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy/grafana/dashboards/etcd-metaproxy.json'), 'utf8')) as Dashboard;
}

/** A regex matching exactly `s` (as Grafana escapes a variable's value for =~). */
const regexEscape = (s: string) => s.replace(/[\\^$.*+?()[\]{}|]/g, '\\\\$&');

/** A query as Grafana sends it: variables substituted (`instance` a regex, "All" = .*). */
function substitute(expr: string, instance: string): string {
  return expr.replaceAll('$__rate_interval', RATE_INTERVAL).replaceAll('$instance', instance);
}

// ---------------------------------------------------------------------------------------------
// Load

/** One LeaseKeepAlive round on a stream (as clients keep leases alive). */
async function keepAliveOnce(c: RawClient, id: string): Promise<void> {
  type Stream = { write(m: object): void; end(): void; on(e: string, f: (x: { TTL?: string }) => void): void };
  const stream = (c.service('Lease') as unknown as { LeaseKeepAlive(): Stream }).LeaseKeepAlive();
  const ttl = await new Promise<string>((resolve, reject) => {
    stream.on('data', (r) => resolve(String(r.TTL)));
    stream.on('error', (e) => reject(e));
    stream.write({ ID: id });
  });
  stream.end();
  assert.ok(Number(ttl) > 0, `keepalive answered TTL ${ttl}`);
}

class Load {
  private stopped = false;
  private readonly clients: RawClient[];
  private readonly watches: WatchStream[] = [];
  private done: Promise<void> | null = null;
  errors = 0;
  iterations = 0;

  constructor(addresses: string[]) {
    this.clients = addresses.map((a) => new RawClient(a));
  }

  async start(): Promise<void> {
    // Watches stay open on both proxies (watchers, watch streams, events sent).
    for (const c of this.clients) {
      const w = new WatchStream(c);
      w.create({ key: 'load/', rangeEnd: prefixEnd('load/'), prevKv: true });
      await w.until(() => w.responses.some((r) => r.created), 10_000, 'watch created');
      this.watches.push(w);
    }
    const first = await this.clients[0]!.kv('Put', { key: b('load/first'), value: b('1') });
    assert.ok(first.ok, 'first put');
    const past = first.res.header.revision as string;
    // A lease with a key, kept alive once, then revoked; a compaction at the first put.
    const lease = await this.clients[1]!.call('Lease', 'LeaseGrant', { TTL: '30', ID: '0' });
    assert.ok(lease.ok, 'lease grant');
    const id = lease.res.ID as string;
    assert.ok((await this.clients[1]!.kv('Put', { key: b('load/leased'), value: b('x'), lease: id })).ok);
    assert.ok((await this.clients[0]!.call('Lease', 'LeaseTimeToLive', { ID: id, keys: true })).ok);
    await keepAliveOnce(this.clients[0]!, id);
    this.done = this.run(past, id);
  }

  private async run(past: string, lease: string): Promise<void> {
    const call = async (p: Promise<{ ok: boolean }>) => {
      if (!(await p).ok) this.errors++;
    };
    for (let i = 0; !this.stopped; i++) {
      const c = this.clients[i % 2]!;
      const key = b(`load/k${i % 16}`);
      const opts = { deadlineMs: 3000 };
      await Promise.all([
        call(c.kv('Put', { key, value: b(`v${i}`) }, opts)),
        call(c.kv('Range', { key }, opts)),
        call(c.kv('Range', { key, serializable: true }, opts)),
        // The same list from several clients at once (shared cache answers).
        ...[0, 1, 2].map(() => call(c.kv('Range', { key: b('load/'), range_end: prefixEnd('load/'), limit: '10' }, opts))),
        call(c.kv('Txn', { compare: [cmp('VERSION', 'GREATER', key, '0')], success: [{ request_put: { key, value: b('t') } }], failure: [] }, opts)),
      ]);
      // A read-only txn at a past revision (read from the members), and a request etcd rejects (future revision).
      if (i % 4 === 0) await call(c.kv('Txn', { compare: [], success: [{ request_range: { key: b('load/first'), revision: past } }], failure: [] }, opts));
      await c.kv('Range', { key, revision: '999999999' }, opts);
      if (i % 8 === 0) await call(c.call('Lease', 'LeaseTimeToLive', { ID: lease }, opts));
      if (i === 10) await call(c.kv('Compact', { revision: past }, opts));
      if (i === 20) await call(c.call('Lease', 'LeaseRevoke', { ID: lease }, opts));
      this.iterations++;
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    for (const w of this.watches) w.close();
    for (const c of this.clients) c.close();
  }
}

test('every query of the Grafana dashboard returns data from a real Prometheus', { timeout: TEST_TIMEOUT }, async () => {
  // Every target is scraped.
  const etcds = 1 + meta.cluster.shards.length;
  await waitFor(async () => (await promQuery('up == 1')).length === 2 + etcds, 30_000, `all targets (2 proxies, ${etcds} etcds) up`).catch(async (err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(await targetsDown())}`);
  });

  const load = new Load(proxies.map((p) => p.address));
  await load.start();
  try {
    // A shard down for a moment: upstream errors (and client errors) for the error panels.
    await waitFor(async () => (await promQuery('sum(etcd_metaproxy_client_writes_total) > 10')).length > 0, 30_000, 'writes scraped');
    await meta.cluster.shards[0]!.kill();
    await waitFor(
      async () => (await promQuery('sum by (instance) (etcd_metaproxy_upstream_requests_total{code!="OK"})')).length === 2,
      30_000,
      'upstream errors on both proxies scraped',
    );
    await meta.cluster.shards[0]!.restart();
    await waitFor(async () => (await Promise.all(proxies.map(async (p) => (await fetch(`http://${p.metrics}/health`)).ok))).every(Boolean), 30_000, 'both proxies healthy again');

    const dash = dashboard();
    const queries = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    assert.ok(queries.length >= 20, `${queries.length} dashboard queries`);
    // "One proxy" is the replica that owns the shards: it does the writes (clock allocations,
    // member txns); the other forwards its writes to it, so its write panels are empty by design.
    const owner = (await promQuery('sum by (instance) (etcd_metaproxy_shard_ownership_acquired_total) > 0'))[0]?.metric.instance;
    const one = proxies.find((p) => p.metrics === owner);
    assert.ok(one, `the owning replica among the scraped proxies (${owner})`);
    const instances: Array<[string, string]> = [['All', '.*'], ['one proxy', regexEscape(one.metrics)]];
    const pending = new Map<string, { panel: string; query: string; last: string }>();
    for (const q of queries) {
      for (const [label, value] of instances) pending.set(`${q.panel} [${label}]: ${q.expr}`, { panel: q.panel, query: substitute(q.expr, value), last: 'not run' });
    }
    // Polled until each answers with a number (a rate needs two scrapes of new samples).
    const deadline = Date.now() + 45_000;
    while (pending.size > 0 && Date.now() < deadline) {
      for (const [name, q] of pending) {
        const samples = await promQuery(q.query);
        const numbers = samples.filter((s) => Number.isFinite(Number(s.value[1])));
        if (numbers.length > 0) pending.delete(name);
        else q.last = samples.length ? `only NaN/Inf: ${JSON.stringify(samples.slice(0, 3))}` : 'empty result';
      }
      if (pending.size) await sleep(1000);
    }
    assert.deepEqual(
      [...pending].map(([name, q]) => `${name} -> ${q.last}`),
      [],
      'dashboard queries without data',
    );

    // The dashboard's variable: label_values(metric, label) lists both proxies.
    for (const v of dash.templating.list) {
      const def = typeof v.query === 'string' ? v.query : v.query.query;
      const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(def);
      assert.ok(m, `variable ${v.name}: ${def}`);
      const res = await fetch(`http://${prometheus}/api/v1/label/${m[2]}/values?${new URLSearchParams({ 'match[]': m[1]! })}`);
      const values = ((await res.json()) as { data: string[] }).data;
      assert.deepEqual(values.sort(), proxies.map((p) => p.metrics).sort(), `variable ${v.name}`);
    }
    // The etcds are scraped too (their own metrics, beside the proxies').
    const etcdUp = await promQuery('up{job="etcd"} == 1');
    assert.equal(etcdUp.length, etcds, 'coordinator and shards scraped');
    assert.equal((await promQuery('etcd_server_has_leader{job="etcd"} == 1')).length, etcds, 'etcd metrics scraped from every etcd');
  } finally {
    await load.stop();
  }
  console.error(`prometheus e2e: ${load.iterations} load iterations, ${load.errors} failed requests (a shard was down for a moment)`);
});
