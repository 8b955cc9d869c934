/**
 * One watcher on the whole keyspace of a plain etcd: `etcdctl watch --prefix ''` (Go, so it costs
 * the machine little even at tens of thousands of events/s), output discarded. It gives the
 * baseline etcd the same duty as every member behind the proxy, which carries the proxy's watch.
 * Whether it receives events shows in the etcd's own etcd_debugging_mvcc_events_total.
 */
import { spawn } from 'node:child_process';
import { onCleanup, stopChild } from './cleanup.js';

export interface Watcher {
  stop(): Promise<void>;
}

export async function watchWholeKeyspace(endpoint: string): Promise<Watcher> {
  const child = spawn(process.env.ETCDCTL_BIN ?? 'etcdctl', [`--endpoints=${endpoint}`, 'watch', '--prefix', ''], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-2000)));
  const unregister = onCleanup(`etcdctl watch on ${endpoint}`, () => stopChild(child, 1000));
  // etcdctl has no "watching" signal: give it a moment and check it did not exit (bad flags,
  // unreachable endpoint).
  const exited = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 500);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
    child.once('error', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
  if (exited) {
    unregister();
    throw new Error(`etcdctl watch on ${endpoint} exited: ${err.trim() || 'no output (is etcdctl installed? scripts/setup.sh installs it)'}`);
  }
  return {
    stop: async () => {
      unregister();
      await stopChild(child, 1000);
    },
  };
}
