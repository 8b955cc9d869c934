/**
 * End-to-end harness: a local meta-cluster (coordinator + shard etcds) with one or more
 * in-process proxies, a plain single etcd as the oracle, and client helpers (raw gRPC, etcd3,
 * etcdctl).
 *
 * Everything started here is registered with a Cleanup and stopped by the test file's `after()`
 * hook (or right away when a start fails half-way); temp data dirs are removed afterwards unless
 * E2E_KEEP_DATA=1. Logs of the etcds and proxies live in the temp dir; set E2E_KEEP_DATA=1 to
 * inspect them after a run, E2E_LOG_LEVEL to change the proxies' log level (default "info").
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import pino from 'pino';
import type { ProxyConfig } from '../src/config/types.js';
import type { RunningProxy } from '../src/server/proxy-api.js';
import { startEtcd, type EtcdProcess } from '../src/local/etcd-process.js';
import { LOCAL_MEMBER_LIMITS, startLocalMetaCluster, type LocalMetaCluster } from '../src/local/meta-cluster.js';
import { freePort } from '../src/local/ports.js';
import { registry } from '../src/metrics/registry.js';
import { Keyspace } from '../src/shard/keyspace.js';
import { RawClient, b } from './grpc-raw.js';

export { RawClient } from './grpc-raw.js';

/** Channel credentials with the test CA and its client certificate. */
export function tlsCredentials(certs: TestCerts, client: { cert: string; key: string } | null = { cert: certs.clientCert, key: certs.clientKey }): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(fs.readFileSync(certs.ca), client ? fs.readFileSync(client.key) : null, client ? fs.readFileSync(client.cert) : null);
}

const KEEP_DATA = process.env.E2E_KEEP_DATA === '1';

/** Runs registered closers in reverse order; never throws (errors are logged). */
export class Cleanup {
  private readonly closers: Array<{ what: string; fn: () => unknown }> = [];

  add(what: string, fn: () => unknown): void {
    this.closers.push({ what, fn });
  }

  async run(): Promise<void> {
    while (this.closers.length > 0) {
      const { what, fn } = this.closers.pop()!;
      try {
        await fn();
      } catch (err) {
        console.error(`e2e cleanup: ${what} failed:`, err);
      }
    }
  }
}

