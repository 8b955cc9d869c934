/**
 * Where user keys and the proxy's system keys live inside a member cluster.
 *
 * User key k is stored as namespace ++ k. System keys sit at or above RESERVED (0xffffff),
 * outside every user range: with an empty namespace, user ranges are clipped below RESERVED
 * and user keys starting with 0xffffff are refused; with a namespace, user keys never leave it.
 */
export const RESERVED = Buffer.from([0xff, 0xff, 0xff]);
export const SYS_PREFIX = Buffer.concat([RESERVED, Buffer.from('metaproxy/')]);

export function sysKey(name: string): Buffer {
  return Buffer.concat([SYS_PREFIX, Buffer.from(name)]);
}

/**
 * The clock: in a member, the meta revision its shard stands at (the fence, DESIGN invariant 2);
 * in the coordinator, the last meta revision allocated. One key, the same bytes in both.
 */
export const CLOCK_KEY = sysKey('clock');

/** The smallest key greater than every key with this prefix; empty = no upper bound. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.alloc(0);
}

/** A member-side key range [start, end); end "\0" = unbounded (etcd's convention). */
export interface MemberRange {
  start: Buffer;
  end: Buffer;
}

export class Keyspace {
  private readonly nsEnd: Buffer;

  constructor(readonly namespace: Buffer = Buffer.alloc(0)) {
    this.nsEnd = namespace.length ? prefixEnd(namespace) : RESERVED;
  }

  /** True when a client may write this key (it cannot reach the reserved area). */
  writable(key: Buffer): boolean {
    return this.namespace.length > 0 || Buffer.compare(key, RESERVED) < 0;
  }

  /** True when a member key is a user key of this namespace (proxies of other namespaces may share the member). */
  owns(memberKey: Buffer): boolean {
    if (this.namespace.length === 0) return Buffer.compare(memberKey, RESERVED) < 0;
    return memberKey.length >= this.namespace.length && memberKey.subarray(0, this.namespace.length).equals(this.namespace);
  }

  toMember(key: Buffer): Buffer {
    return this.namespace.length ? Buffer.concat([this.namespace, key]) : key;
  }

  fromMember(key: Buffer): Buffer {
    return this.namespace.length ? key.subarray(this.namespace.length) : key;
  }

  /**
   * A client range (etcd's key/range_end convention: empty end = the key alone, "\0" = every key
   * from `key` on) as a member range, or null when it selects nothing a client may see.
   */
  toMemberRange(key: Buffer, rangeEnd: Buffer): MemberRange | null {
    if (rangeEnd.length === 0) {
      if (!this.writable(key)) return null;
      const k = this.toMember(key);
      return { start: k, end: Buffer.concat([k, Buffer.from([0])]) };
    }
    const start = this.toMember(key);
    let end = rangeEnd.length === 1 && rangeEnd[0] === 0 ? this.nsEnd : this.toMember(rangeEnd);
    if (this.nsEnd.length && (end.length === 0 || Buffer.compare(end, this.nsEnd) > 0)) end = this.nsEnd;
    if (end.length && Buffer.compare(start, end) >= 0) return null;
    // Unbounded is spelled "\0" on the wire: an empty range_end would mean the start key alone.
    return { start, end: end.length ? end : Buffer.from([0]) };
  }
}
