/**
 * Runs the proxy in its own process, so that it does not share an event loop with the parent
 * (which only orchestrates) or the load generator. Forked by bench/lib/proxy-target.ts:
 *   parent -> { type: 'start', config }   child -> { type: 'ready', address } | { type: 'error', error }
 *   parent -> { type: 'close' }           child closes the proxy and exits.
 * SIGTERM/SIGINT and a lost parent (IPC disconnect) close it too.
 */
import http from 'node:http';
import pino from 'pino';
import type { ProxyConfig } from '../src/config/types.js';
import type { RunningProxy } from '../src/server/proxy-api.js';

let proxy: RunningProxy | undefined;
let closing = false;

async function close(code: number): Promise<never> {
  if (!closing) {
    closing = true;
    const timer = setTimeout(() => process.exit(code || 1), 5000);
    timer.unref();
    try {
      await proxy?.close();
    } catch {
      /* exiting anyway */
    }
  }
  process.exit(code);
}

async function start(config: ProxyConfig): Promise<string> {
  // Imported lazily: the module may not exist while the harness is developed.
  const mod = (await import('../src/server/proxy.js')) as {
    startProxy(config: ProxyConfig, opts?: { logger?: pino.Logger }): Promise<RunningProxy>;
  };
  const logger = pino({ level: config.log.level }, pino.destination(2));
  proxy = await mod.startProxy(config, { logger });
  const deadline = Date.now() + 30_000;
  while (!proxy.ready()) {
    if (Date.now() > deadline) throw new Error('proxy not ready within 30s');
    await new Promise((r) => setTimeout(r, 50));
  }
  await ensureMetricsEndpoint(config.metrics.listen);
  return proxy.address;
}

/**
 * The proxy's metrics live in a module-level prom-client registry (src/metrics/registry.ts).
 * If startProxy does not serve them on metrics.listen itself (the CLI may do that instead),
 * serve /metrics from this process.
 */
async function ensureMetricsEndpoint(listen: string): Promise<void> {
  if (!listen) return;
  try {
    const res = await fetch(`http://${listen}/metrics`, { signal: AbortSignal.timeout(1000) });
    if (res.ok) return;
  } catch {
    /* nobody listening: serve it here */
  }
  const { registry } = (await import('../src/metrics/registry.js')) as {
    registry: { metrics(): Promise<string>; contentType: string };
  };
  const i = listen.lastIndexOf(':');
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(listen.slice(i + 1)), listen.slice(0, i), () => resolve());
  });
  server.unref();
}

process.on('message', (m: { type: string; config?: ProxyConfig }) => {
  if (m.type === 'start') {
    start(m.config!).then(
      (address) => process.send!({ type: 'ready', address }),
      (err) => process.send!({ type: 'error', error: String(err?.stack ?? err) }, () => void close(1)),
    );
  } else if (m.type === 'close') {
    void close(0);
  }
});
process.on('disconnect', () => void close(0));
process.once('SIGTERM', () => void close(0));
process.once('SIGINT', () => void close(0));
