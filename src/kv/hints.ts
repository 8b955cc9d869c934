/**
 * Recently seen key states, to skip the state read before a write. A hint is only a guess:
 * every write is pinned to the member mod revision it assumed, so a stale hint costs a retry
 * (the member returns the real state), never a wrong result. Bounded by entries and bytes.
 *
 * A hint the shard's owner left with its own applied write carries the writer's generation
 * (shard/writer.ts `generation`): while that generation lasts, the hint is the key's exact
 * state, which lets a txn that writes nothing be answered without a member read
 * (kv/owner-answer.ts). Any other hint (a read's, a reap's) carries none.
 */
import type { MetaKV } from '../shard/meta-kv.js';

interface Hint {
  kv: MetaKV | null;
  /** The owner's writer generation the hint is exact for (undefined: a guess). */
  exact?: number;
}

export class StateHints {
  private readonly map = new Map<string, Hint>();
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
    return v.kv;
  }

  /**
   * Whether `kv` (the very object get() returned, or null) is still the hint for the key and
   * exact for writer generation `generation`.
   */
  isExact(memberKey: string, kv: MetaKV | null, generation: number): boolean {
    const h = this.map.get(memberKey);
    return h !== undefined && h.exact === generation && h.kv === kv;
  }

  /**
   * `readAt`: the member revision a read saw this state at. A hint left by a write the member
   * applied later stays (reads of a key on its owner may overlap its writes). `exact`: the
   * owner's writer generation, for a state its own applied write left.
   */
  set(memberKey: string, kv: MetaKV | null, readAt?: bigint, exact?: number): void {
    if (readAt !== undefined && (this.map.get(memberKey)?.kv?.memberMod ?? 0n) > readAt) return;
    this.remove(memberKey);
    this.map.set(memberKey, { kv: kv && own(kv), exact });
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
    this.bytes -= memberKey.length + (old.kv ? old.kv.value.length + old.kv.key.length + 64 : 16);
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
