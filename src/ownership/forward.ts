/**
 * Forwarding to a shard's owner (owners.ts) and the owner's internal service
 * `etcdmetaproxy.Peer`, served on its client port. The replica that received a client write
 * for a shard it does not own sends the client's txn, as is, to the owner, which plans and
 * applies it on its exact state and answers the outcome: over one stream per owner
 * (`ShardTxns`, forward-stream.ts and forward-serve.ts), many writes per message. Errors come
 * back as the owner would have answered the client (code and etcd's message).
 *
 * `Reap` (a dead lease's keys on one shard, lease/reap.ts), `Settle` (the owner's word for a
 * watermark, watch/fencer.ts) and `Current` (how far a revision block was handed out,
 * clock/block.ts) are unary calls, JSON both ways, int64 as decimal strings.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { EtcdError, isGrpcError } from '../etcd/errors.js';
import type { TxnRequest } from '../etcd/types.js';
import type { ForwardedReap } from '../kv/store.js';
import type { TxnOutcome } from '../kv/txn-outcome.js';
import type { UpstreamTls } from '../config/types.js';
import { forwardedWrites } from '../metrics/registry.js';
import { tally, type Tally } from '../metrics/tally.js';
import { withoutCallerStack } from '../upstream/caller-stack.js';
import { channelCredentials } from '../tls/channel.js';
import { PEER_SECRET_HEADER } from './peer-secret.js';
import { OwnerUnreachableError } from '../shard/routing-errors.js';
import { ForwardStream, FORWARD_PATH, ownerError } from './forward-stream.js';
import { ForwardStreams } from './forward-serve.js';

export { OwnerUnreachableError };
import type { PeerSecret } from './peer-secret.js';
import type { FeedRelay } from '../watch/relay.js';
import type { EventSource } from '../watch/feed.js';
import { RELAY_PATH, RELAY_SHARD_HEADER, relayHandler, relayMethod } from './watch-relay.js';

const SERVICE = 'etcdmetaproxy.Peer';
const REAP_PATH = `/${SERVICE}/Reap`;
const SETTLE_PATH = `/${SERVICE}/Settle`;
const CURRENT_PATH = `/${SERVICE}/Current`;

const identity = (b: Buffer) => b;

const method = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({
  path,
  requestStream: false,
  responseStream: false,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});

const definition: grpc.ServiceDefinition = {
  ShardTxns: { ...method(FORWARD_PATH), requestStream: true, responseStream: true },
  Reap: method(REAP_PATH),
  Settle: method(SETTLE_PATH),
  Current: method(CURRENT_PATH),
  RelayWatch: relayMethod,
};

interface ReapWire {
  shard: string;
  id: string;
  rev: string;
  live: string | null;
}

export interface PeerHandlers {
  /** Runs a forwarded txn on this replica (which routes it again: it may have lost the shard). */
  txn(shard: string, txn: TxnRequest, hops: number): Promise<TxnOutcome>;
  /** Reaps a dead lease on a shard this replica owns. */
  reap(shard: string, lease: ForwardedReap): Promise<{ deleted: number; rev: bigint }>;
  /** The member revision by which every write at or below `target` landed (null: not the owner). */
  settle(shard: string, target: bigint): Promise<bigint | null>;
  /** The highest revision handed out from the revision block ending at `end` or later (null: none held). */
  current(end: bigint): bigint | null;
  /** The relay of this replica's member watch of a shard (null: none), for RelayWatch. */
  relay(shard: string): FeedRelay | null;
}

