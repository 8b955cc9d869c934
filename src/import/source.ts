/**
 * The plain etcd an import reads from: its KV, Watch and Lease services through the proxy's own
 * upstream client (which never retries a write and fails over reads), plus LeaseLeases, which
 * the upstream client does not need elsewhere. TLS as etcdctl takes it (--cacert, --cert,
 * --key); an endpoint without a scheme is https:// when any of them is given.
 */
import * as grpc from '@grpc/grpc-js';
import { etcdService } from '../etcd/proto.js';
import type { UpstreamTls } from '../config/types.js';
import { channelCredentials, targetOf } from '../tls/channel.js';
import { Upstream } from '../shard/upstream.js';

export interface SourceOptions {
  endpoints: string[];
  tls: UpstreamTls;
  requestTimeoutMs: number;
}

/** `host:port` → a URL with the scheme etcdctl would use for it. */
export function sourceUrls(endpoints: string[], tls: UpstreamTls): string[] {
  const secure = tls.caFile !== '' || tls.certFile !== '';
  return endpoints.map((e) => (/^[a-z]+:\/\//.test(e) ? e : `${secure ? 'https' : 'http'}://${e}`));
}

interface LeaseLeasesAnswer {
  leases: Array<{ ID: string }>;
}

export class ImportSource {
  readonly upstream: Upstream;
  private readonly lease: grpc.Client;

  constructor(opts: SourceOptions) {
    const urls = sourceUrls(opts.endpoints, opts.tls);
    this.upstream = new Upstream({ name: 'source', endpoints: urls, requestTimeoutMs: opts.requestTimeoutMs, tls: opts.tls });
    const Lease = etcdService('Lease');
    this.lease = new Lease(targetOf(urls[0]), channelCredentials(urls[0], opts.tls), {}) as grpc.Client;
    this.timeoutMs = opts.requestTimeoutMs;
  }

  private readonly timeoutMs: number;

  /** Every lease the source holds now (IDs only). */
  leaseIds(): Promise<bigint[]> {
    const fn = (this.lease as unknown as Record<string, (req: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: LeaseLeasesAnswer) => void) => void>).LeaseLeases.bind(this.lease);
    return new Promise((resolve, reject) => {
      fn({}, new grpc.Metadata(), { deadline: new Date(Date.now() + this.timeoutMs) }, (err, res) => {
        if (err) reject(this.upstream.translate(err));
        else resolve(res.leases.map((l) => BigInt(l.ID)));
      });
    });
  }

  /** The source's cluster id and current revision. */
  async head(): Promise<{ clusterId: string; revision: bigint }> {
    const res = await this.upstream.range({ key: Buffer.from([0]), limit: '1', count_only: true });
    return { clusterId: String(res.header?.cluster_id ?? '0'), revision: BigInt(res.header?.revision ?? '0') };
  }

  close(): void {
    this.lease.close();
    this.upstream.close();
  }
}
