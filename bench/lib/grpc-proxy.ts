/**
 * etcd's own gRPC proxy (`etcd grpc-proxy start`, etcd 3.4) in front of a plain etcd, as a
 * reference for a caching proxy: it answers serializable Range requests from its in-memory
 * cache (keyed by the whole request) and passes linearizable ones through to etcd.
 *
 * It runs on a free loopback port with a temporary data directory, in its own process group
 * behind a watchdog (as src/local/etcd-process.ts starts etcd), so that it dies with this
 * process even on SIGKILL. Stopped and removed by runCleanups().
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/local/ports.js';
import { onCleanup } from './cleanup.js';
import { kvClient } from './kv-client.js';

export interface GrpcProxy {
  /** host:port it listens on. */
  endpoint: string;
  pid: number | undefined;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * `sh` keeps its stdin (a pipe from this process) on fd 3 and forks a subshell that blocks
 * reading it, then execs the proxy as the process group leader: when this process dies, the
 * pipe closes and the subshell kills the group.
 */
const WATCHDOG = 'exec 3<&0; ( read -r _ <&3; kill -9 0 ) & exec "$@" </dev/null 3<&-';

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

export async function startGrpcProxy(opts: { backend: string; binary?: string; startTimeoutMs?: number }): Promise<GrpcProxy> {
  const dir = await mkdtemp(path.join(tmpdir(), 'etcd-metaproxy-bench-grpc-proxy-'));
  const unregisterDir = onCleanup('grpc-proxy data dir', () => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const endpoint = `127.0.0.1:${port}`;
  const logFile = path.join(dir, 'grpc-proxy.log');
  const logFd = openSync(logFile, 'a');
  const args = [
    'grpc-proxy',
    'start',
    `--endpoints=${opts.backend}`,
    `--listen-addr=${endpoint}`,
    `--advertise-client-url=${endpoint}`,
    `--data-dir=${path.join(dir, 'data')}`,
  ];
  const binary = opts.binary ?? process.env.ETCD_BIN ?? 'etcd';
  const child = spawn('/bin/sh', ['-c', WATCHDOG, 'grpc-proxy-watchdog', binary, ...args], {
    detached: true,
    stdio: ['pipe', logFd, logFd],
  });
  closeSync(logFd);
  const pid = child.pid;
  const exited = new Promise<void>((resolve) => {
    const done = () => {
      child.stdin?.destroy(); // ends the watchdog
      resolve();
    };
    child.once('exit', done);
    child.once('error', done);
  });
  let gone = false;
  void exited.then(() => (gone = true));
  const stopProcess = async () => {
    if (pid === undefined || gone) return;
    signalGroup(pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const unregisterProcess = onCleanup('grpc-proxy', stopProcess);
  const stop = async () => {
    unregisterProcess();
    await stopProcess();
    unregisterDir();
    await rm(dir, { recursive: true, force: true });
  };

  // Ready when a Range through it answers.
  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  const client = kvClient(endpoint, 7000);
  try {
    for (;;) {
      if (gone) throw new Error(`etcd grpc-proxy exited during start; log:\n${await tail(logFile)}`);
      try {
        await client.range({ key: Buffer.from('bench/'), serializable: true });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`etcd grpc-proxy at ${endpoint} did not answer: ${String(err)}; log:\n${await tail(logFile)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } catch (err) {
    client.close();
    await stop();
    throw err;
  }
  client.close();
  return { endpoint, pid, logFile, stop };
}

async function tail(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-30).join('\n');
  } catch {
    return '(no log)';
  }
}
