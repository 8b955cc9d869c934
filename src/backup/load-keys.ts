/**
 * Writes restored keys into member clusters. A key's meta `version` is its member's own count of
 * puts since creation plus the envelope's version delta (shard/envelope.ts), so a key is written
 * in one of three ways (`VersionMode`):
 * - `delta`: one put, its envelope saying how far the meta version is ahead (format 2); exact,
 *   whatever the version. What `restore` does.
 * - `puts`: v puts of the key, so that the member's own count is the version (format 1): keys are
 *   loaded in chunks, and round i of a chunk puts every key of the chunk whose version is at least
 *   i (one key at most once per member txn, as etcd requires). `import` needs this: its follow
 *   phase writes the source's later puts in format 1, counting on the member's version.
 * - `reset`: one put, version 1.
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

export type VersionMode = 'delta' | 'puts' | 'reset';

interface Pending {
  key: Buffer;
  value: Buffer;
  /** Member puts of the key: its member version. */
  puts: bigint;
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
    private readonly versions: VersionMode,
  ) {
    this.loads = upstreams.map((u) => new ShardLoad(u));
  }

  /** Queues one key; resolves once there is room for more (at most two chunks per shard in memory). */
  async add(kv: SnapshotKey): Promise<void> {
    const load = this.loads[this.shardOf(kv.key)];
    const version = this.versions === 'reset' || kv.version < 1n ? 1n : kv.version;
    const delta = this.versions === 'delta' ? version - 1n : 0n;
    const p: Pending = {
      key: this.ks.toMember(kv.key),
      value: encodeEnvelope(kv.mod, kv.create, kv.lease, kv.value, delta),
      puts: version - delta,
    };
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
    const rounds = chunk.reduce((m, p) => (p.puts > m ? p.puts : m), 1n);
    for (let round = 1n; round <= rounds; round++) {
      const ops = chunk.filter((p) => p.puts >= round).map((p) => ({ op: putOp(p.key, p.value), size: p.key.length + p.value.length + PUT_OVERHEAD }));
      for (const txn of this.split(ops)) {
        await load.upstream.txn({ compare: [], success: txn, failure: [] }, false);
        load.txns++;
      }
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
