/** etcd's response header as the proxy fills it: the revision; ids and term are set per server (server/header.ts). */
import type { ResponseHeader } from './types.js';
import { wire64 } from './types.js';

export function revHeader(rev: bigint): ResponseHeader {
  return { cluster_id: '0', member_id: '0', revision: wire64(rev), raft_term: '0' };
}
