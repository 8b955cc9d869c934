/**
 * The proxy target: a local meta-cluster (coordinator + N shard etcds, src/local/meta-cluster.ts)
 * and the proxy running in a child process (bench/proxy-child.ts), on free loopback ports with a
 * temporary data directory. Stopped and removed by runCleanups().
 *
 * The two halves can also be used apart (bench/cache.ts restarts proxies on clusters that
 * already hold data): startBenchCluster, proxyConfig and startProxyProcess.
 */
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProxyConfig } from '../../src/config/types.js';
import { LOCAL_MEMBER_LIMITS, startLocalMetaCluster } from '../../src/local/meta-cluster.js';
import { freePort } from '../../src/local/ports.js';
import { onCleanup, stopChild } from './cleanup.js';

const childPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'proxy-child.ts');

export interface ProxyTarget {
  endpoint: string;
  metricsUrl?: string;
  /** The proxy process. */
  pid: number | undefined;
  /** The shard members' client URLs (for reference in the report). */
  shardUrls: string[];
  /** The proxy process handle (memory samples, timings). */
  process: ProxyProcess;
  stop(): Promise<void>;
}

export interface ProxyTargetOptions {
  shards: number;
  noFsync: boolean;
  partitions: number;
  logLevel?: string;
  /** Start the proxy process with --expose-gc (ProxyProcess.sampleMemory can then collect first). */
  exposeGc?: boolean;
}

export interface BenchCluster {
  coordinatorUrl: string;
  shardNames: string[];
  shardUrls: string[];
  /** Pids of the coordinator and the shard etcds. */
  pids: number[];
  stop(): Promise<void>;
}

