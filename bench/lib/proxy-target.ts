/**
 * The proxy target: a local meta-cluster (coordinator + N shard etcds, src/local/meta-cluster.ts)
 * and the proxy running in a child process (bench/proxy-child.ts), on free loopback ports with a
 * temporary data directory. Stopped and removed by runCleanups().
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
  stop(): Promise<void>;
}

export interface ProxyTargetOptions {
  shards: number;
  noFsync: boolean;
  partitions: number;
  logLevel?: string;
}

export async function startProxyTarget(opts: ProxyTargetOptions): Promise<ProxyTarget> {
  const proxyModule = path.resolve(path.dirname(childPath), '..', 'src', 'server', 'proxy.ts');
  if (!existsSync(proxyModule)) {
    throw new Error(`${proxyModule} does not exist yet; --targets etcd,etcd checks the harness alone`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'etcd-metaproxy-bench-cluster-'));
  onCleanup('meta-cluster data dir', () => rm(dir, { recursive: true, force: true }));
  const cluster = await startLocalMetaCluster({
    dataDir: dir,
    shards: opts.shards,
    unsafeNoFsync: opts.noFsync,
    ...(process.env.ETCD_BIN ? { binary: process.env.ETCD_BIN } : {}),
  });
  onCleanup('meta-cluster', () => cluster.stop());

  const listenPort = await freePort();
  const metricsPort = await freePort();
  const config: ProxyConfig = {
    listen: `127.0.0.1:${listenPort}`,
    advertiseClientUrls: [`http://127.0.0.1:${listenPort}`],
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    coordinator: { endpoints: [cluster.coordinator.clientUrl] },
    shards: cluster.shards.map((s) => ({ name: s.name, endpoints: [s.clientUrl] })),
    partitions: opts.partitions,
    routingPrefixSegments: 0,
    namespace: '',
    limits: { maxTxnOps: 128, maxRequestBytes: 1.5 * 1024 * 1024 },
    memberLimits: { ...LOCAL_MEMBER_LIMITS },
    timeouts: { requestMs: 10_000, dialMs: 10_000 },
    watch: { historyEvents: 100_000, historyBytes: 134_217_728, maxPendingEvents: 10_000, fenceDelayMs: 5, progressNotifyIntervalMs: 600_000 },
    cache: { enabled: true, waitMs: 1000, snapshots: 32, snapshotIdleMs: 60000, maxUndoEvents: 20000, loadPageKeys: 1000 },
    log: { level: opts.logLevel ?? 'warn' },
  };

  const child = fork(childPath, [], {
    execArgv: ['--import', 'tsx', ...(process.env.BENCH_PROXY_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROXY_CPU_PROF}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  onCleanup('proxy process', async () => {
    if (child.connected) child.send({ type: 'close' });
    await stopChild(child, 8000);
  });
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('proxy did not start within 60s')), 60_000);
    child.on('message', (m: { type: string; address?: string; error?: string }) => {
      clearTimeout(timer);
      if (m.type === 'ready') resolve(m.address!);
      else if (m.type === 'error') reject(new Error(`proxy failed to start: ${m.error}`));
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`proxy process exited during start (${code ?? sig})`));
    });
    child.send({ type: 'start', config });
  });
  return {
    endpoint: address,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    pid: child.pid,
    shardUrls: cluster.shards.map((s) => s.clientUrl),
    stop: async () => {
      if (child.connected) child.send({ type: 'close' });
      await stopChild(child, 8000);
      await cluster.stop();
    },
  };
}
