/**
 * Maintenance: Status describes the meta-cluster as one etcd (a semver etcd version recent
 * enough for kube-apiserver's feature checks, summed db sizes, the meta revision). The other
 * methods come with the operator issue.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Errors } from '../etcd/errors.js';
import type { StatusResponse } from '../etcd/types.js';
import type { MetaStore } from '../kv/store.js';
import type { Upstream } from '../shard/upstream.js';
import type { HeaderSource } from './header.js';
import { unary } from './unary.js';

/** The etcd API version the proxy reports (kube-apiserver needs >= 3.5.13 for its newer features). */
export const REPORTED_ETCD_VERSION = '3.5.17';

export interface MaintenanceDeps {
  store: MetaStore;
  header: HeaderSource;
  logger: Logger;
  maxRequestBytes: number;
}

export async function metaStatus(store: MetaStore, header: HeaderSource): Promise<StatusResponse> {
  const upstreams: Upstream[] = [store.coordinator, ...store.shards.map((s) => s.upstream)];
  const results = await Promise.allSettled(upstreams.map((u) => u.status()));
  let dbSize = 0n;
  let dbSizeInUse = 0n;
  const errors: string[] = [];
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') {
      dbSize += BigInt(r.value.dbSize);
      dbSizeInUse += BigInt(r.value.dbSizeInUse);
      errors.push(...r.value.errors.map((e) => `${upstreams[i].name}: ${e}`));
    } else {
      errors.push(`${upstreams[i].name}: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`);
    }
  });
  const coord = results[0].status === 'fulfilled' ? results[0].value : null;
  if (coord) header.raftTerm = coord.raftTerm;
  const revision = coord ? await store.clock.current() : 0n;
  return {
    header: header.fill({ cluster_id: '0', member_id: '0', revision: revision.toString(), raft_term: '0' }),
    version: REPORTED_ETCD_VERSION,
    dbSize: dbSize.toString(),
    leader: header.memberId,
    raftIndex: coord?.raftIndex ?? '0',
    raftTerm: coord?.raftTerm ?? '0',
    raftAppliedIndex: coord?.raftAppliedIndex ?? '0',
    errors,
    dbSizeInUse: dbSizeInUse.toString(),
    isLearner: false,
  };
}

export function maintenanceService(d: MaintenanceDeps): grpc.UntypedServiceImplementation {
  const o = { logger: d.logger, maxRequestBytes: d.maxRequestBytes };
  const unsupported = (name: string) =>
    unary<object, object>(name, async () => {
      throw Errors.notSupported(`Maintenance.${name}`);
    }, o);
  return {
    Status: unary<object, StatusResponse>('Status', () => metaStatus(d.store, d.header), o),
    Alarm: unsupported('Alarm'),
    Defragment: unsupported('Defragment'),
    Hash: unsupported('Hash'),
    HashKV: unsupported('HashKV'),
    MoveLeader: unsupported('MoveLeader'),
    Snapshot: (call: grpc.ServerWritableStream<object, object>) => {
      const e = Errors.notSupported('Maintenance.Snapshot');
      call.emit('error', { code: e.code, details: e.message });
    },
  };
}
