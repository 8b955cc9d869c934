/**
 * Maintenance for the meta-cluster as one etcd:
 * - Status: a semver etcd version recent enough for kube-apiserver's feature checks, summed db
 *   sizes, the meta revision;
 * - Defragment and Alarm fan out to every member cluster and the coordinator (maintenance/);
 * - HashKV hashes the meta keyspace at a meta revision (maintenance/hash-kv.ts);
 * - Snapshot streams a backup of the whole meta-cluster at one revision (snapshot-stream.ts);
 * - MoveLeader: the proxy presents itself as a one-member cluster that is its own leader, so
 *   as in such an etcd, moving leadership to itself succeeds and to anyone else is refused;
 * - Hash (etcd's hash of one member's whole database file) has no meta-cluster meaning.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { status as grpcStatus } from '@grpc/grpc-js';
import { Errors, EtcdError } from '../etcd/errors.js';
import type {
  AlarmRequest,
  AlarmResponse,
  DefragmentResponse,
  HashKVRequest,
  HashKVResponse,
  MoveLeaderRequest,
  MoveLeaderResponse,
  ResponseHeader,
  StatusResponse,
} from '../etcd/types.js';
import type { KeyspaceScan } from '../kv/backend.js';
import { alarmAll } from '../maintenance/alarm.js';
import { defragmentAll } from '../maintenance/defragment.js';
import { hashKV, hashKVResponse } from '../maintenance/hash-kv.js';
import type { Upstream } from '../upstream/upstream.js';
import type { HeaderSource } from './header.js';
import { snapshotHandler } from './snapshot-stream.js';
import { unary } from './unary.js';
import type { Handlers } from './service.js';

/** The etcd API version the proxy reports (kube-apiserver needs >= 3.5.13 for its newer features). */
export const REPORTED_ETCD_VERSION = '3.5.17';

/** The clusters behind the proxy and the meta clock: what Status, Alarm and Defragment use. */
export interface MaintenanceCluster {
  readonly coordinator: Upstream;
  readonly shards: readonly { readonly upstream: Upstream }[];
  readonly clock: { current(): Promise<bigint> };
}

export interface MaintenanceDeps {
  cluster: MaintenanceCluster;
  /** HashKV and Snapshot read the keyspace through it. */
  scan: KeyspaceScan;
  header: HeaderSource;
  logger: Logger;
  maxRequestBytes: number;
  /** Recorded in snapshots (who made them). */
  createdBy?: string;
}

function allUpstreams(cluster: MaintenanceCluster): Upstream[] {
  return [cluster.coordinator, ...cluster.shards.map((s) => s.upstream)];
}

export async function metaStatus(cluster: MaintenanceCluster, header: HeaderSource): Promise<StatusResponse> {
  const upstreams = allUpstreams(cluster);
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
  const revision = coord ? await cluster.clock.current() : 0n;
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

export function maintenanceService(d: MaintenanceDeps): Handlers<'Maintenance'> {
  const o = { logger: d.logger, maxRequestBytes: d.maxRequestBytes };
  const at = (revision: bigint): ResponseHeader =>
    d.header.fill({ cluster_id: '0', member_id: '0', revision: revision.toString(), raft_term: '0' });
  const current = async () => at(await d.cluster.clock.current());
  return {
    Status: unary<object, StatusResponse>('Status', () => metaStatus(d.cluster, d.header), o),
    Alarm: unary<AlarmRequest, AlarmResponse>(
      'Alarm',
      async (req) => {
        const [alarms, header] = await Promise.all([alarmAll(allUpstreams(d.cluster), req), current()]);
        return { header, alarms };
      },
      o,
    ),
    Defragment: unary<object, DefragmentResponse>(
      'Defragment',
      async () => {
        await defragmentAll(allUpstreams(d.cluster));
        d.logger.info('defragmented every member cluster and the coordinator');
        return { header: await current() };
      },
      o,
    ),
    HashKV: unary<HashKVRequest, HashKVResponse>(
      'HashKV',
      async (req) => {
        const h = await hashKV(d.scan, req);
        return hashKVResponse(h, at(h.currentRevision));
      },
      o,
    ),
    MoveLeader: unary<MoveLeaderRequest, MoveLeaderResponse>(
      'MoveLeader',
      async (req) => {
        if (BigInt(req.targetID).toString() !== d.header.memberId) throw Errors.badLeaderTransferee();
        return { header: await current() };
      },
      o,
    ),
    Hash: unary(
      'Hash',
      async () => {
        throw new EtcdError(grpcStatus.UNIMPLEMENTED, 'etcd-metaproxy: Maintenance.Hash hashes one member\'s database file, which a meta-cluster does not have; use HashKV');
      },
      o,
    ),
    Snapshot: snapshotHandler({ scan: d.scan, coordinator: d.cluster.coordinator, header: d.header, logger: d.logger, version: REPORTED_ETCD_VERSION, createdBy: d.createdBy ?? 'etcd-metaproxy' }),
  };
}
