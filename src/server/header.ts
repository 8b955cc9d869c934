/** Fills response headers the way etcd does: cluster id, member id (this proxy), raft term. */
import type { ResponseHeader } from '../etcd/types.js';

export class HeaderSource {
  clusterId = '0';
  raftTerm = '0';

  constructor(public memberId: string) {}

  fill(h: ResponseHeader | null | undefined): ResponseHeader {
    return {
      cluster_id: this.clusterId,
      member_id: this.memberId,
      revision: h?.revision ?? '0',
      raft_term: this.raftTerm,
    };
  }
}
