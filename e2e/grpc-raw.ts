/**
 * A raw @grpc/grpc-js client for etcd's v3 API, loaded from proto/rpc.proto.
 *
 * The etcd3 npm client strips gRPC status codes and retries UNAVAILABLE, so assertions on exact
 * error codes and messages go through this client instead. Messages use proto-loader's
 * `{keepCase, longs: String, enums: Number, defaults, oneofs}` shape: int64 fields are decimal
 * strings, bytes fields are Buffers, every field is present (defaults filled in).
 */
import * as grpc from '@grpc/grpc-js';
import { etcdGrpcObject } from '../src/etcd/proto.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Msg = any;

/** The proxy's own loading of proto/ (src/etcd/proto.ts): the same message shape. */
const pkg = etcdGrpcObject;

/** Outcome of one unary call: either the response or the gRPC error (code + details). */
export type CallResult<T = Msg> = { ok: true; res: T } | { ok: false; code: number; details: string };

/** A gRPC error surfaced as an exception by `RawClient.call*OrThrow`. */
export class RawCallError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`${method}: gRPC ${grpc.status[code] ?? code}: ${details}`);
  }
}

export interface RawCallOptions {
  /** Per-call deadline in ms (default 10 s). */
  deadlineMs?: number;
  /** Sent as the `token` metadata, as etcd clients send their auth token. */
  token?: string;
}

type Service = 'KV' | 'Lease' | 'Cluster' | 'Maintenance' | 'Watch' | 'Auth';

/**
 * Clients for every service on one endpoint (host:port, no scheme). One channel is shared by all
 * services; `close()` closes it.
 */
export class RawClient {
  readonly address: string;
  private readonly clients: Record<Service, grpc.Client>;

  constructor(address: string, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure()) {
    this.address = address.replace(/^https?:\/\//, '');
    const p = pkg().etcdserverpb as grpc.GrpcObject;
    const options: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    };
    const kv = new (p.KV as grpc.ServiceClientConstructor)(this.address, creds, options);
    const channelOverride = kv.getChannel();
    const make = (name: Service) =>
      new (p[name] as grpc.ServiceClientConstructor)(this.address, creds, { ...options, channelOverride });
    this.clients = {
      KV: kv,
      Lease: make('Lease'),
      Cluster: make('Cluster'),
      Maintenance: make('Maintenance'),
      Watch: make('Watch'),
      Auth: make('Auth'),
    };
  }

  /** Unary call; never throws for gRPC errors. */
  call<T = Msg>(service: Service, method: string, req: Msg, opts: RawCallOptions = {}): Promise<CallResult<T>> {
    const client = this.clients[service] as unknown as Record<string, Function>;
    const fn = client[method];
    if (typeof fn !== 'function') throw new Error(`no method ${service}.${method}`);
    const deadline = new Date(Date.now() + (opts.deadlineMs ?? 10_000));
    return new Promise((resolve) => {
      const md = new grpc.Metadata();
      if (opts.token !== undefined) md.set('token', opts.token);
      fn.call(client, req, md, { deadline }, (err: grpc.ServiceError | null, res: T) => {
        if (err) resolve({ ok: false, code: err.code, details: err.details });
        else resolve({ ok: true, res });
      });
    });
  }

  /** Unary call; throws RawCallError on a gRPC error. */
  async callOrThrow<T = Msg>(service: Service, method: string, req: Msg, opts: RawCallOptions = {}): Promise<T> {
    const r = await this.call<T>(service, method, req, opts);
    if (!r.ok) throw new RawCallError(`${service}.${method}`, r.code, r.details);
    return r.res;
  }

  kv(method: 'Range' | 'Put' | 'DeleteRange' | 'Txn' | 'Compact', req: Msg, opts?: RawCallOptions) {
    return this.call('KV', method, req, opts);
  }

  /** The underlying service client (e.g. for streaming Watch calls). */
  service(name: Service): grpc.Client {
    return this.clients[name];
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

export const Code = grpc.status;

/** Byte helpers: requests take Buffers (or strings) for bytes fields. */
export const b = (s: string | Buffer): Buffer => (Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'));

/** The key just past every key with this prefix (etcd's prefix range_end). */
export function prefixEnd(prefix: string | Buffer): Buffer {
  const buf = Buffer.from(b(prefix));
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      buf[i]!++;
      return buf.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * Unary calls with the request as raw bytes (passthrough serializers), e.g. malformed
 * protobuf, over one channel; answers' bytes are returned undecoded.
 */
export class RawBytesClient {
  private readonly client: grpc.Client;

  constructor(address: string, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure()) {
    this.client = new grpc.Client(address.replace(/^https?:\/\//, ''), creds, { 'grpc.max_send_message_length': -1 });
  }

  call(methodPath: string, bytes: Buffer, deadlineMs = 10_000): Promise<CallResult<Buffer>> {
    const id = (b: Buffer): Buffer => b;
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(methodPath, id, id, bytes, { deadline: new Date(Date.now() + deadlineMs) }, (err, res) => {
        if (err) resolve({ ok: false, code: err.code, details: err.details });
        else resolve({ ok: true, res: res ?? Buffer.alloc(0) });
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
