import fs from 'node:fs';
import path from 'node:path';
import { startEtcd, type EtcdProcess, type EtcdTls } from './etcd-process.js';
import { canBind, freePort, reservePort } from './ports.js';

export interface LocalMetaClusterOptions {
  /** Parent directory: one sub-directory per member plus ports.json. Reused if present. */
  dataDir: string;
  /** Number of member clusters, named s1..sN. */
  shards: number;
  unsafeNoFsync?: boolean;
  host?: string;
  /** etcd executable (default `etcd` from PATH). */
  binary?: string;
  /** Every member serves https:// with client certificate auth (etcd-process.ts). */
  tls?: EtcdTls;
}

export interface LocalMetaCluster {
  coordinator: EtcdProcess;
  shards: EtcdProcess[];
  stop(): Promise<void>;
}

/**
 * Flags for every member and the coordinator. The proxy enforces etcd's client limits itself
 * and adds a few ops and bytes (clock put, pins, envelopes) per request, so members accept more
 * than etcd's defaults. Compaction is the proxy's job (it maps meta revisions to member ones),
 * so etcd must not compact on its own.
 */
export const LOCAL_MEMBER_LIMITS = { maxTxnOps: 1024, maxRequestBytes: 4 * 1024 * 1024 } as const;

export const MEMBER_ARGS: readonly string[] = [
  '--max-txn-ops', String(LOCAL_MEMBER_LIMITS.maxTxnOps),
  '--max-request-bytes', String(LOCAL_MEMBER_LIMITS.maxRequestBytes),
  '--auto-compaction-retention', '0',
  // Room for long benchmark runs without compaction; well below etcd's 8 GiB guidance.
  '--quota-backend-bytes', String(4 * 1024 * 1024 * 1024),
];

interface MemberPorts {
  client: number;
  peer: number;
}
type PortsFile = Record<string, MemberPorts>;

/** Starts the coordinator and N shard etcds in parallel. */
export async function startLocalMetaCluster(opts: LocalMetaClusterOptions): Promise<LocalMetaCluster> {
  if (!Number.isInteger(opts.shards) || opts.shards < 1) {
    throw new Error(`startLocalMetaCluster: shards must be a positive integer, got ${opts.shards}`);
  }
  const host = opts.host ?? '127.0.0.1';
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const portsPath = path.join(opts.dataDir, 'ports.json');
  const previous = readPortsFile(portsPath);
  const names = ['coordinator', ...Array.from({ length: opts.shards }, (_, i) => `s${i + 1}`)];

  const settled = await Promise.allSettled(
    names.map(async (name) => {
      // A restarted member keeps its ports (its peer URL is recorded in its data) when it can.
      const ports = await portsFor(previous[name], host);
      return startEtcd({
        name,
        host,
        dataDir: path.join(opts.dataDir, name),
        logFile: path.join(opts.dataDir, `${name}.log`),
        clientPort: ports.client,
        peerPort: ports.peer,
        unsafeNoFsync: opts.unsafeNoFsync,
        binary: opts.binary,
        extraArgs: [...MEMBER_ARGS],
        tls: opts.tls,
      });
    }),
  );

  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failures = settled.flatMap((s) => (s.status === 'rejected' ? [String((s.reason as Error)?.message ?? s.reason)] : []));
  if (failures.length > 0) {
    await Promise.allSettled(started.map((e) => e.stop()));
    throw new Error(`local meta-cluster failed to start:\n${failures.join('\n')}`);
  }

  const recorded: PortsFile = {};
  for (const e of started) recorded[e.name] = { client: urlPort(e.clientUrl), peer: urlPort(e.peerUrl) };
  fs.writeFileSync(portsPath, `${JSON.stringify(recorded, null, 2)}\n`);

  const [coordinator, ...shards] = started;
  return {
    coordinator,
    shards,
    async stop() {
      await Promise.allSettled(started.map((e) => e.stop()));
    },
  };
}

async function portsFor(prev: MemberPorts | undefined, host: string): Promise<MemberPorts> {
  if (prev && prev.client !== prev.peer && (await canBind(prev.client, host)) && (await canBind(prev.peer, host))) {
    reservePort(prev.client);
    reservePort(prev.peer);
    return prev;
  }
  return { client: await freePort(host), peer: await freePort(host) };
}

function readPortsFile(file: string): PortsFile {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    const out: PortsFile = {};
    if (typeof parsed !== 'object' || parsed === null) return out;
    for (const [name, value] of Object.entries(parsed)) {
      const v = value as Partial<MemberPorts> | null;
      if (v && isPort(v.client) && isPort(v.peer)) out[name] = { client: v.client, peer: v.peer };
    }
    return out;
  } catch {
    return {}; // missing or corrupt: pick fresh ports
  }
}

function isPort(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x > 0 && x < 65536;
}

function urlPort(url: string): number {
  return Number(new URL(url).port);
}
