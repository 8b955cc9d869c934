/**
 * Last-resort cleanup: SIGKILL the process groups of local etcds still running when this Node
 * process exits normally (process.exit, end of the event loop). Deaths that skip 'exit'
 * (SIGKILL, fatal signals) are covered by each etcd's watchdog instead.
 */
const live = new Set<number>();
let installed = false;

export function registerLive(pid: number): void {
  live.add(pid);
  if (!installed) {
    installed = true;
    process.on('exit', () => {
      for (const p of live) {
        try {
          process.kill(-p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
}

export function unregisterLive(pid: number): void {
  live.delete(pid);
}
