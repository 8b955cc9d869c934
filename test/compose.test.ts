/**
 * docker-compose.yml and the files it mounts, checked statically (there is no Docker engine on
 * the development machine): it parses; the services are there; images are pinned; published
 * ports are unique; mounted files exist; each etcd is configured consistently; the proxy config
 * loads with the proxy's own loader (with each replica's environment) and names compose
 * services on their real ports; Prometheus scrapes the proxies' metrics ports; Grafana's
 * datasource and dashboard provider point where the files are; every metric the dashboard
 * queries exists in the registry or is announced below. When the `docker compose` plugin is
 * installed, `docker compose config` must accept the file too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { loadConfig } from '../src/config/load.js';
import type { ProxyConfig } from '../src/config/types.js';
import { registry } from '../src/metrics/registry.js';
// Side effect: every module-level metric (in any module the proxy loads) is registered.
import '../src/server/proxy.js';

/**
 * Metrics the dashboard may query before they are in the registry (announced by an open
 * issue; none today). When one lands, its type must match; then remove it from here.
 */
const ANNOUNCED: Record<string, 'counter' | 'gauge' | 'histogram'> = {};

/** What the dashboard must show (issue 5), as metrics some panel must query. */
const DASHBOARD_MUST_SHOW: Record<string, string[]> = {
  'requests by method and code': ['etcd_metaproxy_grpc_requests_total'],
  latency: ['etcd_metaproxy_grpc_request_duration_seconds'],
  'cache size': ['etcd_metaproxy_cache_keys', 'etcd_metaproxy_cache_bytes'],
  'cache hit rate': ['etcd_metaproxy_cache_hits_total', 'etcd_metaproxy_cache_misses_total'],
  watchers: ['etcd_metaproxy_watchers'],
  'merged revision lag': ['etcd_metaproxy_watch_merged_revision', 'etcd_metaproxy_clock_revision'],
  'fence writes': ['etcd_metaproxy_fence_writes_total'],
  'clock batch size': ['etcd_metaproxy_clock_batch_size'],
  'per-shard upstream latency': ['etcd_metaproxy_upstream_request_duration_seconds'],
  'per-shard upstream errors': ['etcd_metaproxy_upstream_requests_total'],
};

const ROOT = path.resolve(import.meta.dirname, '..');
const repoFile = (p: string) => path.join(ROOT, p);
const read = (p: string) => fs.readFileSync(repoFile(p), 'utf8');

