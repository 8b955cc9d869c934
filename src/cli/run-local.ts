import path from 'node:path';
import { loadConfig } from '../config/load.js';
import type { ProxyConfig } from '../config/types.js';
import { LOCAL_MEMBER_LIMITS, startLocalMetaCluster } from '../local/meta-cluster.js';
import { createLogger } from '../log.js';
import type { Command } from './args.js';
import type { CliIO } from './io.js';
import { runProxy } from './run-proxy.js';
import { Shutdown } from './shutdown.js';

type LocalCommand = Extract<Command, { kind: 'local' }>;

/** The proxy configuration for a local meta-cluster (environment may tune other keys). */
function localConfig(cmd: LocalCommand, coordinator: string, shards: string[]): ProxyConfig {
  return loadConfig({
    env: process.env,
    args: [
      '--listen', cmd.listen,
      '--metrics-listen', cmd.metrics,
      '--log-level', cmd.logLevel,
      '--coordinator-endpoints', coordinator,
      '--shards', shards.map((url, i) => `s${i + 1}=${url}`).join(';'),
      // The local members run with these limits (local/meta-cluster.ts MEMBER_ARGS).
      '--member-limits-max-txn-ops', String(LOCAL_MEMBER_LIMITS.maxTxnOps),
      '--member-limits-max-request-bytes', String(LOCAL_MEMBER_LIMITS.maxRequestBytes),
    ],
  });
}

/** `local`: coordinator + N shard etcds under one data dir, and the proxy in front of them. */
export async function runLocal(cmd: LocalCommand, io: CliIO): Promise<number> {
  // Validate the flags with placeholder endpoints before any etcd is started.
  const placeholders = Array.from({ length: cmd.shards }, (_, i) => `http://127.0.0.1:${i + 2}`);
  const preliminary = localConfig(cmd, 'http://127.0.0.1:1', placeholders);
  const logger = createLogger(preliminary.log.level);
  const shutdown = new Shutdown();
  try {
    const dataDir = path.resolve(cmd.dataDir);
    let cluster;
    try {
      cluster = await startLocalMetaCluster({ dataDir, shards: cmd.shards, unsafeNoFsync: false });
    } catch (err) {
      logger.error({ err }, 'local meta-cluster failed to start');
      return 1;
    }
    const shardUrls = cluster.shards.map((s) => s.clientUrl);
    logger.info(
      { dataDir, coordinator: cluster.coordinator.clientUrl, shards: Object.fromEntries(cluster.shards.map((s) => [s.name, s.clientUrl])) },
      'local meta-cluster started',
    );
    if (shutdown.requested) {
      await cluster.stop();
      return 0;
    }
    const cfg = localConfig(cmd, cluster.coordinator.clientUrl, shardUrls);
    return await runProxy(cfg, logger, io, shutdown, () => cluster.stop());
  } finally {
    shutdown.dispose();
  }
}