/** Serves `etcdmetaproxy.Peer`; drain the returned streams before the server shuts down. */
export function addPeerService(server: grpc.Server, handlers: PeerHandlers, secret: PeerSecret, log: Logger): ForwardStreams {
  const forwarded = new ForwardStreams((shard, txn, hops) => handlers.txn(shard, txn, hops), secret, log);
  const serve =
    <T>(what: string, decode: (b: Buffer) => T, run: (req: T) => Promise<Buffer>) =>
    (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      let req: T;
      try {
        req = decode(call.request);
      } catch (err) {
        return callback({ code: grpc.status.INVALID_ARGUMENT, details: `etcd-metaproxy: malformed forwarded ${what}: ${(err as Error).message}` });
      }
      const presented = call.metadata.get(PEER_SECRET_HEADER)[0];
      secret
        .accepts(typeof presented === 'string' ? presented : undefined)
        .then((ok) => {
          if (!ok) throw new EtcdError(grpc.status.PERMISSION_DENIED, 'etcd-metaproxy: only proxy replicas may call etcdmetaproxy.Peer');
          return run(req);
        })
        .then(
        (out) => callback(null, out),
        (err: unknown) => {
          if (err instanceof EtcdError) return callback({ code: err.code, details: err.message });
          log.error({ err }, `unexpected error serving a forwarded ${what}`);
          callback({ code: grpc.status.UNKNOWN, details: err instanceof Error ? err.message : String(err) });
        },
      );
    };
  server.addService(definition, {
    ShardTxns: forwarded.handler,
    Reap: serve(
      'reap',
      (buf) => JSON.parse(buf.toString()) as ReapWire,
      async (r) => {
        const out = await handlers.reap(r.shard, { id: BigInt(r.id), rev: BigInt(r.rev), live: r.live === null ? null : BigInt(r.live) });
        return Buffer.from(JSON.stringify({ deleted: out.deleted, rev: out.rev.toString() }));
      },
    ),
    Settle: serve(
      'settle',
      (buf) => JSON.parse(buf.toString()) as { shard: string; target: string },
      async (r) => {
        const m = await handlers.settle(r.shard, BigInt(r.target));
        return Buffer.from(JSON.stringify({ memberRev: m === null ? null : m.toString() }));
      },
    ),
    Current: serve(
      'current',
      (buf) => JSON.parse(buf.toString()) as { end: string },
      async (r) => {
        const h = handlers.current(BigInt(r.end));
        return Buffer.from(JSON.stringify({ issued: h === null ? null : h.toString() }));
      },
    ),
    RelayWatch: relayHandler((s) => handlers.relay(s), secret, log),
  });
  return forwarded;
}

const PeerClient = grpc.makeGenericClientConstructor(definition, SERVICE);

/** Channels to the other replicas, one per URL. */
export class Peers {
  private readonly clients = new Map<string, grpc.Client>();
  private readonly streams = new Map<string, ForwardStream>();
  /** Per shard: its forwarded writes answered OK (metrics/tally.ts). */
  private readonly forwardedOk = new Map<string, Tally>();

  constructor(
    private readonly timeoutMs: number,
    private readonly secret: PeerSecret,
    /** For https:// peers: the CA their certificates chain to, and the certificate to present. */
    private readonly tls?: UpstreamTls,
  ) {}

  /** Sends a client txn for `shard` to its owner at `url`; errors come back as the owner's. */
  async forward(url: string, shard: string, txn: TxnRequest, hops: number): Promise<TxnOutcome> {
    let stream = this.streams.get(url);
    if (!stream) this.streams.set(url, (stream = new ForwardStream(this.client(url), url, this.secret, this.timeoutMs)));
    try {
      const out = await stream.send(shard, txn, hops);
      let ok = this.forwardedOk.get(shard);
      if (!ok) this.forwardedOk.set(shard, (ok = tally(forwardedWrites, { shard, code: 'OK' })));
      ok.inc();
      return out;
    } catch (err) {
      forwardedWrites.inc({ shard, code: isGrpcError(err) ? (grpc.status[err.code as grpc.status] ?? String(err.code)) : 'UNKNOWN' });
      throw err;
    }
  }

