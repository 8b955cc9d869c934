import convict from 'convict';
import yaml from 'js-yaml';

/**
 * The configuration keys. Each key can come from the file, from an environment variable
 * (ETCD_METAPROXY_ + the path in SCREAMING_SNAKE_CASE) or from a flag (the path in kebab-case).
 * Formats here only coerce text (env, flags) into shapes; validate.ts checks values, so that
 * every error names its exact key.
 */
export interface ConfigKey {
  /** Dotted path in ProxyConfig, e.g. `limits.maxTxnOps`. */
  path: string;
  format: 'metaproxy-string' | 'metaproxy-int' | 'metaproxy-list' | 'metaproxy-shards';
  default: string | number | boolean | string[] | [];
  doc: string;
}

export const CONFIG_KEYS: readonly ConfigKey[] = [
  { path: 'listen', format: 'metaproxy-string', default: '127.0.0.1:2379', doc: 'client gRPC listen address host:port' },
  { path: 'advertiseClientUrls', format: 'metaproxy-list', default: [], doc: 'client URLs announced by Cluster.MemberList (default http://<listen>)' },
  { path: 'certFile', format: 'metaproxy-string', default: '', doc: "client TLS: the proxy's certificate (PEM), as etcd's --cert-file; re-read when it changes" },
  { path: 'keyFile', format: 'metaproxy-string', default: '', doc: "client TLS: the certificate's private key (PEM), as etcd's --key-file" },
  { path: 'trustedCaFile', format: 'metaproxy-string', default: '', doc: "client TLS: CA bundle that client certificates must chain to, as etcd's --trusted-ca-file" },
  { path: 'clientCertAuth', format: 'metaproxy-string', default: false, doc: "client TLS: refuse clients without a certificate from trustedCaFile, as etcd's --client-cert-auth" },
    { path: 'metrics.listen', format: 'metaproxy-string', default: '127.0.0.1:9379', doc: 'HTTP listen address for /metrics, /health, /readyz and the JSON gateway (/v3/..., /version); empty disables' },
  { path: 'coordinator.endpoints', format: 'metaproxy-list', default: [], doc: 'coordinator cluster client URLs' },
  { path: 'coordinator.caFile', format: 'metaproxy-string', default: '', doc: "upstream TLS: CA bundle for the coordinator's https:// endpoints (default upstream.caFile)" },
  { path: 'coordinator.certFile', format: 'metaproxy-string', default: '', doc: 'upstream TLS: client certificate the proxy shows the coordinator (default upstream.certFile)' },
  { path: 'coordinator.keyFile', format: 'metaproxy-string', default: '', doc: "upstream TLS: that certificate's key (default upstream.keyFile)" },
  { path: 'upstream.caFile', format: 'metaproxy-string', default: '', doc: "upstream TLS: CA bundle for every cluster's https:// endpoints (empty: the system's CAs)" },
  { path: 'upstream.certFile', format: 'metaproxy-string', default: '', doc: 'upstream TLS: client certificate the proxy shows every cluster (per cluster: shards[].certFile, coordinator.certFile)' },
  { path: 'upstream.keyFile', format: 'metaproxy-string', default: '', doc: "upstream TLS: that certificate's key" },
  { path: 'shards', format: 'metaproxy-shards', default: [], doc: 'member clusters: list of {name, endpoints[, caFile, certFile, keyFile]}; as text name=url1,url2;name2=url3 or JSON' },
  { path: 'partitions', format: 'metaproxy-int', default: 1024, doc: 'number of hash partitions (fixed once recorded)' },
  { path: 'routingPrefixSegments', format: 'metaproxy-int', default: 0, doc: "hash keys up to their Nth '/' (0: whole key)" },
  { path: 'namespace', format: 'metaproxy-string', default: '', doc: 'prefix for user keys inside every member' },
  { path: 'limits.maxTxnOps', format: 'metaproxy-int', default: 128, doc: 'max operations per client txn' },
  { path: 'limits.maxRequestBytes', format: 'metaproxy-int', default: 1572864, doc: 'max client request size in bytes' },
  { path: 'limits.memoryBudgetBytes', format: 'metaproxy-int', default: 536870912, doc: 'one memory budget for responses in flight, queued watch events and events held for a shard that is down; past it big reads wait or get "etcdserver: too many requests", slow watchers are resynced, held events are dropped and re-read' },
  { path: 'memberLimits.maxTxnOps', format: 'metaproxy-int', default: 128, doc: "the member clusters' --max-txn-ops (bounds write batches)" },
  { path: 'memberLimits.maxRequestBytes', format: 'metaproxy-int', default: 1572864, doc: "the member clusters' --max-request-bytes (bounds write batches)" },
  { path: 'timeouts.requestMs', format: 'metaproxy-int', default: 5000, doc: 'deadline of one upstream call (ms)' },
  { path: 'timeouts.dialMs', format: 'metaproxy-int', default: 10000, doc: 'deadline of the first connection to a cluster (ms)' },
  { path: 'watch.historyEvents', format: 'metaproxy-int', default: 100000, doc: 'recent events kept in memory for watches that start in the past' },
  { path: 'watch.historyBytes', format: 'metaproxy-int', default: 134217728, doc: 'bytes of recent events kept in memory (keys, values and previous values)' },
  { path: 'watch.maxPendingEvents', format: 'metaproxy-int', default: 10000, doc: 'events queued for one slow watcher before it is resynced from history or the members (also resynced past 4 KiB while the memory budget is spent)' },
  { path: 'watch.fenceDelayMs', format: 'metaproxy-int', default: 5, doc: 'how long events held back by an idle shard wait before it is fenced (ms)' },
  { path: 'watch.progressNotifyIntervalMs', format: 'metaproxy-int', default: 600000, doc: 'interval of progress notifications for watchers that ask for them (etcd: 10 min)' },
  { path: 'cache.enabled', format: 'metaproxy-string', default: true, doc: 'serve reads from the in-memory per-shard caches (false: every read goes to the members)' },
  { path: 'cache.waitMs', format: 'metaproxy-int', default: 1000, doc: 'how long a linearizable read waits for the merged stream before it reads the members (ms)' },
  { path: 'cache.snapshots', format: 'metaproxy-int', default: 32, doc: 'past states kept for paginated lists and reads at recent revisions' },
  { path: 'cache.snapshotIdleMs', format: 'metaproxy-int', default: 60000, doc: 'a kept past state unused this long is dropped (ms)' },
  { path: 'cache.maxUndoEvents', format: 'metaproxy-int', default: 20000, doc: 'reads further back than this many events go to the members' },
  { path: 'cache.loadPageKeys', format: 'metaproxy-int', default: 10000, doc: 'keys per member read while a cache loads' },
  { path: 'ownership.ttlSec', format: 'metaproxy-int', default: 3, doc: "TTL of a replica's shard-ownership lease: how soon another replica takes over the writes of a dead owner (s)" },
  { path: 'ownership.pollMs', format: 'metaproxy-int', default: 200, doc: 'how often each replica reads the shard owners from the coordinator while its watch of them is down (ms)' },
  { path: 'ownership.peerUrl', format: 'metaproxy-string', default: '', doc: 'URL other replicas forward writes to (default: the first advertised client URL)' },
  { path: 'auth.token', format: 'metaproxy-string', default: 'simple', doc: "etcd's --auth-token: simple, or jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m" },
  { path: 'auth.tokenTtl', format: 'metaproxy-int', default: 300, doc: "etcd's --auth-token-ttl: seconds an unused simple token lives" },
  { path: 'auth.bcryptCost', format: 'metaproxy-int', default: 10, doc: "etcd's --bcrypt-cost: bcrypt cost of stored password hashes (4..31)" },
  { path: 'log.level', format: 'metaproxy-string', default: 'info', doc: 'fatal|error|warn|info|debug|trace|silent' },
];

