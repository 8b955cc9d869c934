/**
 * Cluster: MemberList names every live proxy replica (registered in the coordinator, see
 * membership/), with their client URLs, so clients that sync endpoints spread over the
 * replicas and never reach the member clusters.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Errors } from '../etcd/errors.js';
import type { Member, MemberListResponse } from '../etcd/types.js';
import type { HeaderSource } from './header.js';
import { unary } from './unary.js';
import type { Handlers } from './service.js';

export interface ClusterDeps {
  header: HeaderSource;
  logger: Logger;
  maxRequestBytes: number;
  /** The replicas to list, this one included. */
  members: () => Promise<Member[]>;
  revision: () => Promise<bigint>;
}

export function clusterService(d: ClusterDeps): Handlers<'Cluster'> {
  const o = { logger: d.logger, maxRequestBytes: d.maxRequestBytes };
  const unsupported = <Req extends object, Res>(name: string) =>
    unary<Req, Res>(name, async () => {
      throw Errors.notSupported(`membership changes (Cluster.${name}) through the proxy`);
    }, o);
  return {
    MemberList: unary<object, MemberListResponse>(
      'MemberList',
      async () => {
        const [revision, members] = await Promise.all([d.revision(), d.members()]);
        return { header: d.header.fill({ cluster_id: '0', member_id: '0', revision: revision.toString(), raft_term: '0' }), members };
      },
      o,
    ),
    MemberAdd: unsupported('MemberAdd'),
    MemberRemove: unsupported('MemberRemove'),
    MemberUpdate: unsupported('MemberUpdate'),
    MemberPromote: unsupported('MemberPromote'),
  };
}
