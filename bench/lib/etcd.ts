/**
 * The baseline: a plain single-member etcd started by the project's own launcher
 * (src/local/etcd-process.ts) with the same flags as the proxy's member etcds (MEMBER_ARGS), on
 * free loopback ports with a temporary data directory. Stopped and removed by runCleanups().
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEtcd } from '../../src/local/etcd-process.js';
import { MEMBER_ARGS } from '../../src/local/meta-cluster.js';
import { onCleanup } from './cleanup.js';

export interface PlainEtcd {
  name: string;
  /** host:port of the client URL. */
  endpoint: string;
  clientUrl: string;
  pid: number | undefined;
  stop(): Promise<void>;
}

export interface PlainEtcdOptions {
  name: string;
  /** Pass --unsafe-no-fsync. */
  noFsync?: boolean;
}

export async function startPlainEtcd(opts: PlainEtcdOptions): Promise<PlainEtcd> {
  const dir = await mkdtemp(path.join(tmpdir(), `etcd-metaproxy-bench-${opts.name}-`));
  const removeDir = () => rm(dir, { recursive: true, force: true });
  let etcd;
  try {
    etcd = await startEtcd({
      name: opts.name,
      dataDir: path.join(dir, 'data'),
      logFile: path.join(dir, 'etcd.log'),
      unsafeNoFsync: opts.noFsync ?? false,
      extraArgs: [...MEMBER_ARGS],
      ...(process.env.ETCD_BIN ? { binary: process.env.ETCD_BIN } : {}),
    });
  } catch (err) {
    await removeDir();
    throw err;
  }
  const stop = async () => {
    await etcd.stop();
    await removeDir();
  };
  const unregister = onCleanup(`etcd ${opts.name}`, stop);
  return {
    name: opts.name,
    endpoint: new URL(etcd.clientUrl).host,
    clientUrl: etcd.clientUrl,
    pid: etcd.pid,
    stop: async () => {
      unregister();
      await stop();
    },
  };
}