function words(path: string): string[] {
  return path.split('.').flatMap((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase().split(' '));
}

/** ETCD_METAPROXY_LIMITS_MAX_TXN_OPS for limits.maxTxnOps. */
export function envName(path: string): string {
  return `ETCD_METAPROXY_${words(path).join('_').toUpperCase()}`;
}

/** Keys that are true or false: as flags they may stand alone (`--client-cert-auth`), as etcd's. */
export const BOOLEAN_KEYS: readonly string[] = ['clientCertAuth', 'cache.enabled'];

/** `--client-cert-auth` alone → `--client-cert-auth=true` (node's parseArgs wants a value for string options). */
export function normaliseBooleanFlags(args: string[]): string[] {
  const names = new Set(BOOLEAN_KEYS.map((p) => `--${flagName(p)}`));
  return args.map((arg, i) => (names.has(arg) && !/^(true|false)$/.test(args[i + 1] ?? '') ? `${arg}=true` : arg));
}

/** limits-max-txn-ops for limits.maxTxnOps (used as --limits-max-txn-ops). */
export function flagName(path: string): string {
  return words(path).join('-');
}

/** `name=url1,url2;name2=url3` or JSON (list of {name, endpoints} or {name: endpoints}). */
export function parseShardsText(text: string): unknown {
  const s = text.trim();
  if (s === '') return [];
  if (s.startsWith('[') || s.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(s);
      if (Array.isArray(parsed) || typeof parsed !== 'object' || parsed === null) return parsed;
      return Object.entries(parsed).map(([name, endpoints]) => ({
        name,
        endpoints: typeof endpoints === 'string' ? splitList(endpoints) : endpoints,
      }));
    } catch {
      return text; // left as text: validate.ts reports it
    }
  }
  const shards: { name: string; endpoints: string[] }[] = [];
  for (const entry of s.split(';').map((e) => e.trim()).filter((e) => e !== '')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) return text;
    shards.push({ name: entry.slice(0, eq).trim(), endpoints: splitList(entry.slice(eq + 1)) });
  }
  return shards;
}

