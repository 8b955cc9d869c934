/**
 * `etcd-metaproxy restore`: loads a snapshot (format.ts) into empty member clusters and an empty
 * coordinator, so that a proxy started on them serves the same keys with the same create and mod
 * revisions (and versions, unless reset), and its clock continues above the snapshot revision.
 *
 * Order, so that an interrupted restore can never be served:
 *  1. the whole file is checked (checksum, structure, every key outside the reserved range)
 *     before anything is written;
 *  2. every cluster must hold no key at all;
 *  3. the coordinator's partition-map key is claimed with a "restoring" marker: a proxy refuses
 *     to start on it (partition/map.ts) until step 6 replaces it;
 *  4. keys are written to their shards (load-keys.ts);
 *  5. each shard gets its name and its clock at the snapshot revision R, and is compacted there
 *     (the restore's own member revisions are no history anyone may read);
 *  6. one coordinator txn sets the clock to R, the compaction record to R (history before R was
 *     not restored, so reads below R get etcd's compacted error) and the real partition map.
 */
import type { Logger } from 'pino';
import type { ProxyConfig } from '../config/types.js';
import { CLOCK_KEY, Keyspace } from '../shard/keyspace.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { COMPACT_KEY, encodeCompacted } from '../kv/store.js';
import { initHash } from '../partition/hash.js';
import { defaultPartitionMap, mapMismatch, RESTORING_MARKER, type PartitionMap } from '../partition/map.js';
import { Router } from '../partition/router.js';
import { PARTITION_MAP_KEY } from '../partition/map-record.js';
import { encodeClock } from '../shard/envelope.js';
import { SHARD_ID_KEY } from '../shard/shard.js';
import { cmp, createIfAbsent, putOp } from '../upstream/ops.js';
import { Upstream } from '../upstream/upstream.js';
import { KeyLoader } from './load-keys.js';
import { readSnapshot, SnapshotError, verifySnapshot } from './reader.js';

/** The clusters are not fit for a restore (not empty, unreachable, changed meanwhile). */
export class RestoreRefused extends Error {
  override readonly name = 'RestoreRefused';
}

export interface RestoreOptions {
  file: string;
  config: ProxyConfig;
  logger: Logger;
  /** Every key at version 1, instead of its own version (each key is one put either way). */
  resetVersions?: boolean;
}

export interface RestoreResult {
  revision: bigint;
  keys: bigint;
  shards: Array<{ name: string; keys: number; txns: number }>;
  /** True when keys were placed by the configuration's own map rather than the snapshot's. */
  repartitioned: boolean;
}

const ALL = Buffer.from([0]);

async function keyCount(up: Upstream): Promise<bigint> {
  const res = await up.range({ key: ALL, range_end: ALL, count_only: true });
  return BigInt(res.count);
}

/** The snapshot's map when the configuration routes the same way, else the configuration's own. */
function chooseMap(snapshotMap: PartitionMap, cfg: ProxyConfig): { map: PartitionMap; repartitioned: boolean } {
  const wanted = defaultPartitionMap(cfg.partitions, cfg.routingPrefixSegments, cfg.shards.map((s) => s.name));
  return mapMismatch(snapshotMap, wanted) === null ? { map: snapshotMap, repartitioned: false } : { map: wanted, repartitioned: true };
}

