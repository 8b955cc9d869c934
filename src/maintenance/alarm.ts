/**
 * Alarm for the meta-cluster. In etcd an alarm is cluster state: a NOSPACE alarm on any member
 * makes the whole cluster refuse writes. The meta-cluster's alarms are therefore the union of
 * its member clusters' and the coordinator's alarms, each reported with the real member id that
 * raised it; ACTIVATE and DEACTIVATE go to every cluster (etcd's semantics for "the cluster"),
 * so `etcdctl alarm disarm` (list, then deactivate each) clears an alarm wherever it is.
 */
import type { AlarmMember, AlarmRequest } from '../etcd/types.js';
import { AlarmType } from '../etcd/types.js';
import type { Upstream } from '../shard/upstream.js';

/**
 * Sends `req` to every cluster and merges the alarms they report (deduplicated, ordered by
 * member id then type for a stable answer). A cluster that cannot answer fails the call: a
 * partial list could hide the alarm that matters; repeating the call is harmless.
 */
export async function alarmAll(upstreams: Upstream[], req: AlarmRequest): Promise<AlarmMember[]> {
  const forward: AlarmRequest = { action: req.action, memberID: req.memberID, alarm: req.alarm };
  const results = await Promise.allSettled(upstreams.map((u) => u.alarm(forward)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  const seen = new Map<string, AlarmMember>();
  for (const r of results) {
    if (r.status !== 'fulfilled') continue;
    for (const a of r.value.alarms) {
      const id = BigInt(a.memberID).toString();
      seen.set(`${id}/${a.alarm}`, { memberID: id, alarm: a.alarm ?? AlarmType.NONE });
    }
  }
  return [...seen.values()].sort((a, b) => {
    const x = BigInt(a.memberID);
    const y = BigInt(b.memberID);
    return x < y ? -1 : x > y ? 1 : a.alarm - b.alarm;
  });
}
