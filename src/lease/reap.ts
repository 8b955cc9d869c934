/**
 * Deletes the keys of a dead lease from one shard through the ordinary write path: each chunk
 * is one write of the shard's writer (a meta revision, the clock fence),
 * pinned to the state it was planned on, so a key put again meanwhile (with another lease, or
 * none, or a new grant of the same ID) is not deleted. Idempotent: what is gone stays gone, and
 * any number of reapers may run at once.
 */
import type { Compare, KeyValue, RequestOp } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { Errors } from '../etcd/errors.js';
import type { LeaseCluster } from './cluster-view.js';
import { leaseKeysDeleted } from '../metrics/registry.js';
import { decodeEnvelope } from '../shard/envelope.js';
import { prefixEnd } from '../shard/keyspace.js';
import type { Shard } from '../shard/shard.js';
import { cmp, rangeOp } from '../upstream/ops.js';
import { isDead } from './directory.js';
import type { LeaseView } from './directory.js';
import { indexPrefix, parseEntry } from './keys.js';
import type { IndexEntry } from './keys.js';

/** Index entries read per page. */
const PAGE = 500;
const MAX_ATTEMPTS = 16;

export interface ReapResult {
  /** User keys deleted. */
  deleted: number;
  /** Highest meta revision written (0: none). */
  rev: bigint;
}

export function entriesOf(kvs: KeyValue[]): IndexEntry[] {
  const out: IndexEntry[] = [];
  for (const kv of kvs) {
    const e = parseEntry(kv.key, kv.value, BigInt(kv.mod_revision));
    if (e) out.push(e);
  }
  return out;
}

/**
 * Reaps on `shard` every key of lease `id` attached under an incarnation dead in `view`.
 * `epoch`: the owner epoch this replica writes the shard under (ownership/); its writes fail
 * with NotOwnerError, applying nothing, once another replica owns the shard.
 */
export async function reapShard(store: LeaseCluster, shard: Shard, id: bigint, view: LeaseView, epoch?: bigint): Promise<ReapResult> {
  const out: ReapResult = { deleted: 0, rev: 0n };
  const end = prefixEnd(indexPrefix(id));
  let start = indexPrefix(id);
  // Entries per write: two deletes and two pins each, within the members' op limit.
  const chunk = Math.max(1, Math.min(50, Math.floor(store.maxPins / 2)));
  for (;;) {
    const page = await shard.read([rangeOp(start, end, { limit: String(PAGE) })]);
    const kvs = page.responses[0]?.response_range?.kvs ?? [];
    const dead = entriesOf(kvs).filter((e) => isDead(view, e.id, e.incarnation));
    for (let i = 0; i < dead.length; i += chunk) {
      const r = await reapEntries(store, shard, dead.slice(i, i + chunk), view, epoch);
      out.deleted += r.deleted;
      if (r.rev > out.rev) out.rev = r.rev;
    }
    if (kvs.length < PAGE) return out;
    start = Buffer.concat([kvs[kvs.length - 1].key, Buffer.from([0])]);
  }
}

/** One write deleting these entries and their keys, re-planned on the fresh state if a pin fails. */
async function reapEntries(store: LeaseCluster, shard: Shard, entries: IndexEntry[], view: LeaseView, epoch: bigint | undefined): Promise<ReapResult> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    // The entries and their keys, read together (one snapshot).
    const read = await shard.read([...entries.map((e) => rangeOp(e.entryKey)), ...entries.map((e) => rangeOp(e.memberKey))]);
    const ops: RequestOp[] = [];
    const pins: Compare[] = [];
    const keys: string[] = [];
    const deletedKeys: Buffer[] = [];
    entries.forEach((e, i) => {
      const entryKv = read.responses[i]?.response_range?.kvs[0];
      if (!entryKv) return;
      const now = parseEntry(entryKv.key, entryKv.value, BigInt(entryKv.mod_revision));
      if (!now || !isDead(view, now.id, now.incarnation)) return;
      ops.push(deleteOp(now.entryKey));
      pins.push(cmp(CompareTarget.MOD, CompareResult.EQUAL, now.entryKey, { mod_revision: now.entryMod.toString() }));
      keys.push(now.entryKey.toString('latin1'));
      const kv = read.responses[entries.length + i]?.response_range?.kvs[0];
      // Only a key still attached to this lease goes; a key put since with another lease (or
      // none) keeps its value. The entry alone is then stale and goes.
      if (kv && decodeEnvelope(kv.value).lease === now.id) {
        ops.push(deleteOp(now.memberKey));
        deletedKeys.push(now.memberKey);
      }
      pins.push(cmp(CompareTarget.MOD, CompareResult.EQUAL, now.memberKey, { mod_revision: kv ? String(kv.mod_revision) : '0' }));
      keys.push(now.memberKey.toString('latin1'));
    });
    if (ops.length === 0) return { deleted: 0, rev: 0n };
    // It takes no key turns: counted until the hints show its deletes (Shard.withoutTurns).
    const done = await shard.withoutTurns(async () => {
      const res = await shard.writer.submit(
        { ops: () => ops, pins, elseOps: [], keys, deletes: true, bytes: ops.length * 64 + keys.reduce((n, k) => n + 2 * k.length, 0), epoch },
        ops,
      );
      if (!res.applied) return null;
      for (const k of deletedKeys) store.hints.set(k.toString('latin1'), null);
      return res.rev;
    });
    if (done !== null) {
      leaseKeysDeleted.inc(deletedKeys.length);
      return { deleted: deletedKeys.length, rev: done };
    }
  }
  throw new Error(`lease reaper: too much contention on shard ${shard.name}`);
}

function deleteOp(key: Buffer): RequestOp {
  return { request_delete_range: { key, range_end: Buffer.alloc(0), prev_kv: false } };
}

/**
 * Reaps on the replica that owns the shard's writes: here when this replica owns it, else by
 * asking the owner (which reads nothing of this view but the lease's own incarnation).
 */
export async function reapOnOwner(store: LeaseCluster, shard: Shard, id: bigint, view: LeaseView, forwarded = false): Promise<ReapResult> {
  const routing = store.routing;
  if (!routing) return reapShard(store, shard, id, view);
  const route = await routing.route(shard.index);
  if (route.local) return reapShard(store, shard, id, view, route.epoch);
  if (forwarded) throw Errors.unavailable(`shard ${shard.name}`, 'its ownership is moving, try again');
  const live = view.live.get(id);
  return routing.reap(route.owner.url, shard.name, { id, rev: view.rev, live: live ?? null });
}