export async function restoreSnapshot(opts: RestoreOptions): Promise<RestoreResult> {
  const { file, config: cfg, logger: log } = opts;
  // Everything the load would refuse is refused here, before anything is written anywhere.
  const ks = new Keyspace(Buffer.from(cfg.namespace, 'latin1'));
  const checkKey = (key: Buffer): string | null => {
    if (key.length === 0) return 'it holds an empty key';
    return ks.writable(key) ? null : `key ${key.toString('hex')} lies in the reserved range`;
  };
  const checked = await verifySnapshot(file, checkKey).catch((err: unknown) => {
    throw err instanceof SnapshotError ? new SnapshotError(`snapshot ${file}: ${err.message}`) : err;
  });
  const { header, end } = checked;
  if (end.leases > 0n) throw new SnapshotError(`snapshot ${file}: it holds ${end.leases} leases, which this version cannot restore`);
  const revision = BigInt(header.revision);
  log.info({ file, revision: header.revision, keys: end.keys.toString(), maxVersion: checked.maxVersion.toString() }, 'snapshot verified');

  await initHash();
  const timeout = cfg.timeouts.requestMs;
  const coordinator = new Upstream({ name: 'coordinator', endpoints: cfg.coordinator.endpoints, requestTimeoutMs: timeout, tls: cfg.coordinator.tls });
  const shards = cfg.shards.map((s) => new Upstream({ name: s.name, endpoints: s.endpoints, requestTimeoutMs: timeout, tls: s.tls }));
  const all = [coordinator, ...shards];
  try {
    const counts = await Promise.all(
      all.map((u) =>
        keyCount(u).catch((err: unknown) => {
          throw new RestoreRefused(`${u.name}: cannot be reached: ${(err as Error).message}`);
        }),
      ),
    );
    const busy = all.flatMap((u, i) => (counts[i] > 0n ? [`${u.name} holds ${counts[i]} keys`] : []));
    if (busy.length) throw new RestoreRefused(`restore needs empty clusters: ${busy.join(', ')}`);

    const { map, repartitioned } = chooseMap(header.partitionMap, cfg);
    if (repartitioned) log.warn({ snapshot: header.partitionMap.shards, config: map.shards }, 'the configuration routes differently from the snapshot: keys are placed by the configuration');
    const marker = Buffer.from(JSON.stringify({ [RESTORING_MARKER]: true, revision: header.revision, startedAt: new Date().toISOString() }));
    if ((await createIfAbsent(coordinator, PARTITION_MAP_KEY, marker)) !== null) {
      throw new RestoreRefused('the coordinator got a partition map while the restore started (is a proxy running on it?)');
    }

    const router = new Router(map);
    const loader = new KeyLoader(shards, (k) => router.shardOf(k), ks, cfg.memberLimits, opts.resetVersions === true);
    for await (const rec of readSnapshot(file)) {
      if (rec.type !== 'key') continue;
      if (!ks.writable(rec.kv.key)) throw new SnapshotError(`snapshot ${file}: key ${rec.kv.key.toString('hex')} lies in the reserved range`);
      await loader.add(rec.kv);
    }
    const loaded = await loader.finish();

    await Promise.all(
      shards.map(async (u, i) => {
        const res = await u.txn({ compare: [], success: [putOp(SHARD_ID_KEY, Buffer.from(cfg.shards[i].name)), putOp(CLOCK_KEY, encodeClock(revision))], failure: [] }, false);
        // Everything before this revision is restore traffic: not history.
        await u.compact({ revision: res.header?.revision ?? '0', physical: false });
      }),
    );
    const done = await coordinator.txn(
      {
        compare: [cmp(CompareTarget.VALUE, CompareResult.EQUAL, PARTITION_MAP_KEY, { value: marker })],
        success: [
          putOp(CLOCK_KEY, encodeClock(revision)),
          putOp(COMPACT_KEY, encodeCompacted(revision)),
          putOp(PARTITION_MAP_KEY, Buffer.from(JSON.stringify(map))),
        ],
        failure: [],
      },
      false,
    );
    if (!done.succeeded) throw new RestoreRefused('the coordinator\'s restore marker changed during the restore; the clusters must be wiped and the restore repeated');
    const result: RestoreResult = {
      revision,
      keys: end.keys,
      shards: loaded.map((l, i) => ({ name: cfg.shards[i].name, ...l })),
      repartitioned,
    };
    log.info({ revision: header.revision, keys: end.keys.toString(), shards: result.shards }, 'restore finished');
    return result;
  } finally {
    for (const u of all) u.close();
  }
}
