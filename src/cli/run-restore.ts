import { loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import type { CliIO } from './io.js';

/** `restore`: snapshot → empty clusters. Prints one summary line; 1 when refused or failed. */
export async function runRestore(cmd: { file: string; configFile: string; resetVersions: boolean }, io: CliIO): Promise<number> {
  const cfg = loadConfig({ file: cmd.configFile, env: process.env });
  const logger = createLogger(cfg.log.level);
  // Loaded lazily so that argument and configuration errors never depend on the backup code.
  const { restoreSnapshot, RestoreRefused } = await import('../backup/restore.js');
  const { SnapshotError } = await import('../backup/reader.js');
  try {
    const r = await restoreSnapshot({ file: cmd.file, config: cfg, logger, resetVersions: cmd.resetVersions });
    const perShard = r.shards.map((s) => `${s.name}: ${s.keys}`).join(', ');
    io.out(`restored ${r.keys} keys at revision ${r.revision} (${perShard})${r.repartitioned ? ', placed by the configuration\'s partition map' : ''}\n`);
    return 0;
  } catch (err) {
    if (err instanceof SnapshotError || err instanceof RestoreRefused) {
      io.err(`etcd-metaproxy restore: ${err.message}\n`);
      return 1;
    }
    logger.error({ err }, 'restore failed');
    io.err(`etcd-metaproxy restore: failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
