import type { Logger } from 'pino';
import type { UpstreamProbe } from '../http/health.js';
import type { ReaperOptions } from '../lease/reaper.js';
import type { Gateway } from '../gateway/gateway.js';

/** A running proxy: what the CLI, e2e tests and benchmarks hold. */
export interface RunningProxy {
  /** host:port the client gRPC server is bound to (the real port when 0 was asked). */
  readonly address: string;
  /** etcd's HTTP/JSON gateway over this proxy's services (served on the metrics listener). */
  readonly gateway: Gateway;
  /** Resolves true when the coordinator and every shard answer. */
  healthy(): Promise<boolean>;
  /** Asks the coordinator, or every shard, whether it answers (for /health and /readyz). */
  probeUpstreams(which: 'coordinator' | 'shards'): Promise<UpstreamProbe[]>;
  /** True once the partition map is loaded and the server accepts requests. */
  ready(): boolean;
  /** Why reads are not served from memory yet (caches loading), or null (loaded, or caches off). */
  cacheNotReady(): string | null;
  /** Stop accepting, finish in-flight calls, close upstream connections. */
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Lease expiry timings (tests shorten them); lease/reaper.ts has the defaults. */
  reaper?: ReaperOptions;
}
