/**
 * A gRPC client for one upstream etcd cluster (a member shard or the coordinator), talking
 * to it with grpc-js directly: unlike the etcd3 client, it never retries a write on its own,
 * so a fenced member txn is sent exactly once.
 */
import * as grpc from '@grpc/grpc-js';
import { typedClient, type ClientOf } from '../etcd/services.js';
import { EtcdError, Errors, fromWire, isGrpcError } from '../etcd/errors.js';
import type {
  AlarmRequest,
  AlarmResponse,
  CompactionRequest,
  CompactionResponse,
  DefragmentResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponse,
  RangeRequest,
  RangeResponse,
  StatusResponse,
  TxnRequest,
  TxnResponse,
} from '../etcd/types.js';
import { upstreamDuration, upstreamRequests } from '../metrics/registry.js';
import type { HistogramSeries } from '../metrics/fast-histogram.js';
import { tally, type Tally } from '../metrics/tally.js';
import { withoutCallerStack } from './caller-stack.js';
import { KeepAliveStream } from './keepalive-stream.js';
import type { UpstreamTls } from '../config/types.js';
import { channelCredentials, targetOf } from '../tls/channel.js';

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

interface Endpoint {
  target: string;
  kv: ClientOf<'KV'>;
  maintenance: ClientOf<'Maintenance'>;
  watch: ClientOf<'Watch'>;
  lease: ClientOf<'Lease'>;
}

type Service = 'kv' | 'maintenance' | 'lease';

interface CallMetrics {
  count: Tally;
  duration: HistogramSeries;
}

export interface UpstreamOptions {
  /** A name for logs, metrics and errors: a shard name or "coordinator". */
  name: string;
  endpoints: string[];
  requestTimeoutMs: number;
  /** TLS for https:// endpoints (CA, client certificate); http:// endpoints are plain text. */
  tls?: UpstreamTls;
}

export class Upstream {
  readonly name: string;
  private readonly endpoints: Endpoint[];
  private preferred = 0;
  private watchTurn = 0;
  private keepAlives: KeepAliveStream | null = null;
  private readonly callMetrics = new Map<string, CallMetrics>();
  /** When a unary call last got an answer (Date.now()), 0 before the first. */
  private answeredAt = 0;

