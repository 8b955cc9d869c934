/**
 * Routes keys to shards: xxhash64(routing bytes) mod partitions -> partition -> owning shard.
 * The routing bytes are the whole key, or with routingPrefixSegments = N the key up to and
 * including its Nth '/', so that related keys share a shard (and a transaction).
 */
import { hash64 } from './hash.js';
import type { PartitionMap } from './map.js';

const SLASH = 0x2f;

export class Router {
  constructor(private readonly map: PartitionMap) {}

  get shardCount(): number {
    return this.map.shards.length;
  }

  /** The routing prefix of a key, or null when it has fewer than N slashes (hashed whole). */
  routingPrefix(key: Buffer): Buffer | null {
    const n = this.map.routingPrefixSegments;
    if (n === 0) return null;
    let seen = 0;
    for (let i = 0; i < key.length; i++) {
      if (key[i] === SLASH && ++seen === n) return key.subarray(0, i + 1);
    }
    return null;
  }

  partitionOf(key: Buffer): number {
    const bytes = this.routingPrefix(key) ?? key;
    return Number(hash64(bytes) % BigInt(this.map.partitions));
  }

  shardOf(key: Buffer): number {
    return this.map.owner[this.partitionOf(key)];
  }

  /**
   * Shards that can hold keys in the client range [key, rangeEnd) (etcd conventions: empty end
   * = the key alone, "\0" = unbounded). A range inside one routing prefix has one shard.
   */
  shardsForRange(key: Buffer, rangeEnd: Buffer): number[] {
    if (rangeEnd.length === 0) return [this.shardOf(key)];
    const prefix = this.routingPrefix(key);
    const unbounded = rangeEnd.length === 1 && rangeEnd[0] === 0;
    if (prefix && !unbounded && withinPrefix(prefix, rangeEnd)) return [this.shardOf(key)];
    return Array.from({ length: this.map.shards.length }, (_, i) => i);
  }
}

/** True when every key below `end` that is >= a key starting with `prefix` also starts with it. */
function withinPrefix(prefix: Buffer, end: Buffer): boolean {
  // end <= prefixEnd(prefix)  <=>  end starts with prefix, or end == prefixEnd(prefix).
  if (end.length >= prefix.length && end.subarray(0, prefix.length).equals(prefix)) return true;
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] < 0xff) {
      const pe = Buffer.from(prefix.subarray(0, i + 1));
      pe[i]++;
      return Buffer.compare(end, pe) <= 0;
    }
  }
  return true;
}
