/**
 * Cluster: MemberList names this proxy as the one member, with its client URLs, so clients
 * that sync endpoints keep talking to the proxy and never reach the member clusters.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Errors } from '../etcd/errors.js';
import type { MemberListResponse } from '../etcd/types.js';
import type { HeaderSource } from './header.js';
import { unary } from './unary.js';

export interface ClusterDeps {
  header: HeaderSource;
  logger: Logger;
  maxRequestBytes: number;
  name: string;
  clientUrls: string[];
  revision: () => Promise<bigint>;
}

export function clusterService(d: ClusterDeps): grpc.UntypedServiceImplementation {
  const o = { logger: d.logger, maxRequestBytes: d.maxRequestBytes };
  const unsupported = (name: string) =>
    unary<object, object>(name, async () => {
      throw Errors.notSupported(`membership changes (Cluster.${name}) through the proxy`);
    }, o);
  return {
    MemberList: unary<object, MemberListResponse>(
      'MemberList',
      async () => ({
        header: d.header.fill({ cluster_id: '0', member_id: '0', revision: (await d.revision()).toString(), raft_term: '0' }),
        // etcd always lists peer URLs; the proxy has no peers, so it names its client URLs there too.
        members: [{ ID: d.header.memberId, name: d.name, peerURLs: d.clientUrls, clientURLs: d.clientUrls, isLearner: false }],
      }),
      o,
    ),
    MemberAdd: unsupported('MemberAdd'),
    MemberRemove: unsupported('MemberRemove'),
    MemberUpdate: unsupported('MemberUpdate'),
    MemberPromote: unsupported('MemberPromote'),
  };
}