export function splitList(text: string): string[] {
  return text.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

let registered = false;

/** Registers the coercing formats and the file parsers with convict (once per process). */
export function registerConvictExtensions(): void {
  if (registered) return;
  registered = true;
  const noCheck = (): void => undefined;
  convict.addFormats({
    'metaproxy-string': { validate: noCheck, coerce: (v: string) => v },
    'metaproxy-int': { validate: noCheck, coerce: (v: string) => (/^\s*[+-]?\d+\s*$/.test(v) ? Number(v) : v) },
    'metaproxy-list': { validate: noCheck, coerce: splitList },
    'metaproxy-shards': { validate: noCheck, coerce: parseShardsText },
  });
  convict.addParser([
    { extension: ['yml', 'yaml'], parse: parseYamlDocument },
    { extension: 'json', parse: parseJsonDocument },
    // Unknown extensions: YAML is a superset of JSON, so it reads both.
    { extension: '*', parse: parseYamlDocument },
  ]);
}

function parseYamlDocument(text: string): Record<string, unknown> {
  return requireMapping(yaml.load(text));
}

function parseJsonDocument(text: string): Record<string, unknown> {
  return requireMapping(text.trim() === '' ? undefined : JSON.parse(text));
}

function requireMapping(doc: unknown): Record<string, unknown> {
  if (doc === undefined || doc === null) return {}; // empty file: all defaults
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error('the top level must be a mapping of keys');
  return doc as Record<string, unknown>;
}

/** The convict schema object built from CONFIG_KEYS. */
export function buildSchema(): convict.Schema<Record<string, unknown>> {
  const root: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const parts = key.path.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      node[part] ??= {};
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = {
      doc: key.doc,
      format: key.format,
      default: key.default,
      env: envName(key.path),
    };
  }
  return root as convict.Schema<Record<string, unknown>>;
}
