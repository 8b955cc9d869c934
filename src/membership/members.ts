/** The replicas as Cluster.MemberList reports them. */
import type { Member } from '../etcd/types.js';
import type { Upstream } from '../upstream/upstream.js';
import { byId, listProxies, type ProxyRecord } from './records.js';

function asMember(r: ProxyRecord): Member {
  // etcd always lists peer URLs; a proxy has no peers, so it names its client URLs there too.
  return { ID: r.id, name: r.name, peerURLs: r.clientURLs, clientURLs: r.clientURLs, isLearner: false };
}

/**
 * Every registered replica, plus `self` when its record is missing (not registered yet, or
 * the coordinator lost it): the answering proxy is always a member. Ordered by id, as etcd does.
 */
export async function memberList(coordinator: Upstream, self: ProxyRecord): Promise<Member[]> {
  const records = await listProxies(coordinator);
  if (!records.some((r) => r.id === self.id)) {
    records.push(self);
    records.sort(byId);
  }
  return records.map(asMember);
}
