/**
 * What bench/cache.ts asks a proxy about its cache and its memory:
 *
 * - readiness: `GET /readyz/cache` on the metrics endpoint answers 200 `ok` once every shard's
 *   cache is loaded (503 before); today's proxy has no such check and answers 404;
 * - size: the gauge `etcd_metaproxy_cache_keys{shard="..."}` holds the keys cached per shard;
 * - memory: VmRSS of the proxy process from /proc, and process.memoryUsage() reported by the
 *   proxy child right after a full GC (bench/proxy-child.ts), plus prom-client's default
 *   process metrics from /metrics as a cross-check.
 */
import { readFileSync } from 'node:fs';
import { counter, scrape, series } from './metrics.js';
import type { ProxyProcess } from './proxy-target.js';

export const CACHE_READY_PATH = '/readyz/cache';
export const CACHE_KEYS_METRIC = 'etcd_metaproxy_cache_keys';

export class NoCacheError extends Error {
  override readonly name = 'NoCacheError';
}

export interface CacheReady {
  /** False when the proxy has no cache readiness check (404) and that was allowed. */
  hasCache: boolean;
  /** performance.now() when /readyz/cache first answered 200 and the gauge reached the expected keys. */
  at: number;
  /** performance.now() when /readyz/cache first answered 200. */
  readyzAt: number;
  /** Sum of etcd_metaproxy_cache_keys over the shards (undefined when the gauge is missing). */
  keys: number | undefined;
  perShard: Record<string, number>;
}

export interface WaitCacheOptions {
  timeoutMs: number;
  /** Keep polling the gauge after /readyz/cache is 200 until its sum reaches this. */
  expectKeys?: number;
  /** Treat a 404 on /readyz/cache as "this proxy has no cache" instead of an error. */
  allowNoCache: boolean;
  pollMs?: number;
  log: (msg: string) => void;
}

async function get(url: string): Promise<{ status: number; body: string } | { error: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    return { error: String((err as Error)?.cause ?? err) };
  }
}

export async function cacheKeys(metricsUrl: string): Promise<{ keys: number | undefined; perShard: Record<string, number> }> {
  const text = await scrape(metricsUrl);
  const perShard: Record<string, number> = {};
  for (const s of series(text, CACHE_KEYS_METRIC)) perShard[s.labels['shard'] ?? '?'] = s.value;
  return { keys: counter(text, CACHE_KEYS_METRIC), perShard };
}

