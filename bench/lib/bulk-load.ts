/**
 * Loads many keys into a meta-cluster quickly, for the cache benchmark (bench/cache.ts).
 *
 * - `restore` (the default, and the fastest measured): writes a snapshot file in the project's
 *   format (src/backup/format.ts, docs/SNAPSHOT.md) holding the N keys as if key i had been
 *   created by write i+1, then loads it with the project's own restore (src/backup/restore.ts,
 *   what `etcd-metaproxy restore` runs) into the empty clusters, before any proxy starts on them.
 * - `txn`: through a running proxy, Txns of up to `txnOps` puts whose keys all live on one shard
 *   (the proxy refuses write txns that span shards), grouped with the proxy's own router.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import pino from 'pino';
import { SnapshotEncoder } from '../../src/backup/encoder.js';
import { FORMAT } from '../../src/backup/format.js';
import { restoreSnapshot } from '../../src/backup/restore.js';
import type { ProxyConfig } from '../../src/config/types.js';
import { initHash } from '../../src/partition/hash.js';
import { defaultPartitionMap, type PartitionMap } from '../../src/partition/map.js';
import { Router } from '../../src/partition/router.js';
import { kvClient } from './kv-client.js';

/** The benchmark's keyspace: `bench/cache/` + an 8-digit index (20 bytes, ascending in index order). */
export const BULK_PREFIX = 'bench/cache/';

export function bulkKey(i: number): Buffer {
  return Buffer.from(BULK_PREFIX + String(i).padStart(8, '0'), 'latin1');
}

export const BULK_KEY_BYTES = bulkKey(0).length;

/** A `size`-byte value for key i (printable, distinct per key). */
export function bulkValue(i: number, size: number): Buffer {
  const v = Buffer.alloc(size, 'v');
  const tag = Buffer.from(`${i}:`, 'latin1');
  tag.copy(v, 0, 0, Math.min(tag.length, size));
  return v;
}

export function partitionMapOf(config: ProxyConfig): PartitionMap {
  return defaultPartitionMap(config.partitions, config.routingPrefixSegments, config.shards.map((s) => s.name));
}

/** Writes a snapshot file of keys 0..n-1 (create = mod = i+1, version 1) at revision n. Returns its size. */
export async function writeSnapshotFile(file: string, n: number, valueSize: number, map: PartitionMap): Promise<number> {
  const enc = new SnapshotEncoder();
  const out = createWriteStream(file, { highWaterMark: 1 << 20 });
  let bytes = 0;
  const write = async (b: Buffer) => {
    bytes += b.length;
    if (!out.write(b)) await once(out, 'drain');
  };
  await write(
    enc.start({
      format: FORMAT,
      revision: String(Math.max(1, n)),
      compactRevision: '-1',
      partitionMap: map,
      leases: 0,
      createdAt: new Date().toISOString(),
      createdBy: 'etcd-metaproxy bench/cache.ts',
    }),
  );
  for (let i = 0; i < n; i++) {
    const rev = BigInt(i + 1);
    await write(enc.key({ key: bulkKey(i), value: bulkValue(i, valueSize), create: rev, mod: rev, version: 1n, lease: 0n }));
  }
  await write(enc.finish());
  out.end();
  await once(out, 'close');
  return bytes;
}

/** Loads a snapshot file into the clusters of `config` (which must be empty: no proxy started on them yet). */
export async function restoreFile(file: string, config: ProxyConfig): Promise<{ keys: bigint; perShard: string }> {
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const r = await restoreSnapshot({ file, config, logger });
  if (r.repartitioned) throw new Error('restore placed the keys by another partition map than the snapshot\'s (benchmark bug)');
  return { keys: r.keys, perShard: r.shards.map((s) => `${s.name}: ${s.keys} keys in ${s.txns} txns`).join(', ') };
}

/**
 * Puts keys [from, to) through the proxy at `endpoint`, in Txns of up to `txnOps` puts of one
 * shard each, `concurrency` Txns in flight.
 */
export async function loadThroughProxy(
  endpoint: string,
  map: PartitionMap,
  opts: { from?: number; to: number; valueSize: number; txnOps: number; concurrency: number; onProgress?: (done: number) => void },
): Promise<void> {
  await initHash();
  const router = new Router(map);
  const from = opts.from ?? 0;
  // Per shard, the key indexes in Txn-sized batches; then one batch of each shard in turn, so
  // that every shard is busy at once.
  const perShard: number[][] = Array.from({ length: router.shardCount }, () => []);
  for (let i = from; i < opts.to; i++) perShard[router.shardOf(bulkKey(i))]!.push(i);
  const shardBatches = perShard.map((keys) => {
    const out: number[][] = [];
    for (let j = 0; j < keys.length; j += opts.txnOps) out.push(keys.slice(j, j + opts.txnOps));
    return out;
  });
  const batches: number[][] = [];
  for (let j = 0; shardBatches.some((b) => j < b.length); j++) for (const b of shardBatches) if (j < b.length) batches.push(b[j]!);
  const clients = Array.from({ length: Math.min(opts.concurrency, 8) }, (_, i) => kvClient(endpoint, 1200 + i));
  let next = 0;
  let done = 0;
  try {
    await Promise.all(
      Array.from({ length: opts.concurrency }, async (_, w) => {
        const c = clients[w % clients.length]!;
        while (next < batches.length) {
          const batch = batches[next++]!;
          await c.txnPut(batch.map((i) => [bulkKey(i), bulkValue(i, opts.valueSize)]));
          done += batch.length;
          opts.onProgress?.(done);
        }
      }),
    );
  } finally {
    for (const c of clients) c.close();
  }
}
