/**
 * Writes restored (or imported) keys into member clusters, one member put per key whatever its
 * version. A key's meta `version` is its member's own count of puts since creation plus the
 * envelope's version delta (shard/envelope.ts, format 2), so the put's envelope carries
 * `version - 1`; with `resetVersions` every key is at version 1 (delta 0, format 1). (Before
 * format 2, a version v took v puts of the key.)
 */
import type { MemberLimits } from '../shard/writer.js';
import { encodeEnvelope } from '../shard/envelope.js';
import type { Keyspace } from '../shard/keyspace.js';
import { putOp } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';
import type { RequestOp } from '../etcd/types.js';
import type { SnapshotKey } from './format.js';

/** Keys (or bytes) buffered per shard before a chunk is written. */
const CHUNK_KEYS = 2000;
const CHUNK_BYTES = 16 * 1024 * 1024;
/** Room for the txn's own framing within the member's request limit. */
const TXN_MARGIN = 4096;
const PUT_OVERHEAD = 16;

interface Pending {
  key: Buffer;
  value: Buffer;
}

class ShardLoad {
  chunk: Pending[] = [];
  bytes = 0;
  keys = 0;
  /** Member txns sent for this shard. */
  txns = 0;
  inFlight: Promise<void> = Promise.resolve();

  constructor(readonly upstream: Upstream) {}
}

export class KeyLoader {
  private readonly loads: ShardLoad[];

  constructor(
    upstreams: Upstream[],
    private readonly shardOf: (key: Buffer) => number,
    private readonly ks: Keyspace,
    private readonly limits: MemberLimits,
    private readonly resetVersions: boolean,
  ) {
    this.loads = upstreams.map((u) => new ShardLoad(u));
  }

  /** Queues one key; resolves once there is room for more (at most two chunks per shard in memory). */
  async add(kv: SnapshotKey): Promise<void> {
    const load = this.loads[this.shardOf(kv.key)];
    const delta = this.resetVersions || kv.version < 1n ? 0n : kv.version - 1n;
    const p: Pending = { key: this.ks.toMember(kv.key), value: encodeEnvelope(kv.mod, kv.create, kv.lease, kv.value, delta) };
    load.chunk.push(p);
    load.bytes += p.key.length + p.value.length;
    load.keys++;
    if (load.chunk.length >= CHUNK_KEYS || load.bytes >= CHUNK_BYTES) await this.flush(load);
  }

  /** Writes everything still queued; returns keys and member txns per shard. */
  async finish(): Promise<Array<{ keys: number; txns: number }>> {
    for (const load of this.loads) await this.flush(load);
    await Promise.all(this.loads.map((l) => l.inFlight));
    return this.loads.map((l) => ({ keys: l.keys, txns: l.txns }));
  }

  private async flush(load: ShardLoad): Promise<void> {
    await load.inFlight;
    const chunk = load.chunk;
    load.chunk = [];
    load.bytes = 0;
    if (!chunk.length) return;
    load.inFlight = this.write(load, chunk);
    // Handled here so a failure while reading on is not an unhandled rejection; the next
    // flush or finish() awaits it and throws.
    load.inFlight.catch(() => undefined);
  }

  private async write(load: ShardLoad, chunk: Pending[]): Promise<void> {
    const ops = chunk.map((p) => ({ op: putOp(p.key, p.value), size: p.key.length + p.value.length + PUT_OVERHEAD }));
    for (const txn of this.split(ops)) {
      await load.upstream.txn({ compare: [], success: txn, failure: [] }, false);
      load.txns++;
    }
  }

  /** Member txns within the members' --max-txn-ops and --max-request-bytes. */
  private split(ops: Array<{ op: RequestOp; size: number }>): RequestOp[][] {
    const out: RequestOp[][] = [];
    let cur: RequestOp[] = [];
    let size = 0;
    const maxBytes = Math.max(1, this.limits.maxRequestBytes - TXN_MARGIN);
    for (const o of ops) {
      if (cur.length && (cur.length >= this.limits.maxTxnOps || size + o.size > maxBytes)) {
        out.push(cur);
        cur = [];
        size = 0;
      }
      cur.push(o.op);
      size += o.size;
    }
    if (cur.length) out.push(cur);
    return out;
  }
}
