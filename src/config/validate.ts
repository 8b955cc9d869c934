import fs from 'node:fs';
import type { ClientTls, ProxyConfig, ShardConfig, UpstreamTls } from './types.js';
import { formatHostPort, normaliseEndpoint, parseHostPort } from './address.js';
import { parseAuthToken } from './auth-options.js';

/**
 * Checks the merged raw configuration and builds a ProxyConfig. Every problem is reported as
 * `<key path>: <what is wrong>` so that the user knows exactly what to fix.
 */
export type ValidationResult = { ok: true; config: ProxyConfig } | { ok: false; errors: string[] };

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const SHARD_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const MAX_PARTITIONS = 65536;
const SHARD_KEYS = ['name', 'endpoints', 'caFile', 'certFile', 'keyFile'];

type Raw = Record<string, unknown>;

export function validateConfig(raw: Raw): ValidationResult {
  const errors: string[] = [];
  const fail = (path: string, msg: string): void => void errors.push(`${path}: ${msg}`);

  const listen = hostPort(raw.listen, 'listen', fail, false);
  const metricsListen = hostPort(sub(raw, 'metrics').listen, 'metrics.listen', fail, true);
  const coordinator = endpointList(sub(raw, 'coordinator').endpoints, 'coordinator.endpoints', fail);
  const upstreamDefaults = upstreamTls(sub(raw, 'upstream'), 'upstream', undefined, fail);
  const coordinatorTls = upstreamTls(sub(raw, 'coordinator'), 'coordinator', upstreamDefaults, fail);
  const shards = shardList(raw.shards, upstreamDefaults, fail);
  const clientTls = clientTlsOf(raw, fail);
  let advertise = endpointList(raw.advertiseClientUrls, 'advertiseClientUrls', fail, true);
  if (advertise.length === 0 && listen !== undefined) advertise = [`${clientTls ? 'https' : 'http'}://${listen}`];

  const partitions = int(raw.partitions, 'partitions', 1, MAX_PARTITIONS, fail);
  if (partitions !== undefined && shards.length > partitions) {
    fail('partitions', `must be at least the number of shards (${shards.length}), got ${partitions}`);
  }
  const routingPrefixSegments = int(raw.routingPrefixSegments, 'routingPrefixSegments', 0, 1024, fail);
  if (typeof raw.namespace !== 'string') fail('namespace', `must be a string (got ${show(raw.namespace)})`);
  const limits = sub(raw, 'limits');
  const maxTxnOps = int(limits.maxTxnOps, 'limits.maxTxnOps', 1, 1_000_000, fail);
  const maxRequestBytes = int(limits.maxRequestBytes, 'limits.maxRequestBytes', 1, 2 ** 31 - 1, fail);
  const memoryBudgetBytes = int(limits.memoryBudgetBytes, 'limits.memoryBudgetBytes', 1 << 20, Number.MAX_SAFE_INTEGER, fail);
  const memberLimits = sub(raw, 'memberLimits');
  const memberMaxTxnOps = int(memberLimits.maxTxnOps, 'memberLimits.maxTxnOps', 8, 1_000_000, fail);
  const memberMaxRequestBytes = int(memberLimits.maxRequestBytes, 'memberLimits.maxRequestBytes', 65536, 2 ** 31 - 1, fail);
  const timeouts = sub(raw, 'timeouts');
  const requestMs = int(timeouts.requestMs, 'timeouts.requestMs', 1, 2 ** 31 - 1, fail);
  const dialMs = int(timeouts.dialMs, 'timeouts.dialMs', 1, 2 ** 31 - 1, fail);
  const watch = sub(raw, 'watch');
  const historyEvents = int(watch.historyEvents, 'watch.historyEvents', 1, 100_000_000, fail);
  const historyBytes = int(watch.historyBytes, 'watch.historyBytes', 1024, Number.MAX_SAFE_INTEGER, fail);
  const maxPendingEvents = int(watch.maxPendingEvents, 'watch.maxPendingEvents', 1, 100_000_000, fail);
  const fenceDelayMs = int(watch.fenceDelayMs, 'watch.fenceDelayMs', 0, 60_000, fail);
  const progressNotifyIntervalMs = int(watch.progressNotifyIntervalMs, 'watch.progressNotifyIntervalMs', 10, 2 ** 31 - 1, fail);
  const cache = sub(raw, 'cache');
  const enabled = bool(cache.enabled, 'cache.enabled', fail);
  const waitMs = int(cache.waitMs, 'cache.waitMs', 0, 2 ** 31 - 1, fail);
  const snapshots = int(cache.snapshots, 'cache.snapshots', 0, 100_000, fail);
  const snapshotIdleMs = int(cache.snapshotIdleMs, 'cache.snapshotIdleMs', 1, 2 ** 31 - 1, fail);
  const maxUndoEvents = int(cache.maxUndoEvents, 'cache.maxUndoEvents', 0, 100_000_000, fail);
  const loadPageKeys = int(cache.loadPageKeys, 'cache.loadPageKeys', 1, 1_000_000, fail);
  const ownership = sub(raw, 'ownership');
  const ttlSec = int(ownership.ttlSec, 'ownership.ttlSec', 2, 3600, fail);
  const pollMs = int(ownership.pollMs, 'ownership.pollMs', 10, 60_000, fail);
  if (typeof ownership.peerUrl !== 'string' || (ownership.peerUrl !== '' && !/^https?:\/\/[^/]+\/?$/.test(ownership.peerUrl))) {
    fail('ownership.peerUrl', `must be empty or an http(s)://host:port URL (got ${show(ownership.peerUrl)})`);
  }
  const auth = sub(raw, 'auth');
  const authToken = typeof auth.token === 'string' ? auth.token : '';
  try {
    parseAuthToken(authToken);
  } catch (err) {
    fail('auth.token', (err as Error).message);
  }
  const tokenTtl = int(auth.tokenTtl, 'auth.tokenTtl', 1, 2 ** 31 - 1, fail);
  const bcryptCost = int(auth.bcryptCost, 'auth.bcryptCost', 4, 31, fail);
  const level = sub(raw, 'log').level;
  if (typeof level !== 'string' || !LOG_LEVELS.includes(level)) {
    fail('log.level', `must be one of ${LOG_LEVELS.join(', ')} (got ${show(level)})`);
  }
  checkSharedEndpoints(coordinator, shards, fail);

  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    config: {
      listen: listen as string,
      advertiseClientUrls: advertise,
      metrics: { listen: metricsListen as string },
      ...(clientTls ? { clientTls } : {}),
      coordinator: { endpoints: coordinator, ...(coordinatorTls ? { tls: coordinatorTls } : {}) },
      shards,
      partitions: partitions as number,
      routingPrefixSegments: routingPrefixSegments as number,
      namespace: raw.namespace as string,
      limits: { maxTxnOps: maxTxnOps as number, maxRequestBytes: maxRequestBytes as number, memoryBudgetBytes: memoryBudgetBytes as number },
      memberLimits: { maxTxnOps: memberMaxTxnOps as number, maxRequestBytes: memberMaxRequestBytes as number },
      timeouts: { requestMs: requestMs as number, dialMs: dialMs as number },
      ownership: { ttlSec: ttlSec as number, pollMs: pollMs as number, peerUrl: ownership.peerUrl as string },
      watch: {
        historyEvents: historyEvents as number,
        historyBytes: historyBytes as number,
        maxPendingEvents: maxPendingEvents as number,
        fenceDelayMs: fenceDelayMs as number,
        progressNotifyIntervalMs: progressNotifyIntervalMs as number,
      },
      cache: {
        enabled,
        waitMs: waitMs as number,
        snapshots: snapshots as number,
        snapshotIdleMs: snapshotIdleMs as number,
        maxUndoEvents: maxUndoEvents as number,
        loadPageKeys: loadPageKeys as number,
      },
      auth: { token: authToken, tokenTtl: tokenTtl as number, bcryptCost: bcryptCost as number },
      log: { level: level as string },
    },
  };
}

