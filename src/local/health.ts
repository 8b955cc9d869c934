import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

/** Certificate files for probing an https:// etcd (its CA, and a client certificate). */
export interface ProbeTls {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
}

/** One GET of etcd's /health; true only for `{"health":"true"}`. Never throws. */
export function probeHealth(clientUrl: string, timeoutMs = 1000, tls?: ProbeTls): Promise<boolean> {
  return new Promise((resolve) => {
    // agent:false + close: no pooled keep-alive socket lingers and holds the event loop.
    const opts: https.RequestOptions = { agent: false, headers: { connection: 'close' }, timeout: timeoutMs };
    let get: typeof http.get = http.get;
    if (clientUrl.startsWith('https://')) {
      get = https.get;
      if (tls) {
        try {
          Object.assign(opts, { ca: fs.readFileSync(tls.trustedCaFile), cert: fs.readFileSync(tls.certFile), key: fs.readFileSync(tls.keyFile) });
        } catch {
          return resolve(false);
        }
      }
    }
    const req = get(`${clientUrl}/health`, opts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          const parsed: unknown = JSON.parse(body);
          resolve(typeof parsed === 'object' && parsed !== null && (parsed as { health?: unknown }).health === 'true');
        } catch {
          resolve(false);
        }
      });
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

export type StartOutcome = 'healthy' | 'exited' | 'timeout';

/** Polls /health until it is true, the process exits, or the deadline passes. */
export async function waitHealthy(clientUrl: string, timeoutMs: number, exited: Promise<void>, tls?: ProbeTls): Promise<StartOutcome> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gone) return 'exited';
    if (await probeHealth(clientUrl, 1000, tls)) return 'healthy';
    if (gone) return 'exited';
    await new Promise((r) => setTimeout(r, 100));
  }
  return 'timeout';
}
