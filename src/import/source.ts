/**
 * The plain etcd an import reads from: its KV, Watch and Lease services through the proxy's own
 * upstream client (which never retries a write and fails over reads), plus LeaseLeases, which
 * the upstream client does not need elsewhere. TLS as etcdctl takes it (--cacert, --cert,
 * --key); an endpoint without a scheme is https:// when any of them is given.
 */
import * as grpc from '@grpc/grpc-js';
import { typedClient, type ClientOf } from '../etcd/services.js';
import type { UpstreamTls } from '../config/types.js';
import { channelCredentials, targetOf } from '../tls/channel.js';
import { Upstream } from '../upstream/upstream.js';

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

export class ImportSource {
  readonly upstream: Upstream;
  /** One Lease client per endpoint (LeaseLeases fails over like the upstream's reads). */
  private readonly leaseClients: Array<ClientOf<'Lease'>>;
  private readonly timeoutMs: number;

  constructor(opts: SourceOptions) {
    const urls = sourceUrls(opts.endpoints, opts.tls);
    this.upstream = new Upstream({ name: 'source', endpoints: urls, requestTimeoutMs: opts.requestTimeoutMs, tls: opts.tls });
    const Lease = typedClient('Lease');
    const creds = channelCredentials(urls[0], opts.tls);
    this.leaseClients = urls.map((u) => new Lease(targetOf(u), u.startsWith('https://') ? creds : grpc.credentials.createInsecure(), {}));
    this.timeoutMs = opts.requestTimeoutMs;
  }

  /** Every lease the source holds now (IDs only). */
  async leaseIds(): Promise<bigint[]> {
    let last: unknown;
    for (const client of this.leaseClients) {
      try {
        return await this.leaseLeases(client);
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  private leaseLeases(client: ClientOf<'Lease'>): Promise<bigint[]> {
    return new Promise((resolve, reject) => {
      client.LeaseLeases({}, new grpc.Metadata(), { deadline: new Date(Date.now() + this.timeoutMs) }, (err, res) => {
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
    for (const c of this.leaseClients) c.close();
    this.upstream.close();
  }
}
