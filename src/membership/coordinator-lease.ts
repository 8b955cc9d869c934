/**
 * A minimal client for the coordinator's own Lease service, for the proxy's internal leases
 * (replica registration). These are not client-visible meta leases: they never leave the
 * coordinator and carry only system keys.
 */
import * as grpc from '@grpc/grpc-js';
import { typedClient, type ClientOf } from '../etcd/services.js';
import type { UpstreamTls } from '../config/types.js';
import type { LeaseGrantResponse, LeaseRevokeResponse } from '../etcd/types.js';
import { channelCredentials, targetOf } from '../tls/channel.js';

/** One unary call on a client: the method with its request, given metadata, options and callback. */
type UnaryCall<T> = (client: ClientOf<'Lease'>, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: T) => void) => void;

interface KeepAliveReply {
  ID: string;
  TTL: string;
}

export interface GrantedLease {
  id: bigint;
  ttlSeconds: number;
}

export class CoordinatorLeases {
  private readonly clients: Array<ClientOf<'Lease'>>;
  private preferred = 0;

  constructor(
    endpoints: string[],
    private readonly timeoutMs: number,
    tls?: UpstreamTls,
  ) {
    const Lease = typedClient('Lease');
    let secure: grpc.ChannelCredentials | undefined;
    this.clients = endpoints.map((url) => {
      const creds = url.startsWith('https://') ? (secure ??= channelCredentials(url, tls)) : grpc.credentials.createInsecure();
      return new Lease(targetOf(url), creds, { 'grpc.enable_retries': 0 });
    });
  }

  async grant(ttlSeconds: number): Promise<GrantedLease> {
    const res = await this.unary<LeaseGrantResponse>((c, md, o, cb) => c.LeaseGrant({ TTL: String(ttlSeconds), ID: '0' }, md, o, cb));
    if (res.error) throw new Error(`coordinator lease grant: ${res.error}`);
    return { id: BigInt(res.ID), ttlSeconds: Number(res.TTL) };
  }

  async revoke(id: bigint): Promise<void> {
    await this.unary<LeaseRevokeResponse>((c, md, o, cb) => c.LeaseRevoke({ ID: id.toString() }, md, o, cb));
  }

  /**
   * One keepalive round trip on a short-lived stream: the remaining TTL in seconds, 0 when the
   * lease no longer exists (expired, revoked, or a coordinator that lost its data).
   */
  async keepAliveOnce(id: bigint): Promise<number> {
    return this.withFailover((client) => {
      const call = client.LeaseKeepAlive(new grpc.Metadata(), { deadline: new Date(Date.now() + this.timeoutMs) });
      return new Promise<number>((resolve, reject) => {
        let done = false;
        const finish = (fn: () => void) => {
          if (done) return;
          done = true;
          call.cancel();
          fn();
        };
        call.on('data', (r: KeepAliveReply) => finish(() => resolve(Number(r.TTL))));
        call.on('error', (err) => finish(() => reject(err)));
        call.on('end', () => finish(() => reject(new Error('coordinator closed the keepalive stream'))));
        call.write({ ID: id.toString() });
      });
    });
  }

  close(): void {
    for (const c of this.clients) c.close();
  }

  private unary<T>(call: UnaryCall<T>): Promise<T> {
    return this.withFailover(
      (client) =>
        new Promise<T>((resolve, reject) => {
          call(client, new grpc.Metadata(), { deadline: new Date(Date.now() + this.timeoutMs) }, (err, res) => (err ? reject(err) : resolve(res)));
        }),
    );
  }

  /** Tries each endpoint once, starting with the one that answered last, while they are unreachable. */
  private async withFailover<T>(fn: (client: ClientOf<'Lease'>) => Promise<T>): Promise<T> {
    let lastErr: unknown;
    for (let i = 0; i < this.clients.length; i++) {
      const idx = (this.preferred + i) % this.clients.length;
      try {
        const res = await fn(this.clients[idx]);
        this.preferred = idx;
        return res;
      } catch (err) {
        lastErr = err;
        const code = (err as { code?: number }).code;
        if (code !== grpc.status.UNAVAILABLE && code !== grpc.status.DEADLINE_EXCEEDED) throw err;
      }
    }
    throw lastErr;
  }
}
