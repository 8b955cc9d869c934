import { parseArgs, type ParseArgsConfig } from 'node:util';
import { configFlagOptions } from '../config/load.js';
import { flagName, CONFIG_KEYS, normaliseBooleanFlags } from '../config/schema.js';

/** A parsed command line. */
export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'serve'; configFile: string | undefined; configArgs: string[] }
  | { kind: 'local'; shards: number; listen: string; dataDir: string; metrics: string; logLevel: string }
  | { kind: 'status'; endpoints: string[] | undefined; configFile: string | undefined; writeOut: 'table' | 'json' }
  | { kind: 'restore'; file: string; configFile: string; resetVersions: boolean }
  | { kind: 'import'; from: string[]; configFile: string; follow: boolean; cacert: string; cert: string; key: string };

/** Bad command line: print the message and the usage, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const LOCAL_DEFAULTS = {
  shards: 3,
  listen: '127.0.0.1:2379',
  dataDir: './.data/local',
  metrics: '127.0.0.1:9379',
  logLevel: 'info',
};

function parse(args: string[], options: ParseArgsConfig['options']): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function parseCommand(argv: string[]): Command {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      throw new UsageError('missing command');
    case '--help':
    case '-h':
    case 'help':
      return { kind: 'help' };
    case '--version':
    case '-v':
    case 'version':
      return { kind: 'version' };
    case 'serve':
      return parseServe(rest);
    case 'local':
      return parseLocal(rest);
    case 'status':
      return parseStatus(rest);
    case 'restore':
      return parseRestore(rest);
    case 'import':
      return parseImport(rest);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

function parseServe(args: string[]): Command {
  const values = parse(normaliseBooleanFlags(args), { ...configFlagOptions(), config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } });
  if (values.help === true) return { kind: 'help' };
  // Config flags are handed to loadConfig, which applies them above file and environment.
  const configArgs: string[] = [];
  for (const key of CONFIG_KEYS) {
    const value = values[flagName(key.path)];
    if (typeof value === 'string') configArgs.push(`--${flagName(key.path)}`, value);
  }
  const configFile = typeof values.config === 'string' ? values.config : undefined;
  return { kind: 'serve', configFile, configArgs };
}

function parseLocal(args: string[]): Command {
  const values = parse(args, {
    shards: { type: 'string' },
    listen: { type: 'string' },
    'data-dir': { type: 'string' },
    metrics: { type: 'string' },
    'log-level': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) return { kind: 'help' };
  const str = (name: string, dflt: string): string => (typeof values[name] === 'string' ? (values[name] as string) : dflt);
  const shardsText = str('shards', String(LOCAL_DEFAULTS.shards));
  const shards = /^\d+$/.test(shardsText) ? Number(shardsText) : NaN;
  if (!Number.isInteger(shards) || shards < 1 || shards > 64) {
    throw new UsageError(`--shards must be an integer in [1, 64], got ${JSON.stringify(shardsText)}`);
  }
  return {
    kind: 'local',
    shards,
    listen: str('listen', LOCAL_DEFAULTS.listen),
    dataDir: str('data-dir', LOCAL_DEFAULTS.dataDir),
    metrics: str('metrics', LOCAL_DEFAULTS.metrics),
    logLevel: str('log-level', LOCAL_DEFAULTS.logLevel),
  };
}

function parseStatus(args: string[]): Command {
  const values = parse(args, {
    endpoints: { type: 'string' },
    config: { type: 'string', short: 'c' },
    'write-out': { type: 'string', short: 'w' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) return { kind: 'help' };
  const writeOut = typeof values['write-out'] === 'string' ? values['write-out'] : 'table';
  if (writeOut !== 'table' && writeOut !== 'json') throw new UsageError(`--write-out must be table or json, got ${JSON.stringify(writeOut)}`);
  const endpoints = typeof values.endpoints === 'string' ? values.endpoints.split(',').map((e) => e.trim()).filter(Boolean) : undefined;
  const configFile = typeof values.config === 'string' ? values.config : undefined;
  if (!endpoints?.length && configFile === undefined) throw new UsageError('status needs --endpoints (the coordinator or a proxy) or --config');
  return { kind: 'status', endpoints, configFile, writeOut };
}

function parseRestore(args: string[]): Command {
  const values = parse(args, {
    file: { type: 'string' },
    config: { type: 'string', short: 'c' },
    'reset-versions': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) return { kind: 'help' };
  if (typeof values.file !== 'string' || values.file === '') throw new UsageError('restore: --file SNAPSHOT is required');
  if (typeof values.config !== 'string' || values.config === '') throw new UsageError('restore: --config FILE is required');
  return { kind: 'restore', file: values.file, configFile: values.config, resetVersions: values['reset-versions'] === true };
}

function parseImport(args: string[]): Command {
  const values = parse(args, {
    from: { type: 'string' },
    config: { type: 'string', short: 'c' },
    follow: { type: 'boolean' },
    cacert: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    user: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) return { kind: 'help' };
  const from = typeof values.from === 'string' ? values.from.split(',').map((e) => e.trim()).filter(Boolean) : [];
  if (!from.length) throw new UsageError('import: --from ENDPOINTS (the source etcd) is required');
  if (typeof values.config !== 'string' || values.config === '') throw new UsageError('import: --config FILE is required');
  if (values.user !== undefined) {
    throw new UsageError('import: --user is not supported: give the importer a client certificate (--cert, --key) whose common name is a user allowed to read everything (etcd --client-cert-auth)');
  }
  const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : '');
  if ((str(values.cert) === '') !== (str(values.key) === '')) throw new UsageError('import: --cert and --key go together');
  return { kind: 'import', from, configFile: values.config, follow: values.follow === true, cacert: str(values.cacert), cert: str(values.cert), key: str(values.key) };
}
