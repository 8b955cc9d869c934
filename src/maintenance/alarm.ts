/**
 * Alarm for the meta-cluster. In etcd an alarm is cluster state: a NOSPACE alarm on any member
 * makes the whole cluster refuse writes. The meta-cluster's alarms are therefore the union of
 * its member clusters' and the coordinator's alarms, each reported with the real member id that
 * raised it; ACTIVATE and DEACTIVATE go to every cluster (etcd's semantics for "the cluster"),
 * so `etcdctl alarm disarm` (list, then deactivate each) clears an alarm wherever it is.
 */
import { status } from '@grpc/grpc-js';
import { EtcdError } from '../etcd/errors.js';
import type { AlarmMember, AlarmRequest } from '../etcd/types.js';
import { AlarmAction, AlarmType } from '../etcd/types.js';
import type { Upstream } from '../upstream/upstream.js';

const KNOWN_TYPES: readonly number[] = Object.values(AlarmType);

/**
 * Requests a member cannot take, answered at the proxy and never fanned out: etcd 3.4 panics
 * (and so every cluster behind the proxy would) on an unknown action (nil response) and on
 * activating an unknown alarm type (at apply time, on every member); 3.5 still panics on both.
 * Neither version has an error of its own for them, so they are refused as invalid arguments.
 * Requests that are no-ops in etcd 3.5 (activating NONE, getting or deactivating an unknown
 * type) are answered with no alarms without a member call. Returns null for a request to fan out.
 */
export function guardAlarm(req: AlarmRequest): AlarmMember[] | null {
  const action = Number(req.action);
  if (action !== AlarmAction.GET && action !== AlarmAction.ACTIVATE && action !== AlarmAction.DEACTIVATE) {
    throw new EtcdError(status.INVALID_ARGUMENT, `etcdserver: unknown alarm action ${action}`);
  }
  const known = KNOWN_TYPES.includes(Number(req.alarm));
  if (action === AlarmAction.ACTIVATE && !known) throw new EtcdError(status.INVALID_ARGUMENT, `etcdserver: unknown alarm type ${Number(req.alarm)}`);
  if (action === AlarmAction.ACTIVATE && Number(req.alarm) === AlarmType.NONE) return [];
  if (!known) return [];
  return null;
}

/**
 * Sends `req` to every cluster and merges the alarms they report (deduplicated, ordered by
 * member id then type for a stable answer). A cluster that cannot answer fails the call: a
 * partial list could hide the alarm that matters; repeating the call is harmless.
 */
export async function alarmAll(upstreams: Upstream[], req: AlarmRequest): Promise<AlarmMember[]> {
  const local = guardAlarm(req);
  if (local !== null) return local;
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
