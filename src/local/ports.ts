import net from 'node:net';

/**
 * Free TCP ports for local etcd processes.
 *
 * Other processes on the machine (including other test runs) hold ports, so every candidate is
 * verified by actually binding it. Candidates are drawn below the kernel's ephemeral range so
 * that outgoing connections (which take ephemeral local ports) cannot grab them between our
 * check and etcd's bind. Ports handed out once are never handed out again by this process.
 */

const handedOut = new Set<number>();

// Linux' default ephemeral range starts at 32768; stay below it.
const LOW = 10000;
const HIGH = 32000;

/** True if `port` can be bound on `host` right now. */
export function canBind(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

/** Asks the kernel for any free port (fallback when the low range looks exhausted). */
function kernelPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A port that is bindable on `host` and was not returned before by this process. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port)) continue;
    handedOut.add(port); // reserve before the async check so concurrent callers never collide
    if (await canBind(port, host)) return port;
  }
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await kernelPort(host);
    if (port !== 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: no bindable port found on ${host}`);
}

/** Marks a port as taken so freePort() never returns it (e.g. ports reused from ports.json). */
export function reservePort(port: number): void {
  handedOut.add(port);
}
