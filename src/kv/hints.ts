/**
 * Recently seen key states, to skip the state read before a write. A hint is only a guess:
 * every write is pinned to the member mod revision it assumed, so a stale hint costs a retry
 * (the member returns the real state), never a wrong result. Bounded by entries and bytes.
 * (The per-shard cache of the cache issue will supersede this.)
 */
import type { MetaKV } from '../shard/meta-kv.js';

export class StateHints {
  private readonly map = new Map<string, MetaKV | null>();
  private bytes = 0;

  constructor(
    private readonly maxEntries = 50_000,
    private readonly maxBytes = 32 * 1024 * 1024,
  ) {}

  /** undefined: nothing known; null: known absent. */
  get(memberKey: string): MetaKV | null | undefined {
    const v = this.map.get(memberKey);
    if (v === undefined) return undefined;
    // Refresh recency (Map keeps insertion order).
    this.map.delete(memberKey);
    this.map.set(memberKey, v);
    return v;
  }

  /**
   * `readAt`: the member revision a read saw this state at. A hint left by a write the member
   * applied later stays (reads of a key on its owner may overlap its writes).
   */
  set(memberKey: string, kv: MetaKV | null, readAt?: bigint): void {
    if (readAt !== undefined && (this.map.get(memberKey)?.memberMod ?? 0n) > readAt) return;
    this.remove(memberKey);
    this.map.set(memberKey, kv && own(kv));
    this.bytes += memberKey.length + (kv ? kv.value.length + kv.key.length + 64 : 16);
    while (this.map.size > this.maxEntries || this.bytes > this.maxBytes) {
      const oldest = this.map.keys().next().value as string;
      this.remove(oldest);
    }
  }

  /** Forgets every key in [start, end) (latin1 member keys; end "\0" = unbounded). */
  forgetRange(start: string, end: string): void {
    const unbounded = end === '\u0000';
    for (const k of [...this.map.keys()]) if (k >= start && (unbounded || k < end)) this.remove(k);
  }

  private remove(memberKey: string): void {
    const old = this.map.get(memberKey);
    if (old === undefined) return;
    this.map.delete(memberKey);
    this.bytes -= memberKey.length + (old ? old.value.length + old.key.length + 64 : 16);
  }
}

/**
 * The hint with its key and value copied into memory of their own. They are often slices of a
 * request's message or of Node's shared 8 KiB buffer pool: a hint kept for a long time would
 * pin that whole message or pool slab (8 KiB per hinted key when writes are spread over many
 * keys, far above the bytes counted here).
 */
function own(kv: MetaKV): MetaKV {
  const buf = Buffer.allocUnsafeSlow(kv.key.length + kv.value.length);
  kv.key.copy(buf, 0);
  kv.value.copy(buf, kv.key.length);
  // A put chain's earlier puts (meta-kv.ts) matter only to reads at past revisions: not kept.
  const { key, create, mod, version, lease, memberMod, delta } = kv;
  return { key: buf.subarray(0, key.length), create, mod, version, lease, value: buf.subarray(key.length), memberMod, ...(delta !== undefined ? { delta } : {}) };
}