/** A fresh temp dir under os.tmpdir(), removed by `cleanup` (unless E2E_KEEP_DATA=1). */
export function tempDir(cleanup: Cleanup, tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `etcd-metaproxy-e2e-${tag}-`));
  cleanup.add(`remove ${dir}`, () => {
    if (KEEP_DATA) console.error(`e2e: kept data in ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Starts `fn` with a Cleanup; if it throws, runs the cleanup before rethrowing. */
async function guarded<T>(cleanup: Cleanup, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// The oracle: a plain single-node etcd.

export interface Oracle {
  etcd: EtcdProcess;
  /** host:port */
  address: string;
  stop(): Promise<void>;
}

export async function startOracle(name = 'oracle'): Promise<Oracle> {
  const cleanup = new Cleanup();
  return guarded(cleanup, async () => {
    const dir = tempDir(cleanup, name);
    const etcd = await startEtcd({ name, dataDir: path.join(dir, 'data'), logFile: path.join(dir, 'etcd.log'), unsafeNoFsync: true });
    cleanup.add(`stop ${name}`, () => etcd.stop());
    return { etcd, address: hostPort(etcd.clientUrl), stop: () => cleanup.run() };
  });
}

// ---------------------------------------------------------------------------------------------
// The meta setup: coordinator + shards + proxies.

export interface MetaOptions {
  /** Number of shard etcds (default 3). */
  shards?: number;
  /** Number of proxies to start (default 1). */
  proxies?: number;
  partitions?: number;
  routingPrefixSegments?: number;
  /** Tag for the temp dir name. */
  tag?: string;
  /** Last-minute changes to each proxy's config. */
  configure?: (cfg: ProxyConfig, index: number) => void;
  /**
   * TLS on both sides: every etcd serves https:// with client certificate auth from this test
   * CA (made by scripts/make-test-certs.sh), and the proxies reach them with its client
   * certificate. The proxies' own client TLS is left to `configure`.
   */
  tls?: TestCerts;
}

/** A test CA's files (scripts/make-test-certs.sh): ca.pem, server(-key).pem, client(-key).pem. */
export interface TestCerts {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  clientCert: string;
  clientKey: string;
}

/** Makes a test CA with a server and a client certificate in a temp dir (removed by `cleanup`). */
export function makeTestCerts(cleanup: Cleanup, tag: string, env: Record<string, string> = {}): TestCerts {
  const dir = tempDir(cleanup, `certs-${tag}`);
  runCertScript([dir], env);
  return certsIn(dir);
}

/** Issues one more certificate NAME.pem/NAME-key.pem from the CA in `certs.dir`. */
export function issueTestCert(certs: TestCerts, name: string, cn: string): { cert: string; key: string } {
  runCertScript([certs.dir, 'issue', name, cn]);
  return { cert: path.join(certs.dir, `${name}.pem`), key: path.join(certs.dir, `${name}-key.pem`) };
}

function certsIn(dir: string): TestCerts {
  const f = (n: string) => path.join(dir, n);
  return { dir, ca: f('ca.pem'), cert: f('server.pem'), key: f('server-key.pem'), clientCert: f('client.pem'), clientKey: f('client-key.pem') };
}

function runCertScript(args: string[], env: Record<string, string> = {}): void {
  const script = path.resolve(import.meta.dirname, '..', 'scripts', 'make-test-certs.sh');
  const r = spawnSync('bash', [script, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make-test-certs.sh ${args.join(' ')} failed: ${r.stderr}`);
}

export interface Meta {
  cluster: LocalMetaCluster;
  proxies: RunningProxy[];
  /** host:port of each proxy, same order as `proxies`. */
  addresses: string[];
  dataDir: string;
  /** Starts one more proxy on the same clusters. */
  addProxy(): Promise<RunningProxy>;
  /** Index of the shard whose member holds `key` (read directly from the members), or -1. */
  shardOf(key: string | Buffer): Promise<number>;
  /** A raw client to shard i's member (closed by stop()). */
  memberClient(i: number): RawClient;
  stop(): Promise<void>;
}

/** Imported lazily so that oracle-only runs work before the proxy exists. */
async function loadStartProxy(): Promise<(cfg: ProxyConfig, opts?: { logger?: pino.Logger }) => Promise<RunningProxy>> {
  const mod = (await import('../src/server/proxy.js')) as {
    startProxy: (cfg: ProxyConfig, opts?: { logger?: pino.Logger }) => Promise<RunningProxy>;
  };
  return mod.startProxy;
}

/** A proxy configuration for a local meta-cluster, with etcd's client limits. */
/** The member's own version of `key` on every shard of `cluster` that holds it (read on the members directly). */
export async function memberVersions(cluster: LocalMetaCluster, namespace: string, key: Buffer): Promise<string[]> {
  const mk = new Keyspace(Buffer.from(namespace, 'latin1')).toMember(key);
  const out: string[] = [];
  for (const e of cluster.shards) {
    const c = new RawClient(e.clientUrl);
    try {
      const r = await c.kv('Range', { key: mk });
      if (!r.ok) throw new Error(r.details);
      for (const kv of r.res.kvs as Array<{ version: string }>) out.push(kv.version);
    } finally {
      c.close();
    }
  }
  return out;
}

export function proxyConfig(cluster: LocalMetaCluster, listen: string, change: Partial<ProxyConfig> = {}): ProxyConfig {
  return {
    listen,
    advertiseClientUrls: [`http://${listen}`],
    metrics: { listen: '' },
    coordinator: { endpoints: [cluster.coordinator.clientUrl] },
    shards: cluster.shards.map((s) => ({ name: s.name, endpoints: [s.clientUrl] })),
    partitions: 64,
    routingPrefixSegments: 0,
    namespace: '',
    limits: { maxTxnOps: 128, maxRequestBytes: 1572864, memoryBudgetBytes: 536870912 },
    memberLimits: { ...LOCAL_MEMBER_LIMITS },
    timeouts: { requestMs: 5000, dialMs: 10000 },
    watch: { historyEvents: 100000, historyBytes: 134217728, maxPendingEvents: 10000, fenceDelayMs: 5, progressNotifyIntervalMs: 600000 },
    cache: { enabled: true, waitMs: 1000, snapshots: 32, snapshotIdleMs: 60000, maxUndoEvents: 20000, loadPageKeys: 10000 },
    ownership: { ttlSec: 3, pollMs: 200, peerUrl: '' },
    log: { level: 'info' },
    ...change,
  };
}

export async function startMeta(opts: MetaOptions = {}): Promise<Meta> {
  const cleanup = new Cleanup();
  return guarded(cleanup, async () => {
    const dataDir = tempDir(cleanup, opts.tag ?? 'meta');
    const tls = opts.tls ? { certFile: opts.tls.cert, keyFile: opts.tls.key, trustedCaFile: opts.tls.ca } : undefined;
    const cluster = await startLocalMetaCluster({ dataDir: path.join(dataDir, 'cluster'), shards: opts.shards ?? 3, unsafeNoFsync: true, tls });
    cleanup.add('stop meta-cluster', () => cluster.stop());
    const startProxy = await loadStartProxy();
    const proxies: RunningProxy[] = [];
    const addresses: string[] = [];
    const memberClients = new Map<number, RawClient>();
    cleanup.add('close member clients', () => {
      for (const c of memberClients.values()) c.close();
    });

    const addProxy = async (): Promise<RunningProxy> => {
      const index = proxies.length;
      // A concrete port (rather than :0) so that advertiseClientUrls can name it.
      const port = await freePort();
      const listen = `127.0.0.1:${port}`;
      const cfg = proxyConfig(cluster, listen, {
        partitions: opts.partitions ?? 64,
        routingPrefixSegments: opts.routingPrefixSegments ?? 0,
        log: { level: process.env.E2E_LOG_LEVEL ?? 'info' },
      });
      if (opts.tls) {
        const upstream = { caFile: opts.tls.ca, certFile: opts.tls.clientCert, keyFile: opts.tls.clientKey };
        cfg.coordinator.tls = upstream;
        cfg.shards = cfg.shards.map((s) => ({ ...s, tls: upstream }));
      }
      opts.configure?.(cfg, index);
      const logFile = path.join(dataDir, `proxy-${index}.log`);
      const logger = pino({ level: cfg.log.level, base: { proxy: index } }, pino.destination({ dest: logFile, sync: true }));
      const proxy = await startProxy(cfg, { logger });
      cleanup.add(`close proxy ${index}`, () => proxy.close());
      proxies.push(proxy);
      addresses.push(proxy.address);
      await waitFor(async () => proxy.ready() && (await proxy.healthy()), 20_000, `proxy ${index} ready`);
      return proxy;
    };
    for (let i = 0; i < (opts.proxies ?? 1); i++) await addProxy();

    const memberClient = (i: number): RawClient => {
      let c = memberClients.get(i);
      if (!c) {
        c = new RawClient(hostPort(cluster.shards[i]!.clientUrl), opts.tls ? tlsCredentials(opts.tls) : undefined);
        memberClients.set(i, c);
      }
      return c;
    };

    const shardOf = async (key: string | Buffer): Promise<number> => {
      for (let i = 0; i < cluster.shards.length; i++) {
        const r = await memberClient(i).kv('Range', { key: b(key), count_only: true }, { deadlineMs: 3000 });
        if (r.ok && Number(r.res.count) > 0) return i;
      }
      return -1;
    };

    return { cluster, proxies, addresses, dataDir, addProxy, shardOf, memberClient, stop: () => cleanup.run() };
  });
}

// ---------------------------------------------------------------------------------------------
// Clients.

/** An etcd3 npm client for host:port (caller closes it). */
export function etcd3Client(address: string): Etcd3 {
  return new Etcd3({ hosts: `http://${hostPort(address)}` });
}

export interface EtcdctlResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Runs `etcdctl --endpoints <endpoint> ...args` (ETCDCTL_API=3), optionally feeding stdin. */
export function etcdctl(endpoint: string, args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<EtcdctlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('etcdctl', ['--endpoints', hostPort(endpoint), '--dial-timeout', '5s', '--command-timeout', '10s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

// ---------------------------------------------------------------------------------------------
// Small utilities.

/** "http://127.0.0.1:1234" or "127.0.0.1:1234" → "127.0.0.1:1234". */
export function hostPort(urlOrAddress: string): string {
  return urlOrAddress.replace(/^[a-z]+:\/\//, '').replace(/\/$/, '');
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A metric summed over its labels (or those series matching `labels`), from the registry the in-process proxies share. */
export async function metricTotal(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await registry.getSingleMetric(name)?.get();
  const match = (l: Record<string, unknown>) => Object.entries(labels).every(([k, v]) => l[k] === v);
  return (m?.values ?? []).filter((v) => match(v.labels)).reduce((n, v) => n + v.value, 0);
}

/** Watchers each etcd serves (its own gauge etcd_debugging_mvcc_watcher_total), by client URL. */
export async function etcdWatchers(clientUrls: string[]): Promise<number[]> {
  return Promise.all(
    clientUrls.map(async (url) => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return Number(text.split('\n').find((l) => l.startsWith('etcd_debugging_mvcc_watcher_total '))?.split(' ')[1] ?? NaN);
    }),
  );
}

/** Polls `cond` until it returns true; throws after `timeoutMs`. */
export async function waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      if (await cond()) return;
    } catch (err) {
      lastErr = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}

/** What metaPerFile started for a test file. */
export interface FileMeta {
  meta: Meta;
  /** A raw client per proxy, same order as meta.addresses. */
  clients: RawClient[];
  /** The plain etcd started beside it (when asked for), and a raw client to it. */
  oracle: { address: string; client: RawClient } | null;
}

/**
 * For a test file: starts a meta-cluster (and a raw client per proxy), and a plain etcd oracle
 * when `oracleName` is given, before its tests, and stops everything after them (also what did
 * start when the start fails half-way). Extra things to stop go into `cleanup`.
 */
export function metaPerFile(
  opts: MetaOptions & { oracleName?: string },
  setupTimeoutMs = 120_000,
): { cleanup: Cleanup; started(): Promise<FileMeta> } {
  const cleanup = new Cleanup();
  let settle!: { resolve: (v: FileMeta) => void; reject: (e: unknown) => void };
  const started = new Promise<FileMeta>((resolve, reject) => (settle = { resolve, reject }));
  started.catch(() => undefined);
  // Node 20 runs a file's top-level before hooks concurrently: the file's own hooks await started().
  before(async () => {
    try {
      // Both are waited for, so that whatever started is stopped when the other fails.
      const [m, or] = await Promise.allSettled([startMeta(opts), opts.oracleName ? startOracle(opts.oracleName) : Promise.resolve(null)]);
      if (m.status === 'fulfilled') cleanup.add('stop meta', () => m.value.stop());
      if (or.status === 'fulfilled' && or.value) cleanup.add('stop oracle', () => or.value!.stop());
      if (m.status === 'rejected') throw m.reason;
      if (or.status === 'rejected') throw or.reason;
      const meta = m.value;
      const o = or.value;
      const clients = meta.addresses.map((a) => new RawClient(a));
      const oracle = o ? { address: o.address, client: new RawClient(o.address) } : null;
      cleanup.add('close clients', () => [...clients, ...(oracle ? [oracle.client] : [])].forEach((c) => c.close()));
      settle.resolve({ meta, clients, oracle });
    } catch (err) {
      settle.reject(err);
      await cleanup.run();
      throw err;
    }
  }, { timeout: setupTimeoutMs });
  after(() => cleanup.run(), { timeout: setupTimeoutMs });
  return { cleanup, started: () => started };
}

/** A proxy run as its own process by the CLI (serveProcess). */
export interface ServeProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
}

const CLI_MAIN = path.resolve(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const WITH_JEMALLOC = path.resolve(import.meta.dirname, '..', 'scripts', 'with-jemalloc.sh');

/**
 * Runs `etcd-metaproxy serve --config <config>` as its own process, its log (stderr) appended to
 * `log`, and resolves once it prints its ready line. `onSpawn` gets the process at once (to
 * register its stop), so one that never gets ready is stopped too; one that exits first fails
 * with the end of its log. It runs under jemalloc, as `npm start` and the Docker image run the
 * proxy (scripts/with-jemalloc.sh execs node, so the pid is node's): under glibc's malloc the RSS
 * growth of e2e/bounded-memory's burst moved between +42 and +103 MiB from run to run of the
 * same code, under jemalloc between +37 and +51 MiB.
 */
export async function serveProcess(o: { name: string; config: string; log: string; cwd?: string; onSpawn: (p: ServeProcess) => void }): Promise<ServeProcess> {
  const logFd = fs.openSync(o.log, 'a');
  const child = spawn('bash', [WITH_JEMALLOC, process.execPath, '--import', 'tsx', CLI_MAIN, 'serve', '--config', o.config], { stdio: ['ignore', 'pipe', logFd], cwd: o.cwd });
  fs.closeSync(logFd);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const proc = { child, exited };
  o.onSpawn(proc);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (/^etcd-metaproxy ready on /m.test(out)) resolve();
    });
    void exited.then((code) => {
      const tail = fs.readFileSync(o.log, 'utf8').slice(-3000);
      reject(new Error(`${o.name} exited (${code}) before it was ready; ${o.log} ends:\n${tail}`));
    });
  });
  return proc;
}
