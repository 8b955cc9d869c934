/**
 * Turns one member's watch events into meta events (DESIGN "Watch path").
 *
 * Every member txn the proxy sends puts the shard clock first. A write batch (shard/writer.ts)
 * then carries, per client write, that write's events followed by a put of its `rev/<slot>`
 * marker, whose value is the write's meta revision: the marker names the revision of the events
 * before it (deletes carry no envelope, so the marker is the only way to know theirs). A fence
 * write puts the clock alone. Once a member revision has been read whole, the shard's watermark
 * is its clock value: no later event of this shard can have a meta revision at or below it.
 */
import type { KeyValue } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import { decodeClock } from '../shard/envelope.js';
import type { Keyspace } from '../shard/keyspace.js';
import { RESERVED, SYS_PREFIX, sysKey } from '../shard/keyspace.js';
import { fromMember, toWire } from '../shard/meta-kv.js';
import { CLOCK_KEY } from '../shard/shard.js';
import type { MetaEvent } from './event.js';
import { EventType, eventSize } from './event.js';

const MARKER_PREFIX = sysKey('rev/');

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
  /** User events no marker claimed (written to the member by something other than a proxy). */
  orphans: number;
}

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

export class ShardDecoder {
  private pending: MetaEvent[] = [];
  private groupRev = 0n;
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
        orphans += this.closeGroup();
        this.groupRev = rev;
      }
      memberRev = rev;
      const key = kv.key;
      if (startsWith(key, SYS_PREFIX)) {
        if (ev.type !== EventType.PUT) continue;
        if (key.equals(CLOCK_KEY)) {
          const c = decodeClock(kv.value);
          if (c > this.groupClock) this.groupClock = c;
        } else if (startsWith(key, MARKER_PREFIX)) {
          const metaRev = decodeClock(kv.value);
          for (const e of this.pending) {
            e.rev = metaRev;
            e.kv.mod_revision = e.type === EventType.DELETE ? wire64(metaRev) : e.kv.mod_revision;
            if (metaRev > this.floor) out.push(e);
          }
          this.pending = [];
        }
        continue;
      }
      if (!this.owns(key)) continue;
      this.pending.push(this.metaEvent(ev, kv));
    }
    orphans += this.closeGroup();
    return { events: out, watermark: this.watermark, memberRev, orphans };
  }

  private owns(key: Buffer): boolean {
    return this.ks.namespace.length ? startsWith(key, this.ks.namespace) : key.compare(RESERVED) < 0;
  }

  private closeGroup(): number {
    const orphans = this.pending.length;
    this.pending = [];
    if (this.groupClock > this.watermark) this.watermark = this.groupClock;
    this.groupClock = 0n;
    return orphans;
  }

  private metaEvent(ev: MemberEvent, kv: KeyValue): MetaEvent {
    const prev = ev.prev_kv ? toWire(fromMember(ev.prev_kv, this.ks)) : null;
    if (ev.type === EventType.DELETE) {
      const key = Buffer.from(this.ks.fromMember(kv.key));
      const wire: KeyValue = { key, create_revision: wire64(0n), mod_revision: wire64(0n), version: wire64(0n), value: Buffer.alloc(0), lease: wire64(0n) };
      return { type: EventType.DELETE, rev: 0n, shard: this.shard, key, kv: wire, prevKv: prev, size: eventSize(wire, prev) };
    }
    const meta = fromMember(kv, this.ks);
    const wire = toWire(meta);
    return { type: EventType.PUT, rev: meta.mod, shard: this.shard, key: meta.key, kv: wire, prevKv: prev, size: eventSize(wire, prev) };
  }
}
