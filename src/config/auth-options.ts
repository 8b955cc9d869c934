/**
 * The auth options, as etcd spells them: `--auth-token` is "simple" or
 * "jwt,pub-key=<file>,priv-key=<file>,sign-method=RS256,ttl=5m" (etcd's defaults: simple;
 * JWT ttl 5m), `--auth-token-ttl` the simple token TTL in seconds (300), `--bcrypt-cost` (10).
 */

export interface AuthConfig {
  /** etcd's --auth-token. */
  token: string;
  /** etcd's --auth-token-ttl (seconds): how long an unused simple token lives. */
  tokenTtl: number;
  /** etcd's --bcrypt-cost. */
  bcryptCost: number;
}

export const DEFAULT_AUTH: AuthConfig = { token: 'simple', tokenTtl: 300, bcryptCost: 10 };

/** A JWT token provider's options (auth/jwt-tokens.ts). */
export interface JwtOptions {
  signMethod: string;
  privateKeyFile: string;
  publicKeyFile: string;
  ttlSeconds: number;
}

export type TokenKind = { kind: 'simple' } | ({ kind: 'jwt' } & JwtOptions);

const UNITS: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001, us: 1e-6, 'µs': 1e-6, ns: 1e-9 };

/** A Go duration ("5m", "1h30m", "90s") in seconds; null when malformed. */
export function goDurationSeconds(text: string): number | null {
  const re = /(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * UNITS[m[2]];
    pos = re.lastIndex;
  }
  return text !== '' && pos === text.length ? total : null;
}

/** Parses --auth-token; throws an Error naming what is wrong. */
export function parseAuthToken(text: string): TokenKind {
  const [kind, ...rest] = text.split(',');
  const opts = new Map<string, string>();
  for (const pair of rest) {
    const parts = pair.split('=');
    if (parts.length !== 2) throw new Error(`invalid option ${JSON.stringify(pair)} (expected name=value)`);
    if (opts.has(parts[0])) throw new Error(`option ${parts[0]} given twice`);
    opts.set(parts[0], parts[1]);
  }
  if (kind === 'simple') {
    if (opts.size) throw new Error('simple tokens take no options');
    return { kind: 'simple' };
  }
  if (kind !== 'jwt') throw new Error(`unknown token type ${JSON.stringify(kind)} (simple or jwt)`);
  for (const k of opts.keys()) if (!['pub-key', 'priv-key', 'sign-method', 'ttl'].includes(k)) throw new Error(`unknown jwt option ${k}`);
  const ttl = opts.has('ttl') ? goDurationSeconds(opts.get('ttl') ?? '') : 300;
  if (ttl === null || ttl <= 0) throw new Error(`invalid jwt ttl ${JSON.stringify(opts.get('ttl'))} (a duration such as 5m)`);
  const signMethod = opts.get('sign-method') ?? '';
  if (!signMethod) throw new Error('jwt needs sign-method');
  if (!opts.get('priv-key') && !opts.get('pub-key')) throw new Error('jwt needs priv-key and/or pub-key');
  return { kind: 'jwt', signMethod, privateKeyFile: opts.get('priv-key') ?? '', publicKeyFile: opts.get('pub-key') ?? '', ttlSeconds: Math.max(1, Math.round(ttl)) };
}
