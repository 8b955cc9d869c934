import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseHostPort, formatHostPort } from '../config/address.js';
import { registry } from './registry.js';

export interface Probes {
  /** True when the coordinator and every shard answer (etcd's /health semantics). */
  healthy(): Promise<boolean>;
  /** True once the proxy serves requests. */
  ready(): boolean;
}

export interface MetricsServer {
  /** host:port actually bound (the real port when 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

/** A health check that does not answer within this is reported unhealthy. */
const HEALTH_TIMEOUT_MS = 5000;

/** Serves /metrics, /health (etcd-style JSON), /readyz and /livez. */
export async function startMetricsServer(listen: string, probes: Probes): Promise<MetricsServer> {
  const hp = parseHostPort(listen);
  if (!hp) throw new Error(`metrics: listen must be host:port, got ${JSON.stringify(listen)}`);
  const server = http.createServer((req, res) => {
    void handle(req, res, probes);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(hp.port, hp.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: formatHostPort({ host: hp.host, port: bound.port }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // scrapers keep connections alive; do not wait for them
      }),
  };
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, probes: Probes): Promise<void> {
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/metrics':
        return send(res, 200, registry.contentType, await registry.metrics());
      case '/health': {
        const reason = await healthReason(probes);
        const body = JSON.stringify({ health: reason === '' ? 'true' : 'false', reason });
        return send(res, reason === '' ? 200 : 503, 'application/json', body);
      }
      case '/readyz':
        return probes.ready() ? send(res, 200, 'text/plain', 'ok\n') : send(res, 503, 'text/plain', 'not ready\n');
      case '/livez':
        return send(res, 200, 'text/plain', 'ok\n');
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  } catch (err) {
    send(res, 500, 'text/plain', `error: ${(err as Error).message}\n`);
  }
}

/** '' when healthy, otherwise why not. */
async function healthReason(probes: Probes): Promise<string> {
  if (!probes.ready()) return 'not ready';
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('health check timed out'), HEALTH_TIMEOUT_MS);
  });
  const check = probes.healthy().then(
    (ok) => (ok ? '' : 'an upstream cluster is unavailable'),
    (err: unknown) => `health check failed: ${(err as Error)?.message ?? String(err)}`,
  );
  try {
    return await Promise.race([check, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
