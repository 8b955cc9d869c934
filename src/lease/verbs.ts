/**
 * The Lease verbs over the meta-cluster. Grant, keepalive and time-to-live are the coordinator's
 * (time-to-live reads the lease's marker beside it, in parallel); revoke also deletes the lease's keys on every shard before it answers, as
 * etcd does; time-to-live with keys gathers them from every shard's lease index.
 */
import type { Logger } from 'pino';
import type { LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import { Errors } from '../etcd/errors.js';
import type { LeaseCluster } from './cluster-view.js';
import { decodeEnvelope } from '../shard/envelope.js';
import { prefixEnd } from '../shard/keyspace.js';
import type { Shard } from '../shard/shard.js';
import { rangeOp } from '../upstream/ops.js';
import { revHeader } from '../etcd/header.js';
import { indexPrefix } from './keys.js';
import { entriesOf, reapOnOwner } from './reap.js';

const PAGE = 500;
const KEYS_PER_READ = 100;

export async function revokeLease(store: LeaseCluster, id: bigint, log: Logger): Promise<LeaseRevokeResponse> {
  // Only meta leases: the proxies' own coordinator leases (no marker) do not exist for clients.
  if ((await store.leases.lookup(id)) === null) throw Errors.leaseNotFound();
  const res = await store.coordinator.leaseRevoke(id);
  // Every attachment made before the revoke is dead; a new grant of the ID has a later incarnation.
  const view = { rev: BigInt(res.header?.revision ?? '0'), live: new Map<bigint, bigint>(), own: new Set<bigint>() };
  const reaps = await Promise.allSettled(store.shards.map((s) => reapOnOwner(store, s, id, view)));
  // The elected reaper sees the marker go and may delete some of these keys first (at
  // revisions our reaps do not return): the answer, and the reads after it, must cover those
  // deletes too. A linearizable clock read after ours does: their index entries were gone.
  let rev = await store.clock.current().catch(() => store.clock.known());
  reaps.forEach((r, i) => {
    if (r.status === 'fulfilled') {
      if (r.value.rev > rev) rev = r.value.rev;
    } else {
      // The lease is gone; the reaper deletes these keys once the shard answers again.
      log.warn({ err: r.reason, lease: id.toString(), shard: store.shards[i].name }, 'lease revoke: keys on this shard are deleted later');
    }
  });
  store.noteAcked(rev);
  return { header: revHeader(rev) };
}

export async function timeToLive(store: LeaseCluster, req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
  const id = BigInt(req.ID);
  const [res, incarnation] = await Promise.all([store.coordinator.leaseTimeToLive({ ID: req.ID, keys: false }), store.leases.lookup(id)]);
  // No marker: not a meta lease (or not any more), answered as etcd answers an unknown lease.
  if (incarnation === null || BigInt(res.TTL) < 0n) return { header: revHeader(store.clock.known()), ID: req.ID, TTL: '-1', grantedTTL: '0', keys: [] };
  let keys: Buffer[] = [];
  if (req.keys) {
    const perShard = await Promise.all(store.shards.map((s) => keysOn(store, s, id, incarnation)));
    keys = perShard.flat().sort(Buffer.compare);
  }
  return { header: revHeader(store.clock.known()), ID: res.ID, TTL: res.TTL, grantedTTL: res.grantedTTL, keys };
}

export async function listLeases(store: LeaseCluster): Promise<LeaseLeasesResponse> {
  const view = await store.leases.view();
  return { header: revHeader(store.clock.known()), leases: [...view.own].map((id) => ({ ID: wire64(id) })) };
}

/** The user keys on `shard` attached to this incarnation of the lease (checked against each key's envelope). */
async function keysOn(store: LeaseCluster, shard: Shard, id: bigint, incarnation: bigint): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const end = prefixEnd(indexPrefix(id));
  let start = indexPrefix(id);
  for (;;) {
    const page = await shard.read([rangeOp(start, end, { limit: String(PAGE) })]);
    const kvs = page.responses[0]?.response_range?.kvs ?? [];
    const mine = entriesOf(kvs).filter((e) => e.incarnation === incarnation);
    for (let i = 0; i < mine.length; i += KEYS_PER_READ) {
      const part = mine.slice(i, i + KEYS_PER_READ);
      const read = await shard.read(part.map((e) => rangeOp(e.memberKey)));
      part.forEach((e, j) => {
        const kv = read.responses[j]?.response_range?.kvs[0];
        if (kv && decodeEnvelope(kv.value).lease === id && store.ks.owns(kv.key)) out.push(Buffer.from(store.ks.fromMember(kv.key)));
      });
    }
    if (kvs.length < PAGE) return out;
    start = Buffer.concat([kvs[kvs.length - 1].key, Buffer.from([0])]);
  }
}
