import { loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import type { CliIO } from './io.js';
import { runProxy } from './run-proxy.js';
import { Shutdown } from './shutdown.js';

/** `serve`: proxy for the clusters in the configuration. Throws ConfigError before starting anything. */
export async function runServe(configFile: string | undefined, configArgs: string[], io: CliIO): Promise<number> {
  const cfg = loadConfig({ file: configFile, args: configArgs, env: process.env });
  const logger = createLogger(cfg.log.level);
  const shutdown = new Shutdown();
  try {
    return await runProxy(cfg, logger, io, shutdown);
  } finally {
    shutdown.dispose();
  }
}
