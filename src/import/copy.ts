/**
 * The first phase of an import: the source's whole keyspace at one revision R, written into the
 * shards the partition map routes each key to, exactly as `restore` writes a snapshot
 * (backup/load-keys.ts: one member put per key, its envelope carrying the source's mod and create
 * revisions, lease and version delta). Leased keys also get their lease index entry, under the
 * mirrored lease's incarnation. Then each shard gets its name and its clock at R and is
 * compacted there: the copy's own member revisions are no history.
 */
import { KeyLoader } from '../backup/load-keys.js';
import type { KeyValue, RequestOp } from '../etcd/types.js';
import { encodeIncarnation, indexKey } from '../lease/keys.js';
import type { Router } from '../partition/router.js';
import { encodeClock } from '../shard/envelope.js';
import type { Keyspace } from '../shard/keyspace.js';
import { CLOCK_KEY } from '../shard/keyspace.js';
import { SHARD_ID_KEY } from '../shard/shard.js';
import { putOp } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';
import type { MemberLimits } from '../shard/writer.js';
import type { LeaseMirror } from './leases.js';
import type { ImportSource } from './source.js';

/** Keys per source read. */
const PAGE = 1000;

export interface CopyOptions {
  source: ImportSource;
  revision: bigint;
  router: Router;
  ks: Keyspace;
  shards: Array<{ name: string; upstream: Upstream }>;
  leases: LeaseMirror;
  limits: MemberLimits;
  onProgress(keys: number): void;
}

export interface CopyResult {
  keys: number;
  perShard: number[];
}

function nextKey(k: Buffer): Buffer {
  return Buffer.concat([k, Buffer.from([0])]);
}

export async function copyKeyspace(o: CopyOptions): Promise<CopyResult> {
  const loader = new KeyLoader(o.shards.map((s) => s.upstream), (k) => o.router.shardOf(k), o.ks, o.limits, false);
  const entries: RequestOp[][] = o.shards.map(() => []);
  const perShard = o.shards.map(() => 0);
  let keys = 0;
  let start: Buffer = Buffer.from([0]);
  for (;;) {
    const page = await o.source.upstream.range({ key: start, range_end: Buffer.from([0]), revision: o.revision.toString(), limit: String(PAGE) });
    const kvs: KeyValue[] = page.kvs;
    for (const kv of kvs) {
      if (!o.ks.writable(kv.key)) throw new Error(`source key ${kv.key.toString('hex')} lies in the proxy's reserved range`);
      const lease = BigInt(kv.lease);
      const shard = o.router.shardOf(kv.key);
      if (lease !== 0n) {
        const inc = await o.leases.incarnation(lease);
        entries[shard].push(putOp(indexKey(lease, o.ks.toMember(kv.key)), encodeIncarnation(inc)));
      }
      await loader.add({ key: kv.key, value: kv.value, create: BigInt(kv.create_revision), mod: BigInt(kv.mod_revision), version: BigInt(kv.version), lease });
      perShard[shard]++;
    }
    keys += kvs.length;
    o.onProgress(keys);
    if (!page.more || !kvs.length) break;
    start = nextKey(kvs[kvs.length - 1].key);
  }
  await loader.finish();
  const chunk = Math.max(1, o.limits.maxTxnOps - 1);
  await Promise.all(
    o.shards.map(async (s, i) => {
      const ops = entries[i];
      for (let at = 0; at < ops.length; at += chunk) await s.upstream.txn({ compare: [], success: ops.slice(at, at + chunk), failure: [] }, false);
      const res = await s.upstream.txn({ compare: [], success: [putOp(CLOCK_KEY, encodeClock(o.revision)), putOp(SHARD_ID_KEY, Buffer.from(s.name))], failure: [] }, false);
      // Everything before this member revision is the copy's traffic: not history.
      await s.upstream.compact({ revision: res.header?.revision ?? '0', physical: false });
    }),
  );
  return { keys, perShard };
}
