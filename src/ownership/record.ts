/**
 * Shard ownership records in the coordinator: `owner/<namespace hex>/<shard name>` = {id, url}, attached to the
 * owner's ownership lease. The key's create revision is the owner's *epoch*: coordinator
 * revisions only grow, so every new owner of a shard has a higher epoch than the one before.
 */
import type { KeyValue } from '../etcd/types.js';
import { prefixEnd, sysKey } from '../shard/keyspace.js';

/** The owner records of one namespace (hex) : proxies of several namespaces may share a coordinator. */
export function ownerPrefix(namespace: Buffer): Buffer {
  return sysKey(`owner/${namespace.toString('hex')}/`);
}

export function ownerRange(namespace: Buffer): { key: Buffer; range_end: Buffer } {
  const key = ownerPrefix(namespace);
  return { key, range_end: prefixEnd(key) };
}

export function ownerKey(namespace: Buffer, shard: string): Buffer {
  return Buffer.concat([ownerPrefix(namespace), Buffer.from(shard)]);
}

/** A replica, as other replicas reach it. */
export interface ReplicaRef {
  /** The replica's member id (membership/). */
  id: string;
  /** Where it serves forwarded writes (its client URL unless configured). */
  url: string;
}

export interface OwnerRecord extends ReplicaRef {
  shard: string;
  epoch: bigint;
  /** The coordinator lease the record lives under (tells a replica's restarts apart). */
  lease: bigint;
}

export function encodeOwner(ref: ReplicaRef): Buffer {
  return Buffer.from(JSON.stringify({ id: ref.id, url: ref.url }));
}

/** Null for a record that is not ours to read (garbage is ignored, never trusted). */
export function decodeOwner(kv: KeyValue, prefix: Buffer): OwnerRecord | null {
  try {
    const v = JSON.parse(kv.value.toString()) as Partial<ReplicaRef>;
    if (typeof v.id !== 'string' || typeof v.url !== 'string') return null;
    return {
      shard: kv.key.subarray(prefix.length).toString(),
      id: v.id,
      url: v.url,
      epoch: BigInt(kv.create_revision),
      lease: BigInt(kv.lease),
    };
  } catch {
    return null;
  }
}
