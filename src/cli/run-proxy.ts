import type { Logger } from 'pino';
import type { ProxyConfig } from '../config/types.js';
import type { RunningProxy } from '../server/proxy-api.js';
import { startMetricsServer, type MetricsServer } from '../http/server.js';
import type { CliIO } from './io.js';
import type { Shutdown } from './shutdown.js';

const READY_POLL_MS = 50;

/**
 * Runs the proxy (and its metrics endpoint) until a shutdown signal; prints the ready line once
 * it serves. `cleanup` runs last (e.g. stopping local etcds). Returns the exit code.
 */
export async function runProxy(cfg: ProxyConfig, logger: Logger, io: CliIO, shutdown: Shutdown, cleanup?: () => Promise<void>): Promise<number> {
  let proxy: RunningProxy | undefined;
  let metrics: MetricsServer | undefined;
  let code = 0;
  try {
    // Started first so that /livez and /readyz answer while the proxy is still starting.
    if (cfg.metrics.listen !== '') {
      metrics = await startMetricsServer(cfg.metrics.listen, {
        upstreams: (which) => (proxy ? proxy.probeUpstreams(which) : Promise.resolve([{ name: 'proxy', error: 'not started' }])),
        ready: () => proxy?.ready() ?? false,
        cacheNotReady: () => (proxy ? proxy.cacheNotReady() : 'the proxy has not started'),
      }, cfg.clientTls, () => proxy?.gateway ?? null);
      logger.info({ address: metrics.address }, 'metrics endpoint listening');
    }
    // Loaded lazily so that argument and configuration errors never depend on the server code.
    const { startProxy } = await import('../server/proxy.js');
    if (!shutdown.requested) proxy = await startProxy(cfg, { logger });
    if (proxy && (await waitReady(proxy, shutdown, logger))) {
      io.out(`etcd-metaproxy ready on ${proxy.address}\n`);
      logger.info({ address: proxy.address }, 'ready');
      const signal = await shutdown.done;
      logger.info({ signal }, 'shutting down');
    }
  } catch (err) {
    logger.error({ err }, 'etcd-metaproxy failed');
    code = 1;
  }
  await closeQuietly('metrics endpoint', logger, metrics && (() => metrics!.close()));
  await closeQuietly('proxy', logger, proxy && (() => proxy!.close()));
  await closeQuietly('local clusters', logger, cleanup);
  return code;
}

/** Resolves true once the proxy reports ready, false if shutdown was requested first. */
async function waitReady(proxy: RunningProxy, shutdown: Shutdown, logger: Logger): Promise<boolean> {
  const started = Date.now();
  let nextLog = started + 10_000;
  while (!proxy.ready()) {
    if (shutdown.requested) return false;
    if (Date.now() >= nextLog) {
      logger.warn({ waitedMs: Date.now() - started }, 'proxy not ready yet');
      nextLog += 10_000;
    }
    await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
  return !shutdown.requested;
}

async function closeQuietly(what: string, logger: Logger, close: (() => Promise<void>) | undefined): Promise<void> {
  if (!close) return;
  try {
    await close();
  } catch (err) {
    logger.error({ err }, `closing ${what} failed`);
  }
}