type Fail = (path: string, msg: string) => void;

/** true/false, also as text (environment variables and flags arrive as strings). */
function bool(v: unknown, path: string, fail: Fail): boolean {
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  fail(path, `must be true or false (got ${show(v)})`);
  return false;
}

function sub(raw: Raw, key: string): Raw {
  const v = raw[key];
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Raw) : {};
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function hostPort(v: unknown, path: string, fail: Fail, allowEmpty: boolean): string | undefined {
  if (allowEmpty && v === '') return '';
  const hp = typeof v === 'string' ? parseHostPort(v.trim()) : undefined;
  if (!hp) {
    fail(path, `must be host:port${allowEmpty ? ' or empty' : ''} (got ${show(v)})`);
    return undefined;
  }
  return formatHostPort(hp);
}

function int(v: unknown, path: string, min: number, max: number, fail: Fail): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(path, `must be an integer in [${min}, ${max}] (got ${show(v)})`);
    return undefined;
  }
  return v;
}

function endpointList(v: unknown, path: string, fail: Fail, allowEmpty = false): string[] {
  const what = allowEmpty ? 'must be a list of URLs' : 'must be a non-empty list of URLs';
  if (!Array.isArray(v) || (!allowEmpty && v.length === 0)) {
    fail(path, `${what} (got ${show(v)})`);
    return [];
  }
  const out: string[] = [];
  v.forEach((item: unknown, i) => {
    const url = typeof item === 'string' ? normaliseEndpoint(item) : undefined;
    if (url === undefined) fail(`${path}[${i}]`, `must be an http(s):// URL or host:port (got ${show(item)})`);
    else if (out.includes(url)) fail(`${path}[${i}]`, `duplicate endpoint ${url}`);
    else out.push(url);
  });
  return out;
}

