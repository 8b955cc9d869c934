/**
 * Defragment for the meta-cluster: etcd defragments the member it is asked, so the proxy
 * defragments every configured endpoint of every member cluster and of the coordinator.
 * Within one cluster one member at a time (a member is paused while it defragments, as etcd's
 * own guidance says); clusters in parallel. Every member is tried even when one fails.
 */
import { status } from '@grpc/grpc-js';
import { EtcdError } from '../etcd/errors.js';
import type { Upstream } from '../upstream/upstream.js';

/** A large member database takes long to rewrite; this is well above the request timeout on purpose. */
export const DEFRAGMENT_TIMEOUT_MS = 10 * 60_000;

export interface DefragFailure {
  cluster: string;
  target: string;
  code: number;
  message: string;
}

async function defragCluster(up: Upstream, timeoutMs: number): Promise<DefragFailure[]> {
  const failures: DefragFailure[] = [];
  for (let i = 0; i < up.targets.length; i++) {
    try {
      await up.defragment(i, timeoutMs);
    } catch (err) {
      const code = err instanceof EtcdError ? err.code : status.UNKNOWN;
      failures.push({ cluster: up.name, target: up.targets[i], code, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return failures;
}

/**
 * Resolves when every member was defragmented. Otherwise one error naming each member that
 * failed: etcd answers a failed defragment with the error itself (code UNKNOWN for a backend
 * error), so the code is the first failure's; the message lists them all.
 */
export async function defragmentAll(upstreams: Upstream[], timeoutMs = DEFRAGMENT_TIMEOUT_MS): Promise<void> {
  const failures = (await Promise.all(upstreams.map((u) => defragCluster(u, timeoutMs)))).flat();
  if (failures.length === 0) return;
  const total = upstreams.reduce((n, u) => n + u.targets.length, 0);
  const list = failures.map((f) => `${f.cluster} member ${f.target}: ${f.message}`).join('; ');
  throw new EtcdError(failures[0].code, `etcd-metaproxy: defragment failed on ${failures.length} of ${total} members: ${list}`);
}
