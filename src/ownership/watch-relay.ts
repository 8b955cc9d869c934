/**
 * `etcdmetaproxy.Peer/RelayWatch`: another replica reads a shard's member events from this one
 * (watch/relay.ts) with the member's own Watch messages, so its feed (watch/feed.ts) treats the
 * relay as it would the member. The shard is named in the call's metadata, the caller shows the
 * replicas' secret as for every peer call. A relay that cannot serve answers with a canceled
 * response and its reason, then ends: the follower reads the member instead.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { WatchService, type WatchRequest, type WatchResponse } from '../etcd/gen/rpc.js';
import type { FeedRelay, Follower, RelaySink } from '../watch/relay.js';
import { PEER_SECRET_HEADER, type PeerSecret } from './peer-secret.js';
import { revHeader } from '../etcd/header.js';

export const RELAY_PATH = '/etcdmetaproxy.Peer/RelayWatch';
/** The metadata entry naming the shard to follow. */
export const RELAY_SHARD_HEADER = 'etcd-metaproxy-shard';
/** Responses a follower may leave unread before it is dropped (it then reads the member). */
const MAX_UNSENT = 4096;

/** etcd's Watch messages (the generated codec the member watches use), on the peer path. */
export const relayMethod: grpc.MethodDefinition<WatchRequest, WatchResponse> = { ...WatchService.watch, path: RELAY_PATH };


/** The RelayWatch handler: `relays` names the relay of a shard (null: not one this replica reads). */
export function relayHandler(relays: (shard: string) => FeedRelay | null, secret: PeerSecret, log: Logger): grpc.handleBidiStreamingCall<WatchRequest, WatchResponse> {
  return (call) => serveRelay(call, relays, secret, log);
}

function serveRelay(call: grpc.ServerDuplexStream<WatchRequest, WatchResponse>, relays: (shard: string) => FeedRelay | null, secret: PeerSecret, log: Logger): void {
  const shard = String(call.metadata.get(RELAY_SHARD_HEADER)[0] ?? '');
  const presented = call.metadata.get(PEER_SECRET_HEADER)[0];
  let relay: FeedRelay | null = null;
  let follower: Follower | null = null;
  let done = false;
  let allowed: boolean | null = null;
  const pending: WatchRequest[] = [];

  const finish = () => {
    if (done) return;
    done = true;
    if (relay && follower) relay.unfollow(follower);
  };
  const sink: RelaySink = {
    send: (res) => {
      if (done) return false;
      call.write(res as WatchResponse);
      return call.writableLength < MAX_UNSENT;
    },
    end: (reason) => {
      if (done) return;
      finish();
      call.write({ header: revHeader(0n), watch_id: '0', created: false, canceled: true, compact_revision: '0', cancel_reason: `etcd-metaproxy relay: ${reason}`, fragment: false, events: [] });
      call.end();
    },
  };
  const handle = (req: WatchRequest) => {
    if (done) return;
    if (req.create_request && !follower) {
      relay = relays(shard);
      if (!relay) return sink.end(`no member watch of shard "${shard}" here`);
      const c = req.create_request;
      const out = relay.follow(sink, { from: BigInt(c.start_revision || '0'), prevKv: c.prev_kv, range: { key: c.key, range_end: c.range_end } });
      if (typeof out === 'string') return sink.end(out);
      follower = out;
    } else if (req.progress_request && relay && follower) {
      relay.requestProgress(follower);
    } else if (req.cancel_request) {
      sink.end('canceled by the follower');
    }
  };

  call.on('data', (req: WatchRequest) => {
    if (allowed) handle(req);
    else if (allowed === null) pending.push(req);
  });
  call.on('end', () => {
    finish();
    call.end();
  });
  call.on('cancelled', finish);
  call.on('error', finish);
  secret.accepts(typeof presented === 'string' ? presented : undefined).then(
    (ok) => {
      allowed = ok;
      if (ok) {
        for (const r of pending.splice(0)) handle(r);
        return;
      }
      done = true;
      call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'etcd-metaproxy: only proxy replicas may call etcdmetaproxy.Peer' });
    },
    (err: unknown) => {
      log.warn({ err }, 'relay: could not check the peer secret');
      done = true;
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'etcd-metaproxy: cannot check the peer secret' });
    },
  );
}