/** Polls /readyz/cache (and the cache keys gauge) until the cache is loaded; throws on timeout. */
export async function waitCacheReady(p: Pick<ProxyProcess, 'httpUrl' | 'metricsUrl'>, o: WaitCacheOptions): Promise<CacheReady> {
  const pollMs = o.pollMs ?? 25;
  const started = performance.now();
  const deadline = started + o.timeoutMs;
  const url = p.httpUrl + CACHE_READY_PATH;
  let last = 'no answer yet';
  let readyzAt: number | undefined;
  let gaugeChecks = 0;
  for (;;) {
    if (readyzAt === undefined) {
      const r = await get(url);
      if ('error' in r) last = r.error;
      else if (r.status === 200) readyzAt = performance.now();
      else if (r.status === 404) {
        const msg =
          `${url} answered 404: this proxy has no cache readiness check (the per-shard cache of issue 4 is not in this build)`;
        if (!o.allowNoCache) throw new NoCacheError(`${msg}; pass --allow-no-cache to measure it anyway (cache figures are then those of a proxy without cache)`);
        o.log(`WARNING: ${msg}; measuring it as a proxy without cache`);
        const now = performance.now();
        return { hasCache: false, at: now, readyzAt: now, keys: undefined, perShard: {} };
      } else last = `HTTP ${r.status}: ${r.body.trim().replace(/\n/g, ' | ')}`;
    }
    if (readyzAt !== undefined) {
      let gauge: Awaited<ReturnType<typeof cacheKeys>> | undefined;
      try {
        gauge = await cacheKeys(p.metricsUrl);
      } catch (err) {
        last = `cache ready, but /metrics failed: ${String(err)}`;
      }
      if (gauge) {
        gaugeChecks++;
        if (gauge.keys === undefined) {
          o.log(`WARNING: ${CACHE_READY_PATH} is ready but /metrics has no ${CACHE_KEYS_METRIC}: cached keys unknown`);
          return { hasCache: true, at: readyzAt, readyzAt, keys: undefined, perShard: {} };
        }
        if (o.expectKeys === undefined || gauge.keys >= o.expectKeys) {
          if (o.expectKeys !== undefined && gauge.keys !== o.expectKeys) {
            o.log(`WARNING: ${CACHE_KEYS_METRIC} sums to ${gauge.keys}, ${o.expectKeys} keys were loaded`);
          }
          // Ready when /readyz/cache said so, unless the gauge lagged behind it.
          const at = gaugeChecks === 1 ? readyzAt : performance.now();
          return { hasCache: true, at, readyzAt, keys: gauge.keys, perShard: gauge.perShard };
        }
        last = `${CACHE_READY_PATH} is 200 but ${CACHE_KEYS_METRIC} sums to ${gauge.keys} of ${o.expectKeys} keys`;
      }
    }
    if (performance.now() > deadline) {
      throw new Error(`the proxy's cache was not ready within ${o.timeoutMs / 1000}s (${url}: ${last})`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** VmRSS of a process in bytes, from /proc/<pid>/status (undefined when unreadable). */
export function vmRssBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface MemoryFigures {
  /** VmRSS after a full GC. */
  rss: number;
  heapUsed: number;
  /** V8 heap plus memory held outside it for JS objects (Buffers). */
  heapAndExternal: number;
  external: number;
  arrayBuffers: number;
  /** V8 heap reserved (used and free). */
  heapTotal: number;
  /** Seconds waited for RSS to settle before this sample (stableMemory). */
  settledSec?: number;
  /** Whether a full GC ran right before (the proxy was started with --expose-gc). */
  collected: boolean;
  /** prom-client's figures from /metrics (scraped after the sample), for reference. */
  metricsRss?: number;
  metricsHeapUsed?: number;
  /** The proxy's own estimate of its caches' size (etcd_metaproxy_cache_bytes summed over shards), if it has one. */
  cacheBytes?: number;
}

/** Waits `settleMs`, runs a full GC in the proxy, then reads its memory use. */
export async function sampleProxyMemory(p: ProxyProcess, settleMs: number): Promise<MemoryFigures> {
  if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
  const s = await p.sampleMemory();
  const rss = vmRssBytes(p.pid) ?? s.memory.rss;
  const out: MemoryFigures = {
    rss,
    heapUsed: s.memory.heapUsed,
    heapAndExternal: s.memory.heapUsed + s.memory.external,
    external: s.memory.external,
    arrayBuffers: s.memory.arrayBuffers,
    heapTotal: s.memory.heapTotal,
    collected: s.collected,
  };
  try {
    const text = await scrape(p.metricsUrl);
    const mRss = counter(text, 'etcd_metaproxy_process_resident_memory_bytes');
    const mHeap = counter(text, 'etcd_metaproxy_nodejs_heap_size_used_bytes');
    if (mRss !== undefined) out.metricsRss = mRss;
    if (mHeap !== undefined) out.metricsHeapUsed = mHeap;
    const cacheBytes = counter(text, 'etcd_metaproxy_cache_bytes');
    if (cacheBytes !== undefined) out.cacheBytes = cacheBytes;
  } catch {
    /* reference only */
  }
  return out;
}

/**
 * Memory once it has settled. Right after a load V8 still holds the heap it grew to (and gives
 * it back over the next seconds, when idle), so RSS right then overstates what the data costs:
 * samples (each after a full GC) every `intervalMs` until RSS moved by less than 1 % (or 1 MiB)
 * twice in a row, or `maxMs` passed; returns the last one.
 */
export async function stableMemory(p: ProxyProcess, o: { maxMs: number; intervalMs?: number }): Promise<MemoryFigures> {
  const interval = o.intervalMs ?? 2500;
  const started = performance.now();
  let prev = await sampleProxyMemory(p, 0);
  let calm = 0;
  while (performance.now() - started < o.maxMs && calm < 2) {
    const cur = await sampleProxyMemory(p, interval);
    calm = Math.abs(cur.rss - prev.rss) < Math.max(1 << 20, prev.rss * 0.01) ? calm + 1 : 0;
    prev = cur;
  }
  return { ...prev, settledSec: (performance.now() - started) / 1000 };
}
