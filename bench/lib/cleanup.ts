/**
 * Everything the benchmark starts (etcd processes, the proxy child, load generators, temporary
 * directories) registers a cleanup here. `runCleanups()` runs them newest first; it is called at
 * the end of a run, on an error, and on SIGINT/SIGTERM/SIGHUP.
 */
import type { ChildProcess } from 'node:child_process';

type Cleanup = { name: string; fn: () => Promise<void> | void };
const cleanups: Cleanup[] = [];
let running: Promise<void> | undefined;

/** True once cleanup has begun (errors after that are a consequence, not worth reporting). */
export function shuttingDown(): boolean {
  return running !== undefined;
}

export function onCleanup(name: string, fn: () => Promise<void> | void): () => void {
  const entry = { name, fn };
  cleanups.push(entry);
  return () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

export function runCleanups(): Promise<void> {
  if (!running) {
    running = (async () => {
      while (cleanups.length > 0) {
        const c = cleanups.pop()!;
        try {
          await c.fn();
        } catch (err) {
          process.stderr.write(`[bench] cleanup of ${c.name} failed: ${String(err)}\n`);
        }
      }
    })();
  }
  return running;
}

/** Installs signal handlers that clean up and exit (130 for Ctrl-C). */
export function installSignalHandlers(): void {
  const handler = (sig: NodeJS.Signals) => {
    process.stderr.write(`\n[bench] ${sig}: stopping everything started...\n`);
    void runCleanups().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  process.once('SIGHUP', handler);
}

/** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      child.kill('SIGTERM');
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}