  /** Asks the owner at `url` to reap a dead lease's keys on `shard`. */
  async reap(url: string, shard: string, lease: ForwardedReap): Promise<{ deleted: number; rev: bigint }> {
    const wire: ReapWire = { shard, id: lease.id.toString(), rev: lease.rev.toString(), live: lease.live === null ? null : lease.live.toString() };
    const res = await this.call(url, REAP_PATH, Buffer.from(JSON.stringify(wire)));
    const out = JSON.parse(res.toString()) as { deleted: number; rev: string };
    return { deleted: out.deleted, rev: BigInt(out.rev) };
  }

  /** Asks the owner at `url` when every write to `shard` at or below `target` has landed. */
  async settle(url: string, shard: string, target: bigint): Promise<bigint | null> {
    const res = await this.call(url, SETTLE_PATH, Buffer.from(JSON.stringify({ shard, target: target.toString() })));
    const out = JSON.parse(res.toString()) as { memberRev: string | null };
    return out.memberRev === null ? null : BigInt(out.memberRev);
  }

  /** Asks the replica at `url` how far it handed out its revision block ending at `end` (clock/block.ts). */
  async current(url: string, end: bigint): Promise<bigint | null> {
    const res = await this.call(url, CURRENT_PATH, Buffer.from(JSON.stringify({ end: end.toString() })));
    const out = JSON.parse(res.toString()) as { issued: string | null };
    return out.issued === null ? null : BigInt(out.issued);
  }

  /**
   * Opens a RelayWatch stream to the replica at `url` for `shard` (watch/relay.ts); null until
   * the replicas' secret has been read (the member is read meanwhile).
   */
  openRelay(url: string, shard: string): EventSource | null {
    const secret = this.secret.cached();
    if (!secret) {
      void this.secret.get().catch(() => undefined);
      return null;
    }
    const md = new grpc.Metadata();
    md.set(PEER_SECRET_HEADER, secret.toString());
    md.set(RELAY_SHARD_HEADER, shard);
    const stream = this.client(url).makeBidiStreamRequest(RELAY_PATH, relayMethod.requestSerialize, relayMethod.responseDeserialize, md, {});
    return { stream, endpoint: url };
  }

  private async call(url: string, path: string, req: Buffer): Promise<Buffer> {
    try {
      return await this.callOnce(url, path, req);
    } catch (err) {
      // The owner knows another secret (the coordinator lost its data): read it again, once.
      if (!(err instanceof EtcdError) || err.code !== grpc.status.PERMISSION_DENIED) throw err;
      this.secret.refresh();
      return this.callOnce(url, path, req);
    }
  }

  private async callOnce(url: string, path: string, req: Buffer): Promise<Buffer> {
    const client = this.client(url);
    const md = new grpc.Metadata();
    md.set(PEER_SECRET_HEADER, (await this.secret.get()).toString());
    return new Promise((resolve, reject) => {
      withoutCallerStack(() =>
        client.makeUnaryRequest<Buffer, Buffer>(path, identity, identity, req, md, { deadline: new Date(Date.now() + this.timeoutMs) }, (err, res) => {
          if (err || !res) reject(err ? ownerError(err.code, err.details ?? err.message ?? '', url) : new EtcdError(grpc.status.UNKNOWN, `etcd-metaproxy: no answer from the owner at ${url}`));
          else resolve(res);
        }),
      );
    });
  }

  close(): void {
    for (const s of this.streams.values()) s.close();
    this.streams.clear();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private client(url: string): grpc.Client {
    let c = this.clients.get(url);
    if (!c) {
      const target = url.replace(/^[a-z]+:\/\//, '').replace(/\/+$/, '');
      c = new PeerClient(target, channelCredentials(url, this.tls), {
        // Only transparent retries (no retry policy is configured): a call the owner never
        // started processing (refused stream, GOAWAY while it shuts down) is sent again.
        'grpc.enable_retries': 1,
        'grpc.enable_channelz': 0,
        'grpc.max_receive_message_length': -1,
        'grpc.max_send_message_length': -1,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
      });
      this.clients.set(url, c);
    }
    return c;
  }
}

