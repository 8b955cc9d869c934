/**
 * Runs the proxy in its own process, so that it does not share an event loop with the parent
 * (which only orchestrates) or the load generator. Forked by bench/lib/proxy-target.ts:
 *   parent -> { type: 'start', config }   child -> { type: 'starting' } once it got the message,
 *                                          then { type: 'ready', address } | { type: 'error', error }
 *   parent -> { type: 'gc' }              child -> { type: 'gc', collected, memory }: runs the
 *                                          garbage collector (when started with --expose-gc),
 *                                          then reports process.memoryUsage()
 *   parent -> { type: 'close' }           child closes the proxy and exits.
 * SIGTERM/SIGINT and a lost parent (IPC disconnect) close it too.
 *
 * The proxy is started the way the CLI starts it (`runProxy` of src/cli/run-proxy.ts): its
 * metrics endpoint first (/metrics, /health, /livez, /readyz and their named checks, with the
 * CLI's own probes), then `startProxy`; `ready` is sent when the CLI would print its ready line.
 */
import type { ProxyConfig } from '../src/config/types.js';
import type { CliIO } from '../src/cli/io.js';

let closing = false;
let shutdownRequested = false;

function close(code: number): void {
  if (closing) return;
  closing = true;
  // Let runProxy close the proxy and the metrics endpoint (its Shutdown listens for SIGTERM);
  // exit anyway if that takes too long.
  const timer = setTimeout(() => process.exit(code || 1), 8000);
  timer.unref();
  if (shutdownRequested) return;
  shutdownRequested = true;
  process.kill(process.pid, 'SIGTERM');
}

async function start(config: ProxyConfig): Promise<void> {
  // Imported lazily: the modules may not exist while the harness is developed.
  // BENCH_PROXY_BUILD=dist runs the compiled build (`npm run build`), as `npm start` does.
  const root = process.env.BENCH_PROXY_BUILD === 'dist' ? '../dist' : '../src';
  const { runProxy } = (await import(`${root}/cli/run-proxy.js`)) as typeof import('../src/cli/run-proxy.js');
  const { Shutdown } = (await import(`${root}/cli/shutdown.js`)) as typeof import('../src/cli/shutdown.js');
  const { createLogger } = (await import(`${root}/log.js`)) as typeof import('../src/log.js');
  const logger = createLogger(config.log.level);
  const shutdown = new Shutdown();
  let announced = false;
  const io: CliIO = {
    out: (text) => {
      const m = /ready on (\S+)/.exec(text);
      if (m && !announced) {
        announced = true;
        process.send?.({ type: 'ready', address: m[1] });
      }
    },
    err: (text) => void process.stderr.write(text),
  };
  const code = await runProxy(config, logger, io, shutdown);
  shutdown.dispose();
  if (!announced) {
    process.send?.({ type: 'error', error: `the proxy did not start (exit code ${code}; its log is above)` }, () => process.exit(code || 1));
    return;
  }
  process.exit(code);
}

function gcAndMeasure(): { collected: boolean; memory: NodeJS.MemoryUsage } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    // Twice: the first full collection can leave objects only the second one frees (weak
    // references, finalizers).
    gc();
    gc();
  }
  return { collected: gc !== undefined, memory: process.memoryUsage() };
}

process.on('message', (m: { type: string; config?: ProxyConfig }) => {
  if (m.type === 'start') {
    process.send?.({ type: 'starting' });
    start(m.config!).catch((err: unknown) => {
      process.send?.({ type: 'error', error: String((err as Error)?.stack ?? err) }, () => process.exit(1));
    });
  } else if (m.type === 'gc') {
    process.send?.({ type: 'gc', ...gcAndMeasure() });
  } else if (m.type === 'close') {
    close(0);
  }
});
process.on('disconnect', () => close(0));
