import { loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import type { CliIO } from './io.js';

export interface ImportCommand {
  from: string[];
  configFile: string;
  follow: boolean;
  cacert: string;
  cert: string;
  key: string;
}

/**
 * `import`: a plain etcd → empty clusters (src/import/). Progress on stderr (one line rewritten
 * in place on a terminal, lines otherwise); one summary line on stdout; 1 when refused or failed.
 * The first SIGINT/SIGTERM stops following and finishes the import; a second one exits at once.
 */
export async function runImport(cmd: ImportCommand, io: CliIO, tty = process.stderr.isTTY === true): Promise<number> {
  const cfg = loadConfig({ file: cmd.configFile, env: process.env });
  const logger = createLogger(cfg.log.level);
  const { runImport: importNow, ImportRefused } = await import('../import/importer.js');
  const { ImportConflict } = await import('../import/shard-applier.js');
  const stop = new AbortController();
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) process.exit(130);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let open = false;
  const progress = {
    status(text: string) {
      if (tty) {
        io.err(`\r\x1b[K${text}`);
        open = true;
      } else io.err(`${text}\n`);
    },
    note(text: string) {
      if (open) io.err('\n');
      open = false;
      io.err(`${text}\n`);
    },
  };
  try {
    const r = await importNow({
      config: cfg,
      logger,
      from: cmd.from,
      tls: { caFile: cmd.cacert, certFile: cmd.cert, keyFile: cmd.key },
      follow: cmd.follow,
      progress,
      signal: stop.signal,
    });
    const what = r.resumed ? `resumed the import (copied at revision ${r.copyRevision})` : `imported ${r.keys} keys at revision ${r.copyRevision}`;
    io.out(`${what}, applied ${r.events} events after it; the meta-cluster stands at revision ${r.revision}\n`);
    return 0;
  } catch (err) {
    if (open) io.err('\n');
    if (err instanceof ImportRefused || err instanceof ImportConflict) {
      io.err(`etcd-metaproxy import: ${err.message}\n`);
      return 1;
    }
    logger.error({ err }, 'import failed');
    io.err(`etcd-metaproxy import: failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
