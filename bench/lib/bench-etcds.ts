/**
 * The etcds of the scale-out benchmark: a plain baseline etcd and a meta-cluster (coordinator +
 * N shard etcds), every one started by the project's launcher (src/local/etcd-process.ts) with
 * the members' flags (MEMBER_ARGS), plus per-run overrides such as a small
 * --quota-backend-bytes; on free loopback ports with temporary data directories, stopped and
 * removed by runCleanups(). Each etcd is its own process, so each can get its own CPU cap.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEtcd } from '../../src/local/etcd-process.js';
import { MEMBER_ARGS } from '../../src/local/meta-cluster.js';
import { onCleanup } from './cleanup.js';
import type { BenchCluster } from './proxy-target.js';

export interface BenchEtcd {
  name: string;
  clientUrl: string;
  /** host:port of the client URL. */
  endpoint: string;
  /** etcd 3.4 serves /metrics on the client URL. */
  metricsUrl: string;
  pid: number;
  stop(): Promise<void>;
}

export interface BenchEtcdOptions {
  noFsync: boolean;
  /** Overrides MEMBER_ARGS' --quota-backend-bytes. */
  quotaBackendBytes?: number;
}

/** MEMBER_ARGS with the value of `flag` replaced (or the flag added). */
export function withFlag(args: readonly string[], flag: string, value: string): string[] {
  const out = [...args];
  const i = out.indexOf(flag);
  if (i >= 0 && i + 1 < out.length) out[i + 1] = value;
  else out.push(flag, value);
  return out;
}

function memberArgs(o: BenchEtcdOptions): string[] {
  const args = o.quotaBackendBytes === undefined ? [...MEMBER_ARGS] : withFlag(MEMBER_ARGS, '--quota-backend-bytes', String(o.quotaBackendBytes));
  // BENCH_ETCD_PPROF=1: every etcd serves /debug/pprof on its client URL (to profile a member).
  if (process.env.BENCH_ETCD_PPROF === '1') args.push('--enable-pprof');
  return args;
}

async function startOne(name: string, dir: string, o: BenchEtcdOptions): Promise<BenchEtcd> {
  const etcd = await startEtcd({
    name,
    dataDir: path.join(dir, name),
    logFile: path.join(dir, `${name}.log`),
    unsafeNoFsync: o.noFsync,
    extraArgs: memberArgs(o),
    ...(process.env.ETCD_BIN ? { binary: process.env.ETCD_BIN } : {}),
  });
  if (etcd.pid === undefined) throw new Error(`etcd ${name} started without a pid`);
  return {
    name,
    clientUrl: etcd.clientUrl,
    endpoint: new URL(etcd.clientUrl).host,
    metricsUrl: `${etcd.clientUrl}/metrics`,
    pid: etcd.pid,
    stop: () => etcd.stop(),
  };
}

export interface BenchEtcdGroup {
  etcds: BenchEtcd[];
  stop(): Promise<void>;
}

/** Starts etcds named `names` (in parallel) in one temporary directory. */
export async function startEtcds(names: string[], o: BenchEtcdOptions & { dirTag: string }): Promise<BenchEtcdGroup> {
  const dir = await mkdtemp(path.join(tmpdir(), `etcd-metaproxy-bench-${o.dirTag}-`));
  const removeDir = () => rm(dir, { recursive: true, force: true });
  const settled = await Promise.allSettled(names.map((n) => startOne(n, dir, o)));
  const etcds = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stopAll = async () => {
    await Promise.allSettled(etcds.map((e) => e.stop()));
    await removeDir();
  };
  const failed = settled.flatMap((s) => (s.status === 'rejected' ? [String((s.reason as Error)?.message ?? s.reason)] : []));
  if (failed.length) {
    await stopAll();
    throw new Error(`etcds failed to start:\n${failed.join('\n')}`);
  }
  const unregister = onCleanup(`etcds ${names.join(',')}`, stopAll);
  return {
    etcds,
    stop: async () => {
      unregister();
      await stopAll();
    },
  };
}

export interface MetaEtcds {
  coordinator: BenchEtcd;
  shards: BenchEtcd[];
  /** What bench/lib/proxy-target.ts' proxyConfig needs. */
  cluster: BenchCluster;
  stop(): Promise<void>;
}

/** A coordinator and `shards` shard etcds (s1..sN), as src/local/meta-cluster.ts names them. */
export async function startMetaEtcds(shards: number, o: BenchEtcdOptions): Promise<MetaEtcds> {
  const names = ['coordinator', ...Array.from({ length: shards }, (_, i) => `s${i + 1}`)];
  const g = await startEtcds(names, { ...o, dirTag: 'meta' });
  const [coordinator, ...members] = g.etcds as [BenchEtcd, ...BenchEtcd[]];
  return {
    coordinator,
    shards: members,
    cluster: {
      coordinatorUrl: coordinator.clientUrl,
      shardNames: members.map((s) => s.name),
      shardUrls: members.map((s) => s.clientUrl),
      pids: g.etcds.map((e) => e.pid),
      stop: g.stop,
    },
    stop: g.stop,
  };
}
