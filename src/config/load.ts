import fs from 'node:fs';
import { parseArgs } from 'node:util';
import convict from 'convict';
import type { ProxyConfig } from './types.js';
import { CONFIG_KEYS, buildSchema, flagName, normaliseBooleanFlags, registerConvictExtensions } from './schema.js';
import { validateConfig } from './validate.js';

/** A configuration problem the user must fix; the message is meant to be printed as is. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface LoadConfigOptions {
  /** YAML (.yml/.yaml) or JSON (.json) file; other extensions are read as YAML. */
  file?: string;
  /** Flags such as ['--listen', '0.0.0.0:2379'] (also --listen=...). Default: none. */
  args?: string[];
  /** Environment (ETCD_METAPROXY_*). Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

/** The flag options accepted by loadConfig (and by the CLI's serve command). */
export function configFlagOptions(): Record<string, { type: 'string' }> {
  const options: Record<string, { type: 'string' }> = {};
  for (const key of CONFIG_KEYS) options[flagName(key.path)] = { type: 'string' };
  return options;
}

function prefixed(lines: string[]): string {
  return lines.map((l) => `config: ${l}`).join('\n');
}

/** Precedence, lowest first: defaults, file, environment, flags. Throws ConfigError. */
export function loadConfig(opts: LoadConfigOptions = {}): ProxyConfig {
  registerConvictExtensions();
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: normaliseBooleanFlags(opts.args ?? []), options: configFlagOptions(), strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError(`config: ${(err as Error).message}`);
  }

  // args: [] keeps convict from reading process.argv on its own.
  const conf = convict(buildSchema(), { env: opts.env ?? process.env, args: [] });
  if (opts.file !== undefined) {
    try {
      fs.accessSync(opts.file, fs.constants.R_OK);
    } catch (err) {
      throw new ConfigError(`config: cannot read ${opts.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      conf.loadFile(opts.file);
    } catch (err) {
      throw new ConfigError(`config: ${opts.file}: ${(err as Error).message}`);
    }
  }
  for (const key of CONFIG_KEYS) {
    const value = flags[flagName(key.path)];
    if (typeof value === 'string') conf.set(key.path, value);
  }

  const errors: string[] = [];
  try {
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    errors.push(...(err as Error).message.split('\n').map(convictMessage));
  }
  const result = validateConfig(conf.getProperties());
  if (!result.ok) errors.push(...result.errors.filter((e) => !errors.includes(e)));
  if (errors.length > 0 || !result.ok) throw new ConfigError(prefixed(errors));
  return result.config;
}

/** Rewrites convict's wording into `<key>: <problem>` like our own checks. */
function convictMessage(line: string): string {
  const undeclared = /^configuration param '(.+)' not declared in the schema$/.exec(line);
  if (undeclared) return `${undeclared[1]}: unknown key`;
  const missing = /^configuration param '(.+)' missing from config, did you override its parent\?$/.exec(line);
  if (missing) return `${missing[1].replace(/\.[^.]+$/, '')}: must be a mapping`;
  return line;
}
