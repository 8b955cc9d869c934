import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './ports.js';
import { waitHealthy } from './health.js';
import { readLogTail } from './log-tail.js';
import { registerLive, unregisterLive } from './reaper.js';

export interface EtcdProcessOptions {
  name: string;
  dataDir: string;
  /** Interface for client and peer listeners (default 127.0.0.1). */
  host?: string;
  clientPort?: number;
  peerPort?: number;
  /** Pass --unsafe-no-fsync (tests and benchmarks only). */
  unsafeNoFsync?: boolean;
  extraArgs?: string[];
  /** Where etcd's stdout/stderr go (default <dataDir>/etcd.log). */
  logFile?: string;
  /** etcd executable (default `etcd` from PATH). */
  binary?: string;
  /** How long to wait for /health to report true (default 30 s). */
  startTimeoutMs?: number;
  /**
   * Client TLS: https:// client URLs and --cert-file, --key-file, --trusted-ca-file and
   * --client-cert-auth (every client needs a certificate from the CA); the same certificate
   * serves as the health probe's client certificate.
   */
  tls?: EtcdTls;
}

export interface EtcdTls {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
}

export interface EtcdProcess {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  /** Pid of the running etcd (also its process group id); undefined when stopped. */
  readonly pid: number | undefined;
  /** SIGTERM the process group, SIGKILL after a grace period. */
  stop(): Promise<void>;
  /** SIGKILL the process group (a crash, for tests). */
  kill(): Promise<void>;
  /** Stop if running, then start again on the same ports and data dir. */
  restart(): Promise<void>;
}

/**
 * The watchdog. `sh` keeps a dup of its stdin (a pipe from this Node process) on fd 3, forks a
 * subshell that blocks reading it, then execs etcd (so the spawned pid *is* etcd and leads its
 * own process group). When this Node process dies for any reason, even SIGKILL, the kernel
 * closes the pipe's write end, `read` returns, and the subshell SIGKILLs the whole group.
 */
const WATCHDOG_SCRIPT = 'exec 3<&0; ( read -r _ <&3; kill -9 0 ) & exec "$@" </dev/null 3<&-';

const STOP_GRACE_MS = 10_000;
const PORT_RETRIES = 3;

class LocalEtcd implements EtcdProcess {
  readonly name: string;
  private readonly host: string;
  private readonly logFile: string;
  private clientPort: number;
  private peerPort: number;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly opts: EtcdProcessOptions, clientPort: number, peerPort: number) {
    this.name = opts.name;
    this.host = opts.host ?? '127.0.0.1';
    this.logFile = opts.logFile ?? path.join(opts.dataDir, 'etcd.log');
    this.clientPort = clientPort;
    this.peerPort = peerPort;
  }

  get clientUrl(): string {
    return `${this.opts.tls ? 'https' : 'http'}://${urlHost(this.host)}:${this.clientPort}`;
  }

  get peerUrl(): string {
    return `http://${urlHost(this.host)}:${this.peerPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts etcd; if it fails on a port we picked ourselves, retries on fresh ports. */
  async start(portsChosenByUs: boolean): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startOnce();
        return;
      } catch (err) {
        const portClash = err instanceof Error && /address already in use/.test(err.message);
        if (!portClash || !portsChosenByUs || attempt >= PORT_RETRIES) throw err;
        this.clientPort = await freePort(this.host);
        this.peerPort = await freePort(this.host);
      }
    }
  }

  private async startOnce(): Promise<void> {
    // etcd refuses a data dir that exists with permissions other than 0700.
    fs.mkdirSync(this.opts.dataDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(this.opts.dataDir, 0o700);
    fs.mkdirSync(path.dirname(this.logFile), { recursive: true });
    const logOffset = fs.existsSync(this.logFile) ? fs.statSync(this.logFile).size : 0;
    const logFd = fs.openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, 'etcd-watchdog', this.opts.binary ?? 'etcd', ...this.args()], {
        detached: true,
        stdio: ['pipe', logFd, logFd],
      });
    } finally {
      fs.closeSync(logFd);
    }
    this.child = child;
    const pid = child.pid;
    this.exited = new Promise<void>((resolve) => {
      const finished = (): void => {
        // Ends the watchdog subshell (it kills what is left of the group, i.e. itself).
        child.stdin?.destroy();
        if (pid !== undefined) unregisterLive(pid);
        if (this.child === child) this.child = undefined;
        resolve();
      };
      child.once('exit', finished);
      child.once('error', finished); // e.g. /bin/sh cannot be spawned: reported with the log tail
    });
    if (pid !== undefined) registerLive(pid);
    // Neither the etcd child nor its watchdog pipe keeps this Node process alive.
    child.unref();
    const stdin = child.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null;
    stdin?.unref?.();

    const timeoutMs = this.opts.startTimeoutMs ?? 30_000;
    const outcome = await waitHealthy(this.clientUrl, timeoutMs, this.exited, this.opts.tls);
    if (outcome === 'healthy') return;
    await this.kill();
    const tail = readLogTail(this.logFile, logOffset, 40);
    const why = outcome === 'exited' ? 'exited during start' : `not healthy after ${timeoutMs} ms`;
    throw new Error(`etcd ${this.name} (${this.clientUrl}) ${why}; log ${this.logFile}:\n${tail}`);
  }

  private args(): string[] {
    const o = this.opts;
    const args = [
      '--name', o.name,
      '--data-dir', o.dataDir,
      '--listen-client-urls', this.clientUrl,
      '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', this.peerUrl,
      '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', `${o.name}=${this.peerUrl}`,
      // Unique per bootstrap so that two local clusters can never be mistaken for one another.
      '--initial-cluster-token', `${o.name}-${randomBytes(6).toString('hex')}`,
      '--initial-cluster-state', 'new',
      '--logger', 'zap',
      '--log-outputs', 'stderr',
    ];
    if (o.unsafeNoFsync) args.push('--unsafe-no-fsync');
    if (o.tls) {
      args.push('--cert-file', o.tls.certFile, '--key-file', o.tls.keyFile, '--trusted-ca-file', o.tls.trustedCaFile, '--client-cert-auth');
    }
    return args.concat(o.extraArgs ?? []);
  }

  async stop(): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    this.child?.ref(); // keep the event loop alive until the exit is observed
    signalGroup(pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), STOP_GRACE_MS);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async kill(): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    this.child?.ref();
    signalGroup(pid, 'SIGKILL');
    await this.exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start(false);
  }
}

/** Signals a whole process group; a group that is already gone is not an error. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** Starts a single-node etcd cluster and resolves once it reports healthy. */
export async function startEtcd(opts: EtcdProcessOptions): Promise<EtcdProcess> {
  const host = opts.host ?? '127.0.0.1';
  const clientPort = opts.clientPort ?? (await freePort(host));
  const peerPort = opts.peerPort ?? (await freePort(host));
  const etcd = new LocalEtcd(opts, clientPort, peerPort);
  await etcd.start(opts.clientPort === undefined && opts.peerPort === undefined);
  return etcd;
}