interface Service {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[] | string;
  environment?: Record<string, string> | string[];
  ports?: Array<string | { published: string | number; target: number }>;
  volumes?: Array<string | { type: string; source: string; target: string }>;
  tmpfs?: string[] | string;
  depends_on?: string[] | Record<string, unknown>;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const compose = yaml.load(read('docker-compose.yml')) as Compose;
const services = compose.services;

const MEMBERS = ['etcd-s1', 'etcd-s2', 'etcd-s3'];
const ETCDS = ['etcd-coordinator', ...MEMBERS];
const PROXIES = ['proxy-1', 'proxy-2'];

function list<T>(v: T[] | T | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function commandOf(s: Service): string[] {
  return typeof s.command === 'string' ? s.command.split(/\s+/) : (s.command ?? []);
}

/** `--name=value` flags of a command (the compose file spells every etcd flag that way). */
function flags(s: Service): Map<string, string> {
  const m = new Map<string, string>();
  for (const arg of commandOf(s)) {
    const eq = /^--([^=]+)=(.*)$/.exec(arg);
    if (eq) m.set(eq[1]!, eq[2]!);
  }
  return m;
}

function flag(s: Service, name: string): string {
  const v = flags(s).get(name);
  assert.ok(v !== undefined, `--${name} is set`);
  return v;
}

function envOf(s: Service): Record<string, string> {
  if (Array.isArray(s.environment)) {
    return Object.fromEntries(s.environment.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
}

/** Published ports as {host, container}. */
function portsOf(s: Service): Array<{ host: number; container: number }> {
  return list(s.ports).map((p) => {
    if (typeof p === 'object') return { host: Number(p.published), container: Number(p.target) };
    const parts = p.split(':');
    assert.ok(parts.length === 2 || parts.length === 3, `port mapping ${p} is [ip:]host:container`);
    return { host: Number(parts.at(-2)), container: Number(parts.at(-1)) };
  });
}

/** Volume mounts as {source, target}; bind mounts have a source starting with "./". */
function volumesOf(s: Service): Array<{ source: string; target: string }> {
  return list(s.volumes).map((v) => {
    if (typeof v === 'object') return { source: v.source, target: v.target };
    const [source, target] = v.split(':');
    return { source: source!, target: target! };
  });
}

/** The repo file a container path is mounted from (through a bind mount of it or of a parent dir). */
function hostPathOf(s: Service, containerPath: string): string | null {
  for (const v of volumesOf(s)) {
    if (!v.source.startsWith('./')) continue;
    if (containerPath === v.target) return v.source;
    if (containerPath.startsWith(`${v.target}/`)) return path.posix.join(v.source, containerPath.slice(v.target.length + 1));
  }
  return null;
}

function url(u: string): { host: string; port: number } {
  const parsed = new URL(u.includes('://') ? u : `http://${u}`);
  return { host: parsed.hostname, port: Number(parsed.port) };
}

/** The client port an etcd service listens on. */
function etcdClientPort(name: string): number {
  return url(flag(services[name]!, 'listen-client-urls')).port;
}

function proxyConfigOf(name: string): { file: string; cfg: ProxyConfig } {
  const cmd = dockerfileCmd();
  const containerPath = cmd[cmd.indexOf('--config') + 1]!;
  const file = hostPathOf(services[name]!, containerPath);
  assert.ok(file, `${name}: ${containerPath} (the image's --config) is mounted from the repo`);
  const cfg = loadConfig({ file: repoFile(file), env: envOf(services[name]!) });
  return { file, cfg };
}

function dockerfileCmd(): string[] {
  const m = /^CMD\s+(\[.*\])\s*$/m.exec(read('Dockerfile'));
  assert.ok(m, 'Dockerfile has an exec-form CMD');
  return JSON.parse(m[1]!) as string[];
}

test('docker-compose.yml parses and has every service', () => {
  assert.equal(typeof services, 'object');
  for (const name of [...ETCDS, ...PROXIES, 'prometheus', 'grafana']) assert.ok(services[name], `service ${name}`);
  const docker = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
  if (docker.status === 0) {
    const cfg = spawnSync('docker', ['compose', '-f', repoFile('docker-compose.yml'), 'config', '--quiet'], { encoding: 'utf8', cwd: ROOT });
    assert.equal(cfg.status, 0, `docker compose config: ${cfg.stderr}`);
  }
});

test('images are pinned to versions; the proxy image builds from the repo Dockerfile', () => {
  for (const [name, s] of Object.entries(services)) {
    assert.ok(s.image, `${name} names an image`);
    const tag = /:([^:/]+)$/.exec(s.image)?.[1];
    assert.ok(tag && /^v?\d+\.\d+\.\d+/.test(tag), `${name}: ${s.image} is pinned to a version (not :latest, not untagged)`);
  }
  for (const name of PROXIES) {
    const build = services[name]!.build;
    const context = typeof build === 'string' ? build : build?.context;
    assert.equal(context, '.', `${name} builds from the repo root`);
    assert.equal(services[name]!.image, `etcd-metaproxy:${(JSON.parse(read('package.json')) as { version: string }).version}`);
  }
  const dockerfile = read('Dockerfile');
  const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
  assert.ok(froms.length > 0);
  for (const f of froms) assert.match(f, /^node:20\.\d+\.\d+/, `Dockerfile FROM ${f} is node 20, pinned`);
  assert.match(dockerfile, /RUN npm ci/);
  assert.match(dockerfile, /npm run build/);
  // Everything the Dockerfile copies from the build context exists.
  for (const m of dockerfile.matchAll(/^COPY\s+(?!--from)(.+)\s+\S+\s*$/gm)) {
    for (const src of m[1]!.trim().split(/\s+/)) assert.ok(fs.existsSync(repoFile(src)), `Dockerfile copies ${src}, which exists`);
  }
  assert.deepEqual(dockerfileCmd().slice(0, 2), ['serve', '--config']);
});

test('the runtime image preloads jemalloc, which it installs and links where LD_PRELOAD points', () => {
  const dockerfile = read('Dockerfile');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const preload = /^ENV\s+LD_PRELOAD=(\S+)\s*$/m.exec(runtime)?.[1];
  assert.ok(preload, 'the runtime stage sets LD_PRELOAD');
  assert.match(runtime, /apt-get install[^\n]*\blibjemalloc2\b/);
  assert.ok(runtime.includes(`libjemalloc.so.2 | head -n 1)" ${preload}`), `the runtime stage links ${preload}`);
  assert.ok(runtime.indexOf('libjemalloc2') < runtime.indexOf('USER node'), 'installed as root, before USER node');
});

test('published ports are unique; mounted files exist; named volumes are declared; data dirs are mounted', () => {
  const hostPorts = Object.values(services).flatMap((s) => portsOf(s).map((p) => p.host));
  assert.ok(hostPorts.every((p) => Number.isInteger(p) && p > 0 && p < 65536));
  assert.equal(new Set(hostPorts).size, hostPorts.length, `host ports unique: ${hostPorts.join(', ')}`);

  const declared = Object.keys(compose.volumes ?? {});
  const used = new Set<string>();
  for (const [name, s] of Object.entries(services)) {
    for (const v of volumesOf(s)) {
      if (v.source.startsWith('./')) assert.ok(fs.existsSync(repoFile(v.source)), `${name}: ${v.source} exists in the repo`);
      else {
        assert.ok(declared.includes(v.source), `${name}: volume ${v.source} is declared`);
        used.add(v.source);
      }
    }
  }
  assert.deepEqual([...used].sort(), declared.sort(), 'every declared volume is used');

  // The coordinator on tmpfs; members on volumes (their data survives a restart).
  assert.ok(list(services['etcd-coordinator']!.tmpfs).includes(flag(services['etcd-coordinator']!, 'data-dir')), 'coordinator data dir on tmpfs');
  for (const m of MEMBERS) {
    const dataDir = flag(services[m]!, 'data-dir');
    assert.ok(volumesOf(services[m]!).some((v) => v.target === dataDir && !v.source.startsWith('./')), `${m}: data dir on a named volume`);
  }
});

test('every etcd is configured consistently (URLs name its service; one-member cluster; no auto-compaction)', () => {
  for (const name of ETCDS) {
    const s = services[name]!;
    assert.match(s.image ?? '', /^gcr\.io\/etcd-development\/etcd:v3\.5\.\d+$/);
    const member = flag(s, 'name');
    const client = url(flag(s, 'advertise-client-urls'));
    assert.equal(client.host, name, `${name}: advertised client URL names the service`);
    assert.equal(client.port, etcdClientPort(name));
    const peer = flag(s, 'initial-advertise-peer-urls');
    assert.equal(url(peer).host, name);
    assert.equal(url(peer).port, url(flag(s, 'listen-peer-urls')).port);
    assert.equal(flag(s, 'initial-cluster'), `${member}=${peer}`);
    assert.equal(flag(s, 'auto-compaction-retention'), '0', 'the proxy compacts, not etcd');
  }
});

test('the proxy config loads with the proxy loader for each replica and names compose services on their ports', () => {
  const advertised: string[] = [];
  for (const name of PROXIES) {
    const s = services[name]!;
    const { file, cfg } = proxyConfigOf(name);

    const coord = cfg.coordinator.endpoints.map(url);
    assert.deepEqual(coord, [{ host: 'etcd-coordinator', port: etcdClientPort('etcd-coordinator') }], `${file}: coordinator endpoints`);
    const shardServices = cfg.shards.flatMap((sh) =>
      sh.endpoints.map((e) => {
        const u = url(e);
        assert.ok(MEMBERS.includes(u.host), `${file}: shard ${sh.name} endpoint ${e} is a member service`);
        assert.equal(u.port, etcdClientPort(u.host), `${file}: ${e} is that service's client port`);
        assert.equal(flag(services[u.host]!, 'name'), sh.name, `${file}: shard ${sh.name} is the etcd named ${sh.name}`);
        return u.host;
      }),
    );
    assert.deepEqual(shardServices.sort(), [...MEMBERS].sort(), 'each member cluster is exactly one shard');
    for (const m of MEMBERS) {
      assert.equal(String(cfg.memberLimits.maxTxnOps), flag(services[m]!, 'max-txn-ops'), `${m}: memberLimits.maxTxnOps as the member runs`);
      assert.equal(String(cfg.memberLimits.maxRequestBytes), flag(services[m]!, 'max-request-bytes'));
    }
    const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
    assert.deepEqual(deps.sort(), [...ETCDS].sort(), `${name} starts after every etcd`);

    // Listen and metrics ports are the published container ports; the advertised URL is the host side.
    const ports = portsOf(s);
    const listenPort = url(cfg.listen).port;
    const metricsPort = url(cfg.metrics.listen).port;
    assert.ok(ports.some((p) => p.container === listenPort), `${name}: gRPC port ${listenPort} published`);
    assert.ok(ports.some((p) => p.container === metricsPort), `${name}: metrics port ${metricsPort} published`);
    assert.equal(cfg.advertiseClientUrls.length, 1);
    const adv = url(cfg.advertiseClientUrls[0]!);
    assert.ok(ports.some((p) => p.host === adv.port && p.container === listenPort), `${name}: advertised ${cfg.advertiseClientUrls[0]} reaches its gRPC port`);
    advertised.push(cfg.advertiseClientUrls[0]!);
  }
  assert.equal(new Set(advertised).size, PROXIES.length, 'replicas advertise distinct URLs (distinct member ids)');
});

test('Prometheus scrapes both proxies on their metrics port and every etcd on its client port', () => {
  const prom = services.prometheus!;
  const configPath = flag(prom, 'config.file');
  const file = hostPathOf(prom, configPath);
  assert.ok(file, 'prometheus config is mounted from the repo');
  const cfg = yaml.load(read(file)) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
  const targets = (job: string) => cfg.scrape_configs.find((j) => j.job_name === job)?.static_configs.flatMap((c) => c.targets) ?? [];
  const expectedProxies = PROXIES.map((p) => `${p}:${url(proxyConfigOf(p).cfg.metrics.listen).port}`);
  assert.deepEqual(targets('etcd-metaproxy').sort(), expectedProxies.sort());
  assert.deepEqual(targets('etcd').sort(), ETCDS.map((e) => `${e}:${etcdClientPort(e)}`).sort());
});

test('Grafana: datasource is the prometheus service; the dashboard provider reads the mounted dashboards', () => {
  const g = services.grafana!;
  const provisioning = hostPathOf(g, '/etc/grafana/provisioning');
  assert.ok(provisioning, 'provisioning mounted');
  const ds = yaml.load(read(path.join(provisioning, 'datasources/prometheus.yml'))) as { datasources: Array<{ uid: string; type: string; url: string }> };
  const prom = ds.datasources.find((d) => d.type === 'prometheus');
  assert.ok(prom);
  const promPort = portsOf(services.prometheus!)[0]!.container;
  assert.deepEqual(url(prom.url), { host: 'prometheus', port: promPort });

  const providers = yaml.load(read(path.join(provisioning, 'dashboards/etcd-metaproxy.yml'))) as { providers: Array<{ options: { path: string } }> };
  const dashDir = hostPathOf(g, providers.providers[0]!.options.path);
  assert.ok(dashDir, 'the provider path is mounted from the repo');
  const files = fs.readdirSync(repoFile(dashDir)).filter((f) => f.endsWith('.json'));
  assert.deepEqual(files, ['etcd-metaproxy.json']);
  const home = envOf(g).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
  assert.ok(home && fs.existsSync(repoFile(hostPathOf(g, home) ?? '/nonexistent')), 'home dashboard path is a mounted file');

  const dash = JSON.parse(read(path.join(dashDir, 'etcd-metaproxy.json'))) as Dashboard;
  for (const p of dash.panels.filter((p) => p.type !== 'row')) {
    assert.equal(p.datasource?.uid, prom.uid, `panel "${p.title}" uses the provisioned datasource`);
    for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, prom.uid);
  }
});

interface Dashboard {
  uid: string;
  panels: Array<{ type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string; datasource?: { uid: string } }> }>;
  templating: { list: Array<{ query: string | { query: string }; definition?: string }> };
}

function dashboardQueries(): string[] {
  const dash = JSON.parse(read('deploy/grafana/dashboards/etcd-metaproxy.json')) as Dashboard;
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  for (const v of dash.templating.list) exprs.push(typeof v.query === 'string' ? v.query : v.query.query);
  return exprs;
}

test('every metric the dashboard queries exists (or is announced), and it shows what the issue asks', async () => {
  const known = new Map<string, string>((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
  for (const [name, type] of Object.entries(ANNOUNCED)) {
    if (known.has(name)) assert.equal(known.get(name), type, `${name} landed as a ${known.get(name)}, announced as a ${type}`);
  }
  const typeOf = (n: string) => known.get(n) ?? ANNOUNCED[n];
  const used = new Set<string>();
  for (const expr of dashboardQueries()) {
    for (const [raw] of expr.matchAll(/\betcd_metaproxy_[a-zA-Z0-9_]+/g)) {
      const base = raw.replace(/_(bucket|sum|count)$/, '');
      const name = typeOf(raw) ? raw : base !== raw && (typeOf(base) === 'histogram' || typeOf(base) === 'summary') ? base : raw;
      assert.ok(typeOf(name), `dashboard queries ${raw}, which is neither in the registry nor announced`);
      if (name !== raw) assert.match(raw, /_(bucket|sum|count)$/);
      if (typeOf(name) === 'histogram' && name === raw) assert.fail(`${raw} is a histogram: query its _bucket/_sum/_count series`);
      used.add(name);
    }
  }
  for (const [what, metrics] of Object.entries(DASHBOARD_MUST_SHOW)) {
    for (const m of metrics) assert.ok(used.has(m), `the dashboard shows ${what} (${m})`);
  }
});

// ---------------------------------------------------------------------------------------------
// docker-compose.tls.yml: the opt-in TLS override.

const tlsOverride = yaml.load(read('docker-compose.tls.yml')) as Compose;
const CERTS_MOUNT = { source: './deploy/tls/certs', target: '/certs' };

/** A service as compose merges it: the override's command/healthcheck replace, env and volumes merge. */
function withTls(name: string): Service {
  const base = services[name]!;
  const over = tlsOverride.services[name] ?? {};
  const env = { ...envOf(base), ...envOf(over) };
  const volumes = [...volumesOf(base).filter((v) => !volumesOf(over).some((o) => o.target === v.target)), ...volumesOf(over)];
  return { ...base, ...over, environment: env, volumes: volumes.map((v) => `${v.source}:${v.target}`) };
}

test('docker-compose.tls.yml overrides existing services only; the certificates are made by a script, never committed', () => {
  for (const name of Object.keys(tlsOverride.services)) assert.ok(services[name], `${name} is a service of docker-compose.yml`);
  for (const name of [...ETCDS, ...PROXIES, 'prometheus']) {
    assert.ok(tlsOverride.services[name], `${name} is switched to TLS`);
    assert.ok(volumesOf(withTls(name)).some((v) => v.source === CERTS_MOUNT.source && v.target === CERTS_MOUNT.target), `${name} mounts the certificates`);
  }
  assert.ok(fs.existsSync(repoFile('deploy/tls/make-certs.sh')), 'the script that makes them exists');
  assert.ok(read('.gitignore').split('\n').includes('deploy/tls/certs/'), 'generated certificates are git-ignored');
  const tracked = spawnSync('git', ['ls-files', 'deploy/tls/certs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(tracked.stdout.trim(), '', 'no certificate or key is committed');
  const docker = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
  if (docker.status === 0) {
    const cfg = spawnSync('docker', ['compose', '-f', repoFile('docker-compose.yml'), '-f', repoFile('docker-compose.tls.yml'), 'config', '--quiet'], { encoding: 'utf8', cwd: ROOT });
    assert.equal(cfg.status, 0, `docker compose config: ${cfg.stderr}`);
  }
});

test('with TLS every etcd serves https with client certificate auth, and keeps its other settings', () => {
  for (const name of ETCDS) {
    const s = withTls(name);
    const plain = flags(services[name]!);
    const tls = flags(s);
    assert.equal(url(flag(s, 'advertise-client-urls')).host, name);
    assert.match(flag(s, 'advertise-client-urls'), /^https:\/\//);
    assert.match(flag(s, 'listen-client-urls'), /^https:\/\//);
    assert.equal(flag(s, 'cert-file'), '/certs/server.pem');
    assert.equal(flag(s, 'key-file'), '/certs/server-key.pem');
    assert.equal(flag(s, 'trusted-ca-file'), '/certs/ca.pem');
    assert.ok(commandOf(s).includes('--client-cert-auth'), `${name}: --client-cert-auth`);
    for (const [k, v] of plain) {
      if (k.endsWith('client-urls')) continue;
      assert.equal(tls.get(k), v, `${name}: --${k} as without TLS`);
    }
    const health = JSON.stringify((s as { healthcheck?: unknown }).healthcheck);
    assert.match(health, /https:\/\/127\.0\.0\.1:2379/);
    assert.match(health, /--cert=\/certs\/client\.pem/);
  }
});

test('with TLS the proxy config loads (certificates from deploy/tls/make-certs.sh) and uses TLS on both sides', () => {
  const dir = fs.mkdtempSync(path.join(ROOT, '.compose-tls-test-'));
  try {
    const made = spawnSync('bash', [repoFile('deploy/tls/make-certs.sh')], { env: { ...process.env, CERTS_DIR: dir }, encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const sans = spawnSync('openssl', ['x509', '-in', path.join(dir, 'server.pem'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' }).stdout;
    for (const name of [...ETCDS, ...PROXIES]) assert.match(sans, new RegExp(`DNS:${name}\\b`), `the server certificate names ${name}`);
    for (const name of PROXIES) {
      const s = withTls(name);
      const env = Object.fromEntries(Object.entries(envOf(s)).map(([k, v]) => [k, v.replace(/^\/certs\//, `${dir}/`)]));
      const cmd = dockerfileCmd();
      const file = hostPathOf(s, cmd[cmd.indexOf('--config') + 1]!);
      assert.ok(file);
      const cfg = loadConfig({ file: repoFile(file), env });
      assert.deepEqual(cfg.clientTls, { certFile: `${dir}/server.pem`, keyFile: `${dir}/server-key.pem`, trustedCaFile: `${dir}/ca.pem`, clientCertAuth: true });
      assert.match(cfg.advertiseClientUrls[0]!, /^https:\/\//);
      const upstream = { caFile: `${dir}/ca.pem`, certFile: `${dir}/client.pem`, keyFile: `${dir}/client-key.pem` };
      assert.deepEqual(cfg.coordinator, { endpoints: [`https://etcd-coordinator:${etcdClientPort('etcd-coordinator')}`], tls: upstream });
      assert.deepEqual(
        cfg.shards.map((sh) => ({ name: sh.name, endpoints: sh.endpoints, tls: sh.tls })),
        MEMBERS.map((m) => ({ name: flag(services[m]!, 'name'), endpoints: [`https://${m}:${etcdClientPort(m)}`], tls: upstream })),
      );
      const health = JSON.stringify((s as { healthcheck?: unknown }).healthcheck);
      assert.match(health, /https/);
      assert.match(health, new RegExp(`port: ${url(cfg.metrics.listen).port}`));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('with TLS Prometheus scrapes the same targets over https with the client certificate', () => {
  const prom = withTls('prometheus');
  const file = hostPathOf(prom, flag(services.prometheus!, 'config.file'));
  assert.equal(file, './deploy/tls/prometheus.yml');
  const plain = yaml.load(read('deploy/prometheus/prometheus.yml')) as { scrape_configs: Array<{ job_name: string; static_configs: unknown }> };
  const cfg = yaml.load(read(file!)) as { scrape_configs: Array<{ job_name: string; scheme: string; tls_config: Record<string, string>; static_configs: unknown }> };
  assert.deepEqual(cfg.scrape_configs.map((j) => [j.job_name, j.static_configs]), plain.scrape_configs.map((j) => [j.job_name, j.static_configs]));
  for (const job of cfg.scrape_configs) {
    assert.equal(job.scheme, 'https');
    assert.deepEqual(job.tls_config, { ca_file: '/certs/ca.pem', cert_file: '/certs/client.pem', key_file: '/certs/client-key.pem' });
  }
});