  constructor(private readonly opts: UpstreamOptions) {
    this.name = opts.name;
    const KV = typedClient('KV');
    const Maintenance = typedClient('Maintenance');
    const Watch = typedClient('Watch');
    const Lease = typedClient('Lease');
    const channelOpts: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2_000,
      // The proxy decides itself what may be retried (never a write); grpc-js's transparent
      // retry machinery would also buffer every request message.
      'grpc.enable_retries': 0,
      // channelz bookkeeping costs CPU on every call; the proxy exports its own metrics.
      'grpc.enable_channelz': 0,
    };
    // One TLS credentials object for the cluster: its endpoints share the certificate watchers.
    let secure: grpc.ChannelCredentials | undefined;
    this.endpoints = opts.endpoints.map((url) => {
      const target = targetOf(url);
      const creds = url.startsWith('https://') ? (secure ??= channelCredentials(url, opts.tls)) : grpc.credentials.createInsecure();
      const kv = new KV(target, creds, channelOpts);
      // Share the channel between services of one endpoint.
      const maintenance = new Maintenance(target, creds, { ...channelOpts, channelOverride: kv.getChannel() });
      const watch = new Watch(target, creds, { ...channelOpts, channelOverride: kv.getChannel() });
      const lease = new Lease(target, creds, { ...channelOpts, channelOverride: kv.getChannel() });
      return { target, kv, maintenance, watch, lease };
    });
  }

  range(req: Partial<RangeRequest>): Promise<RangeResponse> {
    return this.call<RangeResponse>('kv', 'Range', req, true);
  }

  /** Reads (read-only txns) may fail over to another endpoint; writes never retry. */
  txn(req: Partial<TxnRequest> | object, readOnly: boolean): Promise<TxnResponse> {
    return this.call<TxnResponse>('kv', 'Txn', req, readOnly);
  }

  compact(req: Partial<CompactionRequest>): Promise<CompactionResponse> {
    return this.call<CompactionResponse>('kv', 'Compact', req, false);
  }

  status(): Promise<StatusResponse> {
    return this.call<StatusResponse>('maintenance', 'Status', {}, true);
  }

  /**
   * Resolves once the cluster is known to answer: at once when a call got an answer within the
   * last `ms`, else after a Status call. A busy cluster is not asked again just to learn that it
   * is there (each call costs a member CPU that a write could use).
   */
  async answers(ms: number): Promise<void> {
    if (this.answeredWithin(ms)) return;
    await this.status();
  }

  /**
   * A unary call got an answer within the last `ms`, and the connection it came on is still up
   * (a cluster that was killed drops it at once; one that hangs shows only in the time).
   */
  answeredWithin(ms: number): boolean {
    if (Date.now() - this.answeredAt >= ms) return false;
    return this.endpoints[this.preferred].kv.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
  }

  /**
   * Opens a Watch stream on one endpoint, rotating through them on each call (a stream that
   * failed is reopened by the caller, so the next endpoint gets a turn). "hasleader" makes the
   * member end the stream when it loses its leader, instead of going silent.
   */
  openWatch(): { stream: grpc.ClientDuplexStream<object, unknown>; endpoint: string } {
    const ep = this.endpoints[this.watchTurn++ % this.endpoints.length];
    const md = new grpc.Metadata();
    md.set('hasleader', 'true');
    return { stream: ep.watch.Watch(md), endpoint: ep.target };
  }

  /** host:port of each configured endpoint, in configured order. */
  get targets(): string[] {
    return this.endpoints.map((e) => e.target);
  }

  /**
   * Defragments the one member behind endpoint `i` (etcd defragments the member it is asked,
   * not the cluster). It can take long on a large database, hence its own deadline.
   */
  defragment(i: number, timeoutMs: number): Promise<DefragmentResponse> {
    return this.callOnce<DefragmentResponse>(this.endpoints[i], 'maintenance', 'Defragment', {}, timeoutMs);
  }

  /** Alarms are cluster state (replicated by raft): any endpoint answers, and repeating one is harmless. */
  alarm(req: AlarmRequest): Promise<AlarmResponse> {
    return this.call<AlarmResponse>('maintenance', 'Alarm', req, true);
  }

  /** Coordinator leases. A grant is never retried (a lost answer to ID 0 would grant twice). */
  leaseGrant(req: Partial<LeaseGrantRequest>): Promise<LeaseGrantResponse> {
    return this.call<LeaseGrantResponse>('lease', 'LeaseGrant', req, false);
  }

  leaseRevoke(id: bigint): Promise<LeaseRevokeResponse> {
    return this.call<LeaseRevokeResponse>('lease', 'LeaseRevoke', { ID: id.toString() }, false);
  }

  leaseTimeToLive(req: Partial<LeaseTimeToLiveRequest>): Promise<LeaseTimeToLiveResponse> {
    return this.call<LeaseTimeToLiveResponse>('lease', 'LeaseTimeToLive', req, true);
  }

  /**
   * One keepalive over this proxy's one keepalive stream to the cluster (opened on first use,
   * reopened after a failure): TTL 0 when the lease does not exist, as etcd answers.
   */
  leaseKeepAlive(id: bigint): Promise<LeaseKeepAliveResponse> {
    if (!this.keepAlives || this.keepAlives.closed) {
      // After a failed stream, try the next endpoint.
      if (this.keepAlives?.failed) this.preferred = (this.preferred + 1) % this.endpoints.length;
      const ep = this.endpoints[this.preferred];
      this.keepAlives = new KeepAliveStream(ep.lease, this.name, this.opts.requestTimeoutMs, (err) => this.translate(err));
    }
    return this.keepAlives.renew(id);
  }

  close(): void {
    this.keepAlives?.close();
    for (const e of this.endpoints) e.kv.close();
  }

  private async call<T>(svc: Service, method: string, req: object, idempotent: boolean): Promise<T> {
    const n = this.endpoints.length;
    let lastErr: unknown;
    for (let attempt = 0; attempt < (idempotent ? n : 1); attempt++) {
      const idx = (this.preferred + attempt) % n;
      try {
        const res = await this.callOnce<T>(this.endpoints[idx], svc, method, req);
        this.preferred = idx;
        return res;
      } catch (err) {
        lastErr = err;
        if (!(err instanceof EtcdError) || err.code !== grpc.status.UNAVAILABLE) throw err;
      }
    }
    throw lastErr;
  }

  private callOnce<T>(ep: Endpoint, svc: Service, method: string, req: object, timeoutMs = this.opts.requestTimeoutMs): Promise<T> {
    const client = ep[svc];
    // `method` names one unary method of `svc` (callers pass literals); its client type has no string index.
    const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
    const started = process.hrtime.bigint();
    return new Promise<T>((resolve, reject) => {
      const deadline = new Date(Date.now() + timeoutMs);
      withoutCallerStack(() => fn(req, new grpc.Metadata(), { deadline }, (err, res) => {
        const m = this.metricsOf(method, err ? grpc.status[err.code] ?? String(err.code) : 'OK');
        m.count.inc();
        m.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
        if (err) reject(this.translate(err));
        else {
          this.answeredAt = Date.now();
          resolve(res as T);
        }
      }));
    });
  }

  /** The call metrics of one method and result code, looked up once (metrics/tally.ts). */
  private metricsOf(method: string, code: string): CallMetrics {
    const key = `${method} ${code}`;
    let m = this.callMetrics.get(key);
    if (!m) {
      m = { count: tally(upstreamRequests, { cluster: this.name, method, code }), duration: upstreamDuration.labels({ cluster: this.name, method }) };
      this.callMetrics.set(key, m);
    }
    return m;
  }

  /** etcd's own errors pass through unchanged; transport failures become UNAVAILABLE naming the cluster. */
  translate(err: unknown): Error {
    if (!isGrpcError(err)) return err instanceof Error ? err : new Error(String(err));
    const details = err.details ?? err.message ?? '';
    if (details.startsWith('etcdserver:')) return fromWire(err.code ?? grpc.status.UNKNOWN, details);
    if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
      return Errors.unavailable(this.name === 'coordinator' ? 'coordinator' : `shard ${this.name}`, details);
    }
    return new EtcdError(err.code ?? grpc.status.UNKNOWN, details);
  }
}
