/**
 * Turns one member's watch events into meta events (DESIGN "Watch path").
 *
 * Every member txn the proxy sends puts the shard clock first, so the clock event opens each
 * member revision; its value is the batch's last meta revision. A put's envelope names its own
 * meta revision. A delete carries no envelope, but a write that deletes closes its batch
 * (shard/writer.ts), so every delete of a member revision belongs to the batch's last revision:
 * the clock's value. No per-write marker is needed. A fence write puts the clock alone. Once a
 * member revision has been read whole, the shard's watermark is its clock value: no later event
 * of this shard can have a meta revision at or below it. User events in a member revision that
 * did not start with the clock were written by something other than a proxy and are ignored.
 * (Older proxies also put a `rev/<slot>` marker after each write; it is a system key, ignored.)
 */
import type { KeyValue } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import { decodeClock } from '../shard/envelope.js';
import type { Keyspace } from '../shard/keyspace.js';
import { RESERVED, SYS_PREFIX, CLOCK_KEY } from '../shard/keyspace.js';
import { chainStateAt, fromMemberView, toWire } from '../shard/meta-kv.js';
import type { MetaKV } from '../shard/meta-kv.js';
import type { MetaEvent } from './event.js';
import { EventType, eventSize } from './event.js';

/** A member watch event as proto-loader decodes it. */
export interface MemberEvent {
  type: number;
  kv: KeyValue | null;
  prev_kv: KeyValue | null;
}

export interface Decoded {
  events: MetaEvent[];
  /** The shard's watermark after these events (unchanged when no clock was seen). */
  watermark: bigint;
  /** The last member revision seen (0n when none). */
  memberRev: bigint;
  /** User events of member revisions the proxy did not write (no clock put opened them). */
  orphans: number;
}

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

export class ShardDecoder {
  /** The member watch was opened with prev_kv (else events leave prevKv to be filled: prevUnknown). */
  prevFromMember = true;
  private groupRev = 0n;
  /** The clock value that opened the current member revision (0n: none, not a proxy's write). */
  private groupClock = 0n;

  /**
   * `floor`: meta events at or below it are dropped (a history read that starts inside a batch).
   * `watermark`: the shard's clock where the member watch starts.
   */
  constructor(
    private readonly ks: Keyspace,
    public watermark: bigint,
    private readonly floor = 0n,
    private readonly shard = 0,
  ) {}

  /** Decodes one watch response's events; a member revision is never split across responses. */
  decode(events: MemberEvent[]): Decoded {
    const out: MetaEvent[] = [];
    let orphans = 0;
    let memberRev = 0n;
    for (const ev of events) {
      const kv = ev.kv;
      if (!kv) continue;
      const rev = BigInt(kv.mod_revision);
      if (rev !== this.groupRev) {
        this.closeGroup();
        this.groupRev = rev;
      }
      memberRev = rev;
      const key = kv.key;
      if (startsWith(key, SYS_PREFIX)) {
        if (ev.type === EventType.PUT && key.equals(CLOCK_KEY)) {
          const c = decodeClock(kv.value);
          if (c > this.groupClock) this.groupClock = c;
        }
        continue;
      }
      if (!this.owns(key)) continue;
      if (this.groupClock === 0n) {
        orphans++;
        continue;
      }
      this.pushEvents(out, ev, kv, this.groupClock);
    }
    this.closeGroup();
    return { events: out, watermark: this.watermark, memberRev, orphans };
  }

  private owns(key: Buffer): boolean {
    return this.ks.namespace.length ? startsWith(key, this.ks.namespace) : key.compare(RESERVED) < 0;
  }

  private closeGroup(): void {
    if (this.groupClock > this.watermark) this.watermark = this.groupClock;
    this.groupClock = 0n;
  }

  /**
   * `batchRev`: the member revision's clock, the revision of its deletes. A put that applied a
   * chain (envelope.ts) is one event per put of the chain, each the previous one's prev_kv.
   */
  private pushEvents(out: MetaEvent[], ev: MemberEvent, kv: KeyValue, batchRev: bigint): void {
    // Views into the member's message: ownBytes() copies what the event keeps.
    let prev = ev.prev_kv ? toWire(fromMemberView(ev.prev_kv, this.ks)) : null;
    const unknown = this.prevFromMember ? {} : { prevUnknown: true as const };
    if (ev.type === EventType.DELETE) {
      const key = Buffer.from(this.ks.fromMember(kv.key));
      const wire: KeyValue = { key, create_revision: wire64(0n), mod_revision: wire64(batchRev), version: wire64(0n), value: Buffer.alloc(0), lease: wire64(0n) };
      if (batchRev > this.floor) out.push(ownBytes({ type: EventType.DELETE, rev: batchRev, shard: this.shard, key, kv: wire, prevKv: prev, size: eventSize(wire, prev), ...unknown }));
      return;
    }
    const meta = fromMemberView(kv, this.ks);
    const put = (state: MetaKV) => {
      const wire = toWire(state);
      if (state.mod > this.floor) out.push(ownBytes({ type: EventType.PUT, rev: state.mod, shard: this.shard, key: meta.key, kv: wire, prevKv: prev, size: eventSize(wire, prev), ...unknown }));
      prev = wire;
    };
    // A chain's earlier puts first (rare: only a hot key's blind puts make them).
    for (const e of meta.chain ?? []) put(chainStateAt(meta, e.rev) as MetaKV);
    put(meta);
  }
}

/** Events up to this size get one allocation for all their bytes. */
const ONE_ALLOCATION = 16 * 1024;

/**
 * The event with its keys and values in memory of their own. Decoding copies them with
 * Buffer.from, which hands out slices of Node's shared 8 KiB pool; events stay in the history
 * (and in held events) long after, and one slice keeps its whole slab alive, with every
 * short-lived buffer that was allocated next to it (measured in the soak: ~20 MiB of slabs for
 * a history of 3,000 events of ~600 bytes). Small events get one allocation; in bigger ones a
 * part that already owns its memory is kept as is.
 */
function ownBytes(e: MetaEvent): MetaEvent {
  const kv = e.kv;
  const prev = e.prevKv;
  const size = kv.key.length + kv.value.length + (prev ? prev.key.length + prev.value.length : 0);
  let take: (b: Buffer) => Buffer;
  if (size <= ONE_ALLOCATION) {
    const buf = Buffer.allocUnsafeSlow(size);
    let at = 0;
    take = (b) => {
      const out = buf.subarray(at, at + b.length);
      b.copy(buf, at);
      at += b.length;
      return out;
    };
  } else {
    take = (b) => (b.byteOffset === 0 && b.length === b.buffer.byteLength ? b : Buffer.from(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)));
  }
  const key = take(kv.key);
  return {
    ...e,
    key,
    kv: { ...kv, key, value: take(kv.value) },
    prevKv: prev ? { ...prev, key: take(prev.key), value: take(prev.value) } : null,
  };
}
