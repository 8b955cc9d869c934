/**
 * What a running proxy keeps in the coordinator, written back when the coordinator comes back
 * empty (wiped, or a tmpfs coordinator that restarted) while proxies run: the partition map,
 * the compaction record (at the highest compaction this proxy saw, so reads below it stay
 * refused) and the clock (rebuilt from the shards' clocks plus a gap, clock/allocator.ts).
 * Registrations come back on their own (membership/registration.ts); leases kept only in the
 * coordinator are lost with it. A coordinator watch of the records notices the loss even when
 * nobody writes (a wiped coordinator breaks the watch stream, and its reconnection triggers a
 * check); while that watch is down a poll does, and one runs every RECHECK_MS anyway. A clock
 * rebuilt by a write triggers the same restore.
 */
import type { Logger } from 'pino';
import type { ClockAllocator } from '../clock/allocator.js';
import { CLOCK_KEY } from '../shard/keyspace.js';
import { COMPACT_KEY, encodeCompacted } from '../kv/store.js';
import type { PartitionMap } from '../partition/map.js';
import { mapMismatch, parsePartitionMap } from '../partition/map.js';
import { PARTITION_MAP_KEY } from '../partition/map-record.js';
import { createIfAbsent, rangeOp } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';
import { ChangeWatch } from '../upstream/change-watch.js';

export const RECORDS_CHECK_INTERVAL_MS = 2000;
/** How often the records are checked while the watch reports nothing. */
const RECHECK_MS = 10_000;

export class CoordinatorRecords {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly changes: ChangeWatch;
  private checkedAt = 0;

  constructor(
    private readonly coordinator: Upstream,
    private readonly clock: ClockAllocator,
    private readonly map: PartitionMap,
    /** The highest compaction this proxy saw (kv/store.ts). */
    private readonly compaction: { readonly compactedRevision: bigint },
    private readonly log: Logger,
    private readonly intervalMs = RECORDS_CHECK_INTERVAL_MS,
  ) {
    clock.onRebuilt((r) => {
      this.log.warn(
        { previous: r.previous.toString(), rebuilt: r.rebuilt.toString(), jump: r.jump.toString() },
        `coordinator clock rebuilt from the shards' clocks: revisions jump by ${r.jump} (from ${r.previous} to ${r.rebuilt})`,
      );
      void this.check();
    });
    this.changes = new ChangeWatch(
      coordinator,
      [{ key: PARTITION_MAP_KEY }, { key: COMPACT_KEY }],
      {
        onChanges: (evs) => {
          if (evs.some((e) => e.deleted)) void this.check();
        },
        onReconnect: () => void this.check(),
      },
      log,
      'coordinator records',
    );
  }

  start(): void {
    this.changes.start();
    this.timer = setInterval(() => {
      if (!this.changes.live || Date.now() - this.checkedAt >= RECHECK_MS) void this.check();
    }, this.intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.changes.close();
  }

  /** Writes back whichever record is missing (one at a time; errors are retried by the poll). */
  check(): Promise<void> {
    this.checkedAt = Date.now();
    this.running ??= this.restore()
      .catch((err: unknown) => this.log.debug({ err: (err as Error).message }, 'coordinator records check failed'))
      .finally(() => (this.running = null));
    return this.running;
  }

  private async restore(): Promise<void> {
    const res = await this.coordinator.txn(
      { compare: [], success: [rangeOp(PARTITION_MAP_KEY), rangeOp(COMPACT_KEY), rangeOp(CLOCK_KEY)], failure: [] },
      true,
    );
    const has = res.responses.map((r) => (r.response_range?.kvs.length ?? 0) > 0);
    if (has.every(Boolean)) return;
    const restored: string[] = [];
    if (!has[0]) {
      const existing = await createIfAbsent(this.coordinator, PARTITION_MAP_KEY, Buffer.from(JSON.stringify(this.map)));
      if (existing === null) restored.push('partition map');
      else {
        const why = mapMismatch(parsePartitionMap(existing), this.map);
        if (why) this.log.error({ why }, 'the coordinator now records a different partition map than the one this proxy routes by');
      }
    }
    if (!has[1]) {
      const compacted = this.compaction.compactedRevision;
      if ((await createIfAbsent(this.coordinator, COMPACT_KEY, encodeCompacted(compacted))) === null) restored.push(`compaction record (${compacted})`);
    }
    // The clock last: its rebuild reads every shard.
    if (!has[2]) await this.clock.ensure();
    if (restored.length) this.log.warn({ restored }, `the coordinator came back without the proxy's records: rewrote ${restored.join(', ')}`);
  }
}
