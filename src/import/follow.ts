/**
 * The second phase of an import: the source's watch from the revision after the last one
 * applied, every event written to its shard with its original revision (shard-applier.ts).
 * Responses are applied one after the other (shards in parallel within one); the stream is
 * paused while too many wait. A broken stream is reopened after the last revision received; a
 * source that compacted a revision the import still needs stops it with an error.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Router } from '../partition/router.js';
import type { Keyspace } from '../shard/keyspace.js';
import type { LeaseMirror } from './leases.js';
import { isDelete, memberWrite, type SourceEvent } from './member-writes.js';
import { ImportConflict, type RevisionWrites, type ShardApplier } from './shard-applier.js';
import { VersionDeltas } from './version-deltas.js';
import type { ImportSource } from './source.js';

interface SourceWatchResponse {
  created: boolean;
  canceled: boolean;
  cancel_reason: string;
  compact_revision: string;
  events: SourceEvent[];
}

const PAUSE_AT = 64;
const RESUME_AT = 16;

export interface FollowOptions {
  source: ImportSource;
  router: Router;
  ks: Keyspace;
  appliers: ShardApplier[];
  leases: LeaseMirror;
  log: Logger;
  /** Every source revision at or below it is applied. */
  applied: bigint;
  /** The revision the keyspace was copied at: keys created at or below it may carry a version delta. */
  copyRevision: bigint;
}

export class Follower {
  applied: bigint;
  /** Highest revision received (applied or queued). */
  private received: bigint;
  private queued = 0;
  private chain: Promise<void> = Promise.resolve();
  private stream: grpc.ClientDuplexStream<object, unknown> | null = null;
  private stopped = false;
  private until: bigint | null = null;
  private finish: ((err?: Error) => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Events applied. */
  events = 0;
  private readonly deltas: VersionDeltas;

  constructor(private readonly o: FollowOptions) {
    this.applied = o.applied;
    this.received = o.applied;
    this.deltas = new VersionDeltas(o.copyRevision, o.router, o.ks, o.appliers);
  }

  /** Follows until stop(), or until revision `until` is applied; rejects on a fatal error. */
  run(until: bigint | null = null): Promise<void> {
    this.until = until;
    return new Promise<void>((resolve, reject) => {
      this.finish = (err) => {
        this.finish = null;
        this.close();
        if (err) reject(err);
        else resolve();
      };
      if (until !== null && this.applied >= until) this.finish();
      else this.open();
    });
  }

  /** Stops reading; resolves run() once everything received is applied. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.close();
    void this.chain.then(() => this.finish?.());
  }

  private close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const s = this.stream;
    this.stream = null;
    if (s) {
      s.removeAllListeners();
      s.on('error', () => undefined);
      s.cancel();
    }
  }

  private fail(err: Error): void {
    this.finish?.(err);
  }

  private open(): void {
    if (this.stopped) return;
    const { stream } = this.o.source.upstream.openWatch();
    this.stream = stream;
    let alive = true;
    const restart = (why: string) => {
      if (!alive || this.stopped) return;
      alive = false;
      stream.removeAllListeners();
      stream.on('error', () => undefined);
      stream.cancel();
      this.o.log.warn({ from: (this.received + 1n).toString(), why }, 'source watch restarting');
      this.timer = setTimeout(() => this.open(), 500);
    };
    stream.on('data', (raw: unknown) => {
      const res = raw as SourceWatchResponse;
      if (res.canceled) {
        const compact = BigInt(res.compact_revision || '0');
        if (compact > 0n) {
          this.fail(new ImportConflict(`the source compacted its history at revision ${compact}, past revision ${this.received + 1n} the import needs: wipe the clusters and import again`));
          return;
        }
        restart(res.cancel_reason || 'canceled by the source');
        return;
      }
      const events = res.events.filter((e) => e.kv && BigInt(e.kv.mod_revision) > this.received);
      if (!events.length) return;
      this.received = BigInt(events[events.length - 1].kv!.mod_revision);
      this.queued++;
      if (this.queued >= PAUSE_AT) stream.pause();
      this.chain = this.chain
        .then(() => this.handle(events))
        .then(() => {
          this.queued--;
          if (this.queued <= RESUME_AT && this.stream === stream) stream.resume();
          if (this.until !== null && this.applied >= this.until) this.stop();
        })
        .catch((err: unknown) => {
          this.fail(err instanceof Error ? err : new Error(String(err)));
          // Nothing after a failed response may be applied.
          this.chain = new Promise<void>(() => undefined);
        });
    });
    stream.on('error', (err: Error) => restart(err.message));
    stream.on('end', () => restart('stream ended'));
    stream.write({ create_request: { key: Buffer.from([0]), range_end: Buffer.from([0]), start_revision: (this.received + 1n).toString(), prev_kv: true } });
  }

  /** Applies one response's events (whole revisions, in order). */
  private async handle(events: SourceEvent[]): Promise<void> {
    const perShard: RevisionWrites[][] = this.o.appliers.map(() => []);
    let last = this.applied;
    await this.deltas.load(events);
    for (const ev of events) {
      const kv = ev.kv!;
      const rev = BigInt(kv.mod_revision);
      if (!this.o.ks.writable(kv.key)) throw new ImportConflict(`source key ${kv.key.toString('hex')} (revision ${rev}) lies in the proxy's reserved range`);
      const lease = isDelete(ev) ? 0n : BigInt(kv.lease);
      const inc = lease !== 0n ? await this.o.leases.incarnation(lease) : 0n;
      const list = perShard[this.o.router.shardOf(kv.key)];
      let entry = list[list.length - 1];
      if (!entry || entry.rev !== rev) {
        entry = { rev, writes: [] };
        list.push(entry);
      }
      if (isDelete(ev)) this.deltas.forget(ev);
      entry.writes.push(memberWrite(ev, this.o.ks, inc, this.deltas.of(ev)));
      if (rev > last) last = rev;
    }
    await Promise.all(this.o.appliers.map((a, i) => a.apply(perShard[i])));
    this.events += events.length;
    this.applied = last;
  }
}
