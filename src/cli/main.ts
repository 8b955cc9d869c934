import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../config/load.js';
import { parseCommand, UsageError } from './args.js';
import { processIO, type CliIO } from './io.js';
import { runImport } from './run-import.js';
import { runLocal } from './run-local.js';
import { runRestore } from './run-restore.js';
import { runServe } from './run-serve.js';
import { runStatus } from './run-status.js';
import { usage, version } from './usage.js';

/** Runs the command line; resolves with the process exit code. */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  try {
    const cmd = parseCommand(argv);
    switch (cmd.kind) {
      case 'help':
        io.out(usage());
        return 0;
      case 'version':
        io.out(`etcd-metaproxy ${version()}\n`);
        return 0;
      case 'serve':
        return await runServe(cmd.configFile, cmd.configArgs, io);
      case 'local':
        return await runLocal(cmd, io);
      case 'status':
        return await runStatus(cmd, io);
      case 'restore':
        return await runRestore(cmd, io);
      case 'import':
        return await runImport(cmd, io);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`etcd-metaproxy: ${err.message}\n\n${usage()}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

/** True when this file is the entry point (e.g. `tsx src/cli/main.ts local`). */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return pathToFileURL(fs.realpathSync(entry)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // A stray rejected promise must not take the server down with every client's requests:
  // report it (stderr, JSON like the logs) and keep serving.
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`${JSON.stringify({ level: 50, time: Date.now(), msg: 'unhandled rejection', err: String(reason instanceof Error ? reason.stack : reason) })}\n`);
  });
  process.exit(await main(process.argv.slice(2)));
}
