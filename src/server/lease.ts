/**
 * The Lease service: leases are the coordinator's (lease/directory.ts), so grant, keepalive
 * and time-to-live are one coordinator call each and answer with etcd's own errors.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { EtcdError } from '../etcd/errors.js';
import type {
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseIdRequest,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponse,
} from '../etcd/types.js';
import { revHeader } from '../etcd/header.js';
import type { LeaseCluster } from '../lease/cluster-view.js';
import { listLeases, revokeLease, timeToLive } from '../lease/verbs.js';
import { grpcRequests } from '../metrics/registry.js';
import type { HeaderSource } from './header.js';
import { unary } from './unary.js';
import type { Handlers } from './service.js';

export interface LeaseDeps {
  cluster: LeaseCluster;
  header: HeaderSource;
  logger: Logger;
  maxRequestBytes: number;
}

/** An int64 field as proto-loader hands it (a decimal string); anything else reads as 0. */
function id64(v: unknown): bigint {
  try {
    return BigInt(String(v ?? '0'));
  } catch {
    return 0n;
  }
}

export function leaseService(d: LeaseDeps): Handlers<'Lease'> {
  const o = { logger: d.logger, maxRequestBytes: d.maxRequestBytes };
  return {
    LeaseGrant: unary<LeaseGrantRequest, LeaseGrantResponse>(
      'LeaseGrant',
      async (r) => {
        const res = await d.cluster.leases.grant(r);
        return { header: d.header.fill(revHeader(d.cluster.clock.known())), ID: res.ID, TTL: res.TTL, error: '' };
      },
      o,
      () => true,
    ),
    LeaseRevoke: unary<LeaseIdRequest, LeaseRevokeResponse>(
      'LeaseRevoke',
      async (r) => {
        const res = await revokeLease(d.cluster, id64(r.ID), d.logger);
        return { header: d.header.fill(res.header) };
      },
      o,
      () => true,
    ),
    LeaseTimeToLive: unary<LeaseTimeToLiveRequest, LeaseTimeToLiveResponse>(
      'LeaseTimeToLive',
      async (r) => {
        const res = await timeToLive(d.cluster, { ID: id64(r.ID).toString(), keys: !!r.keys });
        return { ...res, header: d.header.fill(res.header) };
      },
      o,
    ),
    LeaseLeases: unary<object, LeaseLeasesResponse>(
      'LeaseLeases',
      async () => {
        const res = await listLeases(d.cluster);
        return { ...res, header: d.header.fill(res.header) };
      },
      o,
    ),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<LeaseIdRequest, LeaseKeepAliveResponse>) => keepAlive(d, call),
  };
}

/**
 * Each request is one keepalive on the coordinator, answered in order. A failed keepalive ends
 * the stream with its error (etcd's clients then open a new one).
 */
function keepAlive(d: LeaseDeps, call: grpc.ServerDuplexStream<LeaseIdRequest, LeaseKeepAliveResponse>): void {
  let chain: Promise<void> = Promise.resolve();
  let done = false;
  const finish = (err: EtcdError | null) => {
    if (done) return;
    done = true;
    if (err) call.emit('error', { code: err.code, details: err.message, metadata: new grpc.Metadata() });
    else call.end();
  };
  call.on('data', (req: LeaseIdRequest) => {
    if (done) return;
    // Sent to the coordinator at once (pipelined), answered to the client in order.
    const id = id64(req?.ID);
    // Another namespace's lease (proxies may share clusters) does not exist here: TTL 0, as etcd
    // answers a keepalive of an unknown lease.
    const renewed = d.cluster.leases
      .lookup(id)
      .then((inc) => (inc === null ? { ID: id.toString(), TTL: '0' } : d.cluster.coordinator.leaseKeepAlive(id)))
      .then(
      (res) => ({ res, err: null }),
      (err: unknown) => ({ res: null, err }),
    );
    chain = chain.then(async () => {
      const { res, err } = await renewed;
      if (done) return;
      if (res) {
        grpcRequests.inc({ method: 'LeaseKeepAlive', code: 'OK' });
        if (!call.cancelled) call.write({ header: d.header.fill(revHeader(d.cluster.clock.known())), ID: res.ID, TTL: res.TTL });
        return;
      }
      const e = err instanceof EtcdError ? err : new EtcdError(grpc.status.UNKNOWN, err instanceof Error ? err.message : String(err));
      grpcRequests.inc({ method: 'LeaseKeepAlive', code: grpc.status[e.code] ?? String(e.code) });
      finish(e);
    });
  });
  call.on('end', () => void chain.then(() => finish(null)));
  call.on('cancelled', () => {
    done = true;
  });
  call.on('error', () => {
    done = true;
  });
}
