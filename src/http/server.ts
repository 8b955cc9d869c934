import http from 'node:http';
import https from 'node:https';
import type { ClientTls } from '../config/types.js';
import { CheckedCertificateProvider } from '../tls/cert-files.js';
import type { AddressInfo } from 'node:net';
import { parseHostPort, formatHostPort } from '../config/address.js';
import { checks, health, type HttpAnswer, type Probes } from './health.js';
import { registry } from '../metrics/registry.js';
import { ownsPath, type Gateway } from '../gateway/gateway.js';
import { sendError } from '../gateway/respond.js';

export type { Probes, UpstreamProbe } from './health.js';

export interface MetricsServer {
  /** host:port actually bound (the real port when 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * Serves /metrics, /health (etcd-style JSON), /readyz and /livez (health.ts), and, given the
 * proxy's gateway, etcd's JSON API (/v3/..., /version) as etcd serves it beside them. With the
 * proxy's client TLS it serves HTTPS with the same certificate (re-read when it changes) and,
 * with client-cert-auth, requires the same client certificates, as etcd's client port does.
 */
export async function startMetricsServer(listen: string, probes: Probes, tls?: ClientTls, gateway?: () => Gateway | null): Promise<MetricsServer> {
  const hp = parseHostPort(listen);
  if (!hp) throw new Error(`metrics: listen must be host:port, got ${JSON.stringify(listen)}`);
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => void handle(req, res, probes, gateway);
  // No limit on receiving a whole request: a gateway watch or keepalive body stays open as long
  // as the client streams requests (headers must still arrive within headersTimeout).
  let stopWatching = (): void => undefined;
  let server: http.Server;
  if (tls) {
    const identity = new CheckedCertificateProvider({ certFile: tls.certFile, keyFile: tls.keyFile }, 'metrics TLS');
    const ca = tls.clientCertAuth ? new CheckedCertificateProvider({ caFile: tls.trustedCaFile }, 'metrics TLS trusted CA') : null;
    const current: { cert?: Buffer; key?: Buffer; ca?: Buffer } = {};
    const secure = https.createServer({ requestCert: tls.clientCertAuth, rejectUnauthorized: tls.clientCertAuth, requestTimeout: 0 }, onRequest);
    const apply = (): void => {
      if (current.cert && current.key && (!ca || current.ca)) secure.setSecureContext({ cert: current.cert, key: current.key, ca: current.ca });
    };
    const onIdentity = (u: { certificate: Buffer; privateKey: Buffer } | null): void => {
      if (u) Object.assign(current, { cert: u.certificate, key: u.privateKey });
      apply();
    };
    const onCa = (u: { caCertificate: Buffer } | null): void => {
      if (u) current.ca = u.caCertificate;
      apply();
    };
    identity.addIdentityCertificateListener(onIdentity);
    ca?.addCaCertificateListener(onCa);
    // The first certificates are there synchronously (read at construction, delivered next tick).
    await new Promise((r) => process.nextTick(r));
    stopWatching = () => {
      identity.removeIdentityCertificateListener(onIdentity);
      ca?.removeCaCertificateListener(onCa);
    };
    server = secure;
  } else {
    server = http.createServer({ requestTimeout: 0 }, onRequest);
  }
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
        stopWatching();
        server.close(() => resolve());
        server.closeAllConnections(); // scrapers keep connections alive; do not wait for them
      }),
  };
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, probes: Probes, gateway?: () => Gateway | null): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (gateway && ownsPath(url.pathname)) {
      const gw = gateway();
      if (gw) return gw.serve(req, res);
      req.resume();
      return sendError(res, { code: 14, message: 'etcd-metaproxy: the proxy has not started yet' });
    }
    if (url.pathname === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, { status: 405, type: 'text/plain', body: 'method not allowed\n' });
      return send(res, { status: 200, type: registry.contentType, body: await registry.metrics() });
    }
    const isHealth = url.pathname === '/health' || /^\/(livez|readyz)(\/|$)/.test(url.pathname);
    // Worded as Go's http.NotFound, which etcd answers for paths it does not serve.
    if (!isHealth) return send(res, { status: 404, type: 'text/plain; charset=utf-8', body: '404 page not found\n' });
    // etcd answers only GET on its health endpoints.
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      return send(res, { status: 405, type: 'text/plain; charset=utf-8', body: 'Method Not Allowed\n' });
    }
    const answer = url.pathname === '/health' ? await health(probes, url.searchParams) : await checks(url.pathname, probes, url.searchParams);
    return send(res, answer ?? { status: 404, type: 'text/plain', body: 'not found\n' });
  } catch (err) {
    send(res, { status: 500, type: 'text/plain', body: `error: ${(err as Error).message}\n` });
  }
}

function send(res: http.ServerResponse, a: HttpAnswer): void {
  if (res.headersSent) return void res.end();
  res.writeHead(a.status, { 'content-type': a.type, 'content-length': Buffer.byteLength(a.body), 'x-content-type-options': 'nosniff' });
  res.end(res.req.method === 'HEAD' ? undefined : a.body);
}