export async function startBenchCluster(opts: { shards: number; noFsync: boolean }): Promise<BenchCluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'etcd-metaproxy-bench-cluster-'));
  const unregisterDir = onCleanup('meta-cluster data dir', () => rm(dir, { recursive: true, force: true }));
  const cluster = await startLocalMetaCluster({
    dataDir: dir,
    shards: opts.shards,
    unsafeNoFsync: opts.noFsync,
    ...(process.env.ETCD_BIN ? { binary: process.env.ETCD_BIN } : {}),
  });
  const stopCluster = onCleanup('meta-cluster', () => cluster.stop());
  return {
    coordinatorUrl: cluster.coordinator.clientUrl,
    shardNames: cluster.shards.map((s) => s.name),
    shardUrls: cluster.shards.map((s) => s.clientUrl),
    pids: [cluster.coordinator, ...cluster.shards].flatMap((e) => (e.pid === undefined ? [] : [e.pid])),
    stop: async () => {
      stopCluster();
      await cluster.stop();
      unregisterDir();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface ProxyConfigOptions {
  partitions: number;
  logLevel?: string;
  /** Recent watch events the proxy keeps in memory (default 100000). */
  historyEvents?: number;
  /** Overrides of the read cache settings (default: on, the configuration's defaults). */
  cache?: Partial<ProxyConfig['cache']>;
}

/** A proxy configuration for `cluster` on two fresh free loopback ports (gRPC and metrics). */
export async function proxyConfig(cluster: BenchCluster, opts: ProxyConfigOptions): Promise<ProxyConfig> {
  const listenPort = await freePort();
  const metricsPort = await freePort();
  return {
    listen: `127.0.0.1:${listenPort}`,
    advertiseClientUrls: [`http://127.0.0.1:${listenPort}`],
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    coordinator: { endpoints: [cluster.coordinatorUrl] },
    shards: cluster.shardNames.map((name, i) => ({ name, endpoints: [cluster.shardUrls[i]!] })),
    partitions: opts.partitions,
    routingPrefixSegments: 0,
    namespace: '',
    limits: { maxTxnOps: 128, maxRequestBytes: 1.5 * 1024 * 1024, memoryBudgetBytes: 512 * 1024 * 1024 },
    memberLimits: { ...LOCAL_MEMBER_LIMITS },
    timeouts: { requestMs: 10_000, dialMs: 10_000 },
    watch: {
      historyEvents: opts.historyEvents ?? 100_000,
      historyBytes: 134_217_728,
      maxPendingEvents: 10_000,
      fenceDelayMs: 5,
      progressNotifyIntervalMs: 600_000,
    },
    cache: { enabled: true, waitMs: 1000, snapshots: 32, snapshotIdleMs: 60000, maxUndoEvents: 20000, loadPageKeys: Number(process.env.BENCH_LOAD_PAGE ?? 10000), ...opts.cache },
    ownership: { ttlSec: 3, pollMs: 200, peerUrl: '' },
    log: { level: opts.logLevel ?? 'warn' },
  };
}

/** process.memoryUsage() of the proxy process, taken right after a full GC when it could run one. */
export interface MemorySample {
  /** False when the process was not started with --expose-gc. */
  collected: boolean;
  memory: NodeJS.MemoryUsage;
}

export interface ProxyProcess {
  endpoint: string;
  /** http://host:port of the metrics endpoint (/metrics, /readyz, ...). */
  httpUrl: string;
  metricsUrl: string;
  pid: number | undefined;
  /** performance.now() when the process was forked, got the start message, and served. */
  timings: { forkedAt: number; startingAt: number; readyAt: number };
  /** Runs a full GC in the proxy (if started with exposeGc) and returns its memory use. */
  sampleMemory(): Promise<MemorySample>;
  stop(): Promise<void>;
}

/** Forks bench/proxy-child.ts with `config` and resolves once the proxy serves. */
function assertProxyModule(): void {
  const proxyModule = path.resolve(path.dirname(childPath), '..', 'src', 'server', 'proxy.ts');
  if (!existsSync(proxyModule)) {
    throw new Error(`${proxyModule} does not exist yet; --targets etcd,etcd checks the harness alone`);
  }
}

export async function startProxyProcess(config: ProxyConfig, opts: { exposeGc?: boolean; startTimeoutMs?: number; nodeFlags?: string[] } = {}): Promise<ProxyProcess> {
  assertProxyModule();
  const forkedAt = performance.now();
  const child = fork(childPath, [], {
    execArgv: [
      '--import',
      'tsx',
      ...(opts.exposeGc ? ['--expose-gc'] : []),
      ...(opts.nodeFlags ?? []),
      ...(process.env.BENCH_PROXY_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROXY_CPU_PROF}`] : []),
      // Node/V8 flags for the proxy that NODE_OPTIONS refuses (e.g. --trace-gc-nvp).
      ...(process.env.BENCH_PROXY_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const stop = async () => {
    if (child.connected) child.send({ type: 'close' });
    await stopChild(child, 10_000);
  };
  const unregister = onCleanup('proxy process', stop);
  let startingAt = NaN;
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  let address: string;
  try {
    address = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`proxy did not start within ${startTimeoutMs / 1000}s`)), startTimeoutMs);
      const onMessage = (m: { type: string; address?: string; error?: string }) => {
        if (m.type === 'starting') {
          startingAt = performance.now();
          return;
        }
        clearTimeout(timer);
        child.off('message', onMessage);
        if (m.type === 'ready') resolve(m.address!);
        else if (m.type === 'error') reject(new Error(`proxy failed to start: ${m.error}`));
      };
      child.on('message', onMessage);
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`proxy process exited during start (${code ?? sig})`));
      });
      child.send({ type: 'start', config });
    });
  } catch (err) {
    unregister();
    await stop();
    throw err;
  }
  const readyAt = performance.now();
  const httpUrl = `http://${config.metrics.listen}`;
  return {
    endpoint: address,
    httpUrl,
    metricsUrl: `${httpUrl}/metrics`,
    pid: child.pid,
    timings: { forkedAt, startingAt, readyAt },
    sampleMemory: () =>
      new Promise<MemorySample>((resolve, reject) => {
        if (!child.connected) return reject(new Error('the proxy process is gone'));
        const timer = setTimeout(() => reject(new Error('the proxy process did not answer a gc request within 60s')), 60_000);
        const onMessage = (m: { type: string } & Partial<MemorySample>) => {
          if (m.type !== 'gc') return;
          clearTimeout(timer);
          child.off('message', onMessage);
          resolve({ collected: m.collected!, memory: m.memory! });
        };
        child.on('message', onMessage);
        child.send({ type: 'gc' });
      }),
    stop: async () => {
      unregister();
      await stop();
    },
  };
}

export async function startProxyTarget(opts: ProxyTargetOptions): Promise<ProxyTarget> {
  assertProxyModule();
  const cluster = await startBenchCluster(opts);
  const config = await proxyConfig(cluster, { partitions: opts.partitions, ...(opts.logLevel ? { logLevel: opts.logLevel } : {}) });
  const proxy = await startProxyProcess(config, { exposeGc: opts.exposeGc ?? false });
  return {
    endpoint: proxy.endpoint,
    metricsUrl: proxy.metricsUrl,
    pid: proxy.pid,
    shardUrls: cluster.shardUrls,
    process: proxy,
    stop: async () => {
      await proxy.stop();
      await cluster.stop();
    },
  };
}
