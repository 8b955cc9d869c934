/** The proxy's configuration, as loaded and validated by config/load.ts. */
import type { AuthConfig } from './auth-options.js';

/** How the proxy talks TLS to one upstream cluster's https:// endpoints (files are PEM). */
export interface UpstreamTls {
  /** CA bundle the cluster's server certificates must chain to; empty: the system's CAs. */
  caFile: string;
  /** Client certificate and key the proxy presents (for --client-cert-auth members); empty: none. */
  certFile: string;
  keyFile: string;
}

/** The proxy's own TLS for clients, with etcd's options (--cert-file, --key-file, ...). */
export interface ClientTls {
  certFile: string;
  keyFile: string;
  /** CA bundle for client certificates; empty: client certificates are not asked for. */
  trustedCaFile: string;
  /** Refuse clients without a certificate that chains to trustedCaFile. */
  clientCertAuth: boolean;
}

export interface ShardConfig {
  /** Stable name; recorded in the coordinator's partition map. */
  name: string;
  /** Client URLs of the member cluster, e.g. http://127.0.0.1:2579. */
  endpoints: string[];
  /** TLS for https:// endpoints (set when any TLS file is configured for this cluster). */
  tls?: UpstreamTls;
}

export interface ProxyConfig {
  /** Client gRPC listen address, host:port. */
  listen: string;
  /** URLs clients should use to reach this proxy (Cluster.MemberList). Defaults to http://<listen>. */
  advertiseClientUrls: string[];
  /** HTTP listener for /metrics, /health, /readyz and the JSON gateway; empty string disables it. */
  metrics: { listen: string };
  /** Client TLS (absent: plain text). The metrics listener serves TLS with it too. */
  clientTls?: ClientTls;
  coordinator: { endpoints: string[]; tls?: UpstreamTls };
  shards: ShardConfig[];
  /** Number of hash partitions (fixed once recorded in the coordinator). */
  partitions: number;
  /**
   * Routing: 0 hashes the whole key; N > 0 hashes the key up to and including its Nth '/'
   * (keys with fewer slashes hash whole), so related keys share a shard.
   */
  routingPrefixSegments: number;
  /** Prefix under which user keys are stored in every member (may be empty). */
  namespace: string;
  limits: {
    /** etcd's --max-txn-ops for clients (etcd default 128). */
    maxTxnOps: number;
    /** etcd's --max-request-bytes for clients (etcd default 1.5 MiB). */
    maxRequestBytes: number;
    /**
     * One budget (bytes) for responses in flight, watch events queued for clients and events
     * held for a shard that is down (src/budget/). Past it, big reads wait their turn or get
     * "etcdserver: too many requests", slow watchers are resynced, held events are dropped and
     * re-read from the members.
     */
    memoryBudgetBytes: number;
  };
  /**
   * The member clusters' own --max-txn-ops and --max-request-bytes. Writes to one shard are
   * batched into one member txn within these limits (etcd's defaults: 128 ops, 1.5 MiB).
   */
  memberLimits: {
    maxTxnOps: number;
    maxRequestBytes: number;
  };
  timeouts: {
    /** Deadline for one upstream call to a member or the coordinator. */
    requestMs: number;
    /** Deadline for the first connection to an upstream cluster at start. */
    dialMs: number;
  };
  watch: {
    /** Recent events kept in memory for watches that start in the past (older ones are read from the members). */
    historyEvents: number;
    /** Bytes of recent events kept (keys, values, previous values): the history's memory bound. */
    historyBytes: number;
    /** Events queued for one watcher whose client does not read before it is resynced from history. */
    maxPendingEvents: number;
    /** How long events held back by idle shards wait for them to move before fencing them (ms). */
    fenceDelayMs: number;
    /** Interval of progress notifications for watchers created with progress_notify. */
    progressNotifyIntervalMs: number;
  };
  /** The per-shard read caches (src/cache/). */
  cache: {
    /** Serve reads from memory; false sends every read to the members. */
    enabled: boolean;
    /** How long a linearizable read waits for the merged stream before it reads the members (ms). */
    waitMs: number;
    /** Past states kept for paginated lists and reads at recent revisions. */
    snapshots: number;
    /** A kept past state unused this long is dropped (ms). */
    snapshotIdleMs: number;
    /** Reads further back than this many events (of the watch history) go to the members. */
    maxUndoEvents: number;
    /** Keys per member read while a cache loads. */
    loadPageKeys: number;
  };
  /** One writer per shard (src/ownership/). */
  ownership: {
    /** TTL of the ownership lease: how soon another replica takes over from a dead owner (s). */
    ttlSec: number;
    /** How often each replica reads the owner records (ms). */
    pollMs: number;
    /** Where other replicas forward writes to this one; empty: the first advertised client URL. */
    peerUrl: string;
  };
  /** etcd's Auth options (src/auth/); absent: etcd's defaults (config/auth-options.ts). */
  auth?: AuthConfig;
  log: { level: string };
}