/** A readable file path, or '' when unset. */
function filePath(v: unknown, path: string, fail: Fail): string {
  if (v === undefined || v === '') return '';
  if (typeof v !== 'string') {
    fail(path, `must be a file path (got ${show(v)})`);
    return '';
  }
  try {
    fs.accessSync(v, fs.constants.R_OK);
  } catch (err) {
    fail(path, `cannot read ${v}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return v;
}

/**
 * TLS settings of one upstream cluster (caFile, certFile, keyFile under `raw`), each falling back
 * to `defaults`; undefined when none is set anywhere.
 */
function upstreamTls(raw: Raw, path: string, defaults: UpstreamTls | undefined, fail: Fail): UpstreamTls | undefined {
  const caFile = filePath(raw.caFile, `${path}.caFile`, fail) || (defaults?.caFile ?? '');
  const ownCert = filePath(raw.certFile, `${path}.certFile`, fail);
  const ownKey = filePath(raw.keyFile, `${path}.keyFile`, fail);
  if ((ownCert === '') !== (ownKey === '')) fail(`${path}.${ownCert ? 'keyFile' : 'certFile'}`, 'certFile and keyFile must be set together');
  const certFile = ownCert || (defaults?.certFile ?? '');
  const keyFile = ownKey || (defaults?.keyFile ?? '');
  if (!caFile && !certFile && !keyFile) return undefined;
  return { caFile, certFile, keyFile };
}

/** The proxy's client TLS (etcd's --cert-file, --key-file, --trusted-ca-file, --client-cert-auth). */
function clientTlsOf(raw: Raw, fail: Fail): ClientTls | undefined {
  const certFile = filePath(raw.certFile, 'certFile', fail);
  const keyFile = filePath(raw.keyFile, 'keyFile', fail);
  const trustedCaFile = filePath(raw.trustedCaFile, 'trustedCaFile', fail);
  const clientCertAuth = bool(raw.clientCertAuth ?? false, 'clientCertAuth', fail);
  if ((certFile === '') !== (keyFile === '')) fail(certFile ? 'keyFile' : 'certFile', 'certFile and keyFile must be set together');
  if (certFile === '' && (trustedCaFile !== '' || clientCertAuth)) fail(trustedCaFile ? 'trustedCaFile' : 'clientCertAuth', 'needs certFile and keyFile (client TLS)');
  if (clientCertAuth && trustedCaFile === '') fail('clientCertAuth', 'needs trustedCaFile (the CA that client certificates must chain to)');
  if (certFile === '' || keyFile === '') return undefined;
  return { certFile, keyFile, trustedCaFile, clientCertAuth };
}

function shardList(v: unknown, upstreamDefaults: UpstreamTls | undefined, fail: Fail): ShardConfig[] {
  if (!Array.isArray(v) || v.length === 0) {
    fail('shards', `must be a non-empty list of {name, endpoints} (as text: name=url1,url2;name2=url3) (got ${show(v)})`);
    return [];
  }
  const shards: ShardConfig[] = [];
  const seen = new Set<string>();
  v.forEach((entry: unknown, i) => {
    const path = `shards[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      fail(path, `must be a mapping with name and endpoints (got ${show(entry)})`);
      return;
    }
    const e = entry as Raw;
    for (const key of Object.keys(e)) if (!SHARD_KEYS.includes(key)) fail(`${path}.${key}`, 'unknown key');
    const name = e.name;
    if (typeof name !== 'string' || !SHARD_NAME.test(name)) {
      fail(`${path}.name`, `must be 1-63 characters [A-Za-z0-9._-], starting with a letter or digit (got ${show(name)})`);
    } else if (seen.has(name)) {
      fail(`${path}.name`, `duplicate shard name ${show(name)}`);
    } else {
      seen.add(name);
    }
    const endpoints = endpointList(e.endpoints, `${path}.endpoints`, fail);
    const tls = upstreamTls(e, path, upstreamDefaults, fail);
    if (typeof name === 'string') shards.push(tls ? { name, endpoints, tls } : { name, endpoints });
  });
  return shards;
}

/** Two clusters sharing an endpoint would share one clock key and break the fence. */
function checkSharedEndpoints(coordinator: string[], shards: ShardConfig[], fail: Fail): void {
  const owner = new Map<string, string>();
  for (const url of coordinator) owner.set(url, 'coordinator.endpoints');
  shards.forEach((shard, i) => {
    shard.endpoints.forEach((url) => {
      const other = owner.get(url);
      if (other !== undefined) fail(`shards[${i}].endpoints`, `${url} is also used by ${other}`);
      else owner.set(url, `shards[${i}].endpoints`);
    });
  });
}
