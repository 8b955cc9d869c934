/**
 * etcd's HTTP health endpoints, shaped as etcd 3.5/3.6 serves them:
 * - /health: JSON `{"health":"true","reason":""}` (200) or `{"health":"false","reason":"..."}`
 *   (503). `?serializable=true` leaves the coordinator out (serializable reads need only the
 *   shards), as etcd's serializable flag leaves out the cluster-wide part of its check.
 * - /livez and /readyz: named checks, "ok" when all pass (`?verbose` lists them as `[+]name ok`),
 *   else 503 listing `[-]name failed: reason`; `?exclude=name` skips a check and
 *   /readyz/<name> runs one. Liveness never depends on the clusters (restarting a proxy does
 *   not bring a shard back); readiness needs the proxy started, the coordinator answering and the read caches loaded.
 */

/** One upstream cluster's answer to a probe: error null when it answers. */
export interface UpstreamProbe {
  /** "coordinator" or "shard <name>". */
  name: string;
  error: string | null;
}

export interface Probes {
  /** True once the proxy serves requests. */
  ready(): boolean;
  /** Asks the coordinator or every shard whether it answers. */
  upstreams(which: 'coordinator' | 'shards'): Promise<UpstreamProbe[]>;
  /** Why the read caches are not serving yet (e.g. still loading), or null when they are (or are off). */
  cacheNotReady?(): string | null;
}

export interface HttpAnswer {
  status: number;
  type: string;
  body: string;
}

/** A probe that does not answer within this is reported failed. */
const HEALTH_TIMEOUT_MS = 5000;

const TEXT = 'text/plain; charset=utf-8';

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out`)), HEALTH_TIMEOUT_MS);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** '' when every probed cluster answers, else the failures. */
async function upstreamFailures(probes: Probes, which: 'coordinator' | 'shards'): Promise<string> {
  const results = await withTimeout(probes.upstreams(which), 'health check');
  return results
    .filter((r) => r.error !== null)
    .map((r) => `${r.name}: ${r.error}`)
    .join('; ');
}

export async function health(probes: Probes, query: URLSearchParams): Promise<HttpAnswer> {
  let reason = '';
  try {
    if (!probes.ready()) reason = 'NOT READY';
    else {
      const which: Array<'coordinator' | 'shards'> = query.get('serializable') === 'true' ? ['shards'] : ['coordinator', 'shards'];
      const failures = (await Promise.all(which.map((w) => upstreamFailures(probes, w)))).filter(Boolean).join('; ');
      if (failures) reason = `UPSTREAM UNAVAILABLE:${failures}`;
    }
  } catch (err) {
    reason = `HEALTH CHECK ERROR:${message(err)}`;
  }
  const body = JSON.stringify({ health: reason === '' ? 'true' : 'false', reason });
  return reason === '' ? { status: 200, type: 'application/json', body } : { status: 503, type: 'application/json', body: `${body}\n` };
}

type Check = (probes: Probes) => Promise<void>;

const LIVEZ: Array<[string, Check]> = [
  // Answering at all shows the event loop runs; the clusters' state is no reason to restart.
  ['ping', async () => undefined],
];

const READYZ: Array<[string, Check]> = [
  [
    'started',
    async (p) => {
      if (!p.ready()) throw new Error('the proxy has not finished starting (or is shutting down)');
    },
  ],
  [
    // The coordinator orders every write and linearizable read (etcd's linearizable_read).
    'coordinator',
    async (p) => {
      const failures = await upstreamFailures(p, 'coordinator');
      if (failures) throw new Error(failures);
    },
  ],
  [
    // Reads are served from memory once the caches are loaded (before, from the members).
    'cache',
    async (p) => {
      const why = p.cacheNotReady?.() ?? null;
      if (why) throw new Error(why);
    },
  ],
];

export const CHECKS: Record<'livez' | 'readyz', Array<[string, Check]>> = { livez: LIVEZ, readyz: READYZ };

/**
 * /livez, /readyz and their /<check> sub-paths; null for a path that is neither. Checks run
 * in a fixed order; a failure is always listed in full, success only with ?verbose.
 */
export async function checks(path: string, probes: Probes, query: URLSearchParams): Promise<HttpAnswer | null> {
  const [, root, one, ...rest] = path.split('/');
  if ((root !== 'livez' && root !== 'readyz') || rest.length > 0) return null;
  let selected = CHECKS[root];
  if (one !== undefined) {
    selected = selected.filter(([name]) => name === one);
    if (selected.length === 0) return null;
  } else {
    const excluded = new Set(query.getAll('exclude'));
    selected = selected.filter(([name]) => !excluded.has(name));
  }
  let out = '';
  let failed = false;
  for (const [name, check] of selected) {
    try {
      await withTimeout(check(probes), name);
      out += `[+]${name} ok\n`;
    } catch (err) {
      failed = true;
      out += `[-]${name} failed: ${message(err)}\n`;
    }
  }
  if (failed) return { status: 503, type: TEXT, body: `${out}\n` };
  return { status: 200, type: TEXT, body: query.has('verbose') ? `${out}ok\n` : 'ok\n' };
}
