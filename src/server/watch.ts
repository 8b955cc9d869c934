/**
 * The Watch service: one WatchSession per client stream (watch/session.ts), fed by the proxy's
 * one merged event stream through the hub. Requests are read in order; a malformed one is
 * ignored as etcd ignores requests it does not understand.
 */
import type * as grpc from '@grpc/grpc-js';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { MemoryBudget } from '../budget/memory-budget.js';
import { watchStreams } from '../metrics/registry.js';
import type { WatchCluster } from '../watch/cluster-view.js';
import type { WatchHub } from '../watch/hub.js';
import { ReplaySlots } from '../watch/replay-slots.js';
import { WatchSession } from '../watch/session.js';
import type { HeaderSource } from './header.js';
import type { RequestGuard } from '../auth/guard.js';
import type { WatchRequest, WatchResponse } from '../etcd/gen/rpc.js';
import type { Handlers } from './service.js';

export interface WatchDeps {
  hub: WatchHub;
  cluster: WatchCluster;
  header: HeaderSource;
  logger: Logger;
  maxPendingEvents: number;
  maxRequestBytes: number;
  /** Checks each create request's read permission (auth/guard.ts); absent: no auth. */
  guard?: RequestGuard;
  budget: MemoryBudget;
}

/** Watchers reading history from the members at once (watch/replay-slots.ts). */
const REPLAY_SLOTS = 16;

const NOPUT = 0;
const NODELETE = 1;

export interface WatchService {
  service: Handlers<'Watch'>;
  /** Ends every client stream (UNAVAILABLE, as a stopping etcd): clients resume elsewhere. */
  closeAll(): void;
}

export function watchService(d: WatchDeps): WatchService {
  const sessions = new Map<WatchSession, grpc.ServerDuplexStream<unknown, unknown>>();
  const replaySlots = new ReplaySlots(REPLAY_SLOTS);
  const service: Handlers<'Watch'> = {
    Watch: (call: grpc.ServerDuplexStream<WatchRequest, WatchResponse>) => {
      const session = new WatchSession(call, {
        hub: d.hub,
        store: d.cluster,
        log: d.logger,
        header: (rev) => d.header.fill({ cluster_id: '0', member_id: '0', revision: rev.toString(), raft_term: '0' }),
        maxPendingEvents: d.maxPendingEvents,
        maxResponseBytes: d.maxRequestBytes,
        budget: d.budget,
        replaySlots,
      });
      sessions.set(session, call);
      watchStreams.inc();
      let open = true;
      const done = () => {
        if (!open) return;
        open = false;
        sessions.delete(session);
        watchStreams.dec();
        session.close();
      };
      // Requests are handled in order: one that waits (RequestProgress) holds back those after it.
      let inbox: Promise<void> = Promise.resolve();
      call.on('data', (req: WatchRequest) => {
        inbox = inbox.then(() =>
          handle(session, req, call, d.guard).catch((err: unknown) => {
            d.logger.warn({ err: (err as Error).message }, 'watch request ignored');
          }),
        );
      });
      call.on('end', () => {
        done();
        call.end();
      });
      call.on('error', done);
      call.on('cancelled', done);
      call.on('close', done);
    },
  };
  return {
    service,
    closeAll: () => {
      for (const [session, call] of [...sessions]) {
        session.close();
        call.emit('error', { code: grpcStatus.UNAVAILABLE, details: 'etcdserver: server stopped' });
      }
    },
  };
}

async function handle(session: WatchSession, req: WatchRequest, call: grpc.ServerDuplexStream<unknown, unknown>, guard?: RequestGuard): Promise<void> {
  if (req.create_request) {
    const c = req.create_request;
    // etcd: an empty key watches from "\0"; range_end "\0" means every key from `key` on.
    const key = c.key.length ? c.key : Buffer.from([0]);
    const end = c.range_end.length === 0 ? null : c.range_end.length === 1 && c.range_end[0] === 0 ? Buffer.alloc(0) : c.range_end;
    // etcd checks read permission on (key, end) after this normalisation, so "\0" (every key
    // from `key` on) is checked as the single key, as etcd does.
    const refused = guard ? await guard.watchPermission(call, key, end ?? Buffer.alloc(0)) : null;
    if (refused !== null) return session.refuse(refused);
    const filters = c.filters ?? [];
    // No start revision: etcd starts after its current revision, so a write acknowledged before
    // the create is never sent; the merged stream may not have released it yet.
    const start = BigInt(c.start_revision || '0');
    const current = start === 0n ? await session.currentRevision() : null;
    session.create(
      {
        id: BigInt(c.watch_id || '0'),
        key,
        end,
        prevKv: c.prev_kv,
        noPut: filters.includes(NOPUT),
        noDelete: filters.includes(NODELETE),
        progressNotify: c.progress_notify,
        fragment: c.fragment,
      },
      current === null ? start : current + 1n,
      current,
    );
  } else if (req.cancel_request) {
    session.cancel(BigInt(req.cancel_request.watch_id || '0'));
  } else if (req.progress_request) {
    await session.requestProgress();
  }
}
