import http from 'node:http';

/** One GET of etcd's /health; true only for `{"health":"true"}`. Never throws. */
export function probeHealth(clientUrl: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    // agent:false + close: no pooled keep-alive socket lingers and holds the event loop.
    const req = http.get(`${clientUrl}/health`, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
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
export async function waitHealthy(clientUrl: string, timeoutMs: number, exited: Promise<void>): Promise<StartOutcome> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gone) return 'exited';
    if (await probeHealth(clientUrl)) return 'healthy';
    if (gone) return 'exited';
    await new Promise((r) => setTimeout(r, 100));
  }
  return 'timeout';
}
