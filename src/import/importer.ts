/**
 * `etcd-metaproxy import`: a plain etcd's keyspace into empty meta-cluster clusters, keeping
 * every revision, then (with --follow) the source's later writes with their own revisions, so
 * clients can move over with revisions that never go back. docs/ARCHITECTURE.md "Import".
 *
 * Order:
 *  1. the clusters must be empty (or hold this source's earlier import, see below);
 *  2. one coordinator txn claims the partition-map key with the import marker (proxies refuse
 *     to start on it: the importer is the members' only writer) and records the import;
 *  3. the keyspace is copied at the source's current revision R (copy.ts);
 *  4. the source's watch from R+1 is applied until stopped (follow.ts), progress recorded;
 *  5. one coordinator txn sets the clock to the last revision applied, the compaction record
 *     to R and the real partition map.
 * A restart finds the record: an import stopped in step 4 (killed) or finished (step 5, while
 * no proxy has written since) goes on from the revision recorded; one interrupted during the
 * copy has its partial copy cleared (wipe.ts) and copies again.
 */
import type { Logger } from 'pino';
import { CLOCK_KEY, Keyspace, prefixEnd, RESERVED } from '../shard/keyspace.js';
import type { ProxyConfig, UpstreamTls } from '../config/types.js';
import { CompareResult, CompareTarget, type Compare, type KeyValue } from '../etcd/types.js';
import { COMPACT_KEY, encodeCompacted } from '../kv/store.js';
import { PROXIES_PREFIX } from '../membership/records.js';
import { initHash } from '../partition/hash.js';
import { defaultPartitionMap, mapMismatch, parsePartitionMap, type PartitionMap } from '../partition/map.js';
import { Router } from '../partition/router.js';
import { PARTITION_MAP_KEY } from '../partition/map-record.js';
import { decodeClock, encodeClock } from '../shard/envelope.js';
import { cmp, putOp, rangeOp } from '../upstream/ops.js';
import { Upstream } from '../upstream/upstream.js';
import { copyKeyspace } from './copy.js';
import { Follower } from './follow.js';
import { LeaseMirror } from './leases.js';
import { decodeRecord, encodeRecord, IMPORT_KEY, importMarker, isImportMarker, type ImportRecord } from './record.js';
import { ShardApplier } from './shard-applier.js';
import { wipePartialCopy } from './wipe.js';
import { ImportSource } from './source.js';

/** The clusters or the source are not fit for an import (not empty, another source, ...). */
export class ImportRefused extends Error {
  override readonly name = 'ImportRefused';
}

/** What the importer reports as it goes (progress lines). */
export interface ImportProgress {
  /** A line that replaces the previous progress line on a terminal. */
  status(text: string): void;
  /** A line that stays. */
  note(text: string): void;
}

export interface ImportOptions {
  config: ProxyConfig;
  logger: Logger;
  from: string[];
  tls: UpstreamTls;
  follow: boolean;
  progress: ImportProgress;
  /** Aborted on SIGINT/SIGTERM: the import stops following and finishes. */
  signal: AbortSignal;
}

export interface ImportResult {
  copyRevision: bigint;
  /** Keys copied (0 when an earlier import was resumed). */
  keys: number;
  resumed: boolean;
  /** The last source revision applied: the meta clock. */
  revision: bigint;
  events: number;
  copySeconds: number;
}

const ALL = Buffer.from([0]);
const PROGRESS_MS = 1000;
const QUIET_MS = 30_000;

async function keyCount(up: Upstream): Promise<bigint> {
  const res = await up.range({ key: ALL, range_end: ALL, count_only: true });
  return BigInt(res.count);
}

async function readKey(up: Upstream, key: Buffer): Promise<KeyValue | null> {
  const res = await up.range({ key });
  return res.kvs[0] ?? null;
}

const valueIs = (key: Buffer, value: Buffer): Compare => cmp(CompareTarget.VALUE, CompareResult.EQUAL, key, { value });
const absent = (key: Buffer): Compare => cmp(CompareTarget.CREATE, CompareResult.EQUAL, key, { create_revision: '0' });

export async function runImport(o: ImportOptions): Promise<ImportResult> {
  const cfg = o.config;
  const log = o.logger;
  await initHash();
  const timeout = cfg.timeouts.requestMs;
  const coordinator = new Upstream({ name: 'coordinator', endpoints: cfg.coordinator.endpoints, requestTimeoutMs: timeout, tls: cfg.coordinator.tls });
  const shards = cfg.shards.map((s) => ({ name: s.name, upstream: new Upstream({ name: s.name, endpoints: s.endpoints, requestTimeoutMs: timeout, tls: s.tls }) }));
  const source = new ImportSource({ endpoints: o.from, tls: o.tls, requestTimeoutMs: timeout });
  const ks = new Keyspace(Buffer.from(cfg.namespace, 'latin1'));
  const map: PartitionMap = defaultPartitionMap(cfg.partitions, cfg.routingPrefixSegments, cfg.shards.map((s) => s.name));
  const router = new Router(map);
  const leases = new LeaseMirror(source, coordinator, ks.namespace, log);
  let syncTimer: NodeJS.Timeout | null = null;
  let syncing: Promise<void> | null = null;
  try {
    const head = await source.head().catch((err: unknown) => {
      throw new ImportRefused(`the source ${o.from.join(',')} cannot be read: ${(err as Error).message}`);
    });
    if (ks.namespace.length === 0) {
      // Refused before anything is written (a key written later stops the follow instead).
      const reserved = await source.upstream.range({ key: RESERVED, range_end: ALL, revision: head.revision.toString(), count_only: true });
      if (BigInt(reserved.count) > 0n) {
        throw new ImportRefused(`the source holds ${reserved.count} keys from 0xffffff on, the proxy's reserved range: configure a namespace`);
      }
    }
    const claim = await claimClusters(coordinator, shards.map((s) => s.upstream), { clusterId: head.clusterId, from: o.from, sourceRev: head.revision, map, namespace: cfg.namespace });
    let marker = claim.marker;
    let record = claim.record;
    const persist = async (next: ImportRecord): Promise<void> => {
      const res = await coordinator.txn({ compare: [valueIs(PARTITION_MAP_KEY, marker)], success: [putOp(IMPORT_KEY, encodeRecord(next))], failure: [] }, false);
      if (!res.succeeded) throw new ImportRefused('the import marker in the coordinator changed under the import (another import, or a wipe)');
      record = next;
    };

    let keys = 0;
    let copySeconds = 0;
    if (!claim.resumed) {
      const R = head.revision;
      if (claim.restarted) o.progress.note('import: an earlier import was interrupted while copying: its partial copy was cleared');
      o.progress.note(`import: copying the keyspace of ${o.from.join(',')} (cluster ${head.clusterId}) at revision ${R}`);
      const started = Date.now();
      const copied = await copyKeyspace({
        source,
        revision: R,
        router,
        ks,
        shards,
        leases,
        limits: cfg.memberLimits,
        onProgress: (n) => o.progress.status(`import: copied ${n} keys (${rate(n, started)} keys/s)`),
      });
      copySeconds = (Date.now() - started) / 1000;
      keys = copied.keys;
      const perShard = copied.perShard.map((n, i) => `${shards[i].name} ${n}`).join(', ');
      o.progress.note(`import: copied ${keys} keys at revision ${R} in ${copySeconds.toFixed(1)} s (${rate(keys, started)} keys/s; ${perShard}; ${leases.live} leases)`);
      await persist({ ...record, phase: 'follow', applied: R.toString(), updatedAt: new Date().toISOString() });
      // Leases no key was attached to at R come over too.
      await leases.sync();
    } else {
      o.progress.note(`import: resuming the import of ${o.from.join(',')} (cluster ${head.clusterId}) after revision ${record.applied}`);
    }

    const applied = BigInt(record.applied);
    const appliers = await Promise.all(shards.map((s) => ShardApplier.open(s.name, s.upstream, cfg.memberLimits)));
    const follower = new Follower({ source, router, ks, appliers, leases, log, applied, copyRevision: BigInt(record.copyRevision) });
    // Without --follow, an import that resumes catches up with the source as it was at start.
    const until = o.follow ? null : head.revision;
    if (until === null || applied < until) {
      await leases.sync();
      syncTimer = setInterval(() => {
        if (syncing) return;
        syncing = leases
          .sync()
          .catch((err: unknown) => log.warn({ err }, 'lease mirror sync failed'))
          .finally(() => (syncing = null));
      }, PROGRESS_MS);
      const started = Date.now();
      let sourceRev = head.revision;
      let lastPersisted = applied;
      let busy: Promise<void> | null = null;
      let shown = '';
      let shownAt = 0;
      const tick = setInterval(() => {
        if (busy) return;
        busy = (async () => {
          const now = follower.applied;
          if (now > lastPersisted) {
            await persist({ ...record, applied: now.toString(), updatedAt: new Date().toISOString() });
            lastPersisted = now;
          }
          sourceRev = (await source.head()).revision;
          const lag = sourceRev - now;
          // A line when something moved, else one every 30 s (a quiet follow stays quiet).
          const state = `${now} ${sourceRev}`;
          if (state === shown && Date.now() - shownAt < QUIET_MS) return;
          shown = state;
          shownAt = Date.now();
          o.progress.status(
            `import: applied revision ${now} of ${sourceRev}${lag <= 0n ? ' (caught up)' : `, ${lag} behind`}; ${follower.events} events (${rate(follower.events, started)}/s)`,
          );
        })()
          .catch((err: unknown) => log.warn({ err }, 'import progress'))
          .finally(() => (busy = null));
      }, PROGRESS_MS);
      const onAbort = () => follower.stop();
      o.signal.addEventListener('abort', onAbort);
      if (o.signal.aborted) follower.stop();
      try {
        await follower.run(until);
      } finally {
        clearInterval(tick);
        o.signal.removeEventListener('abort', onAbort);
        await busy;
      }
      if (follower.applied > lastPersisted) await persist({ ...record, applied: follower.applied.toString(), updatedAt: new Date().toISOString() });
    }
    clearInterval(syncTimer ?? undefined);
    syncTimer = null;
    await syncing;

    // Step 5: the meta-cluster is ready at the last revision applied.
    const revision = follower.applied;
    const copyRevision = BigInt(record.copyRevision);
    const done: ImportRecord = { ...record, phase: 'done', applied: revision.toString(), updatedAt: new Date().toISOString() };
    const fin = await coordinator.txn(
      {
        compare: [valueIs(PARTITION_MAP_KEY, marker)],
        success: [
          putOp(CLOCK_KEY, encodeClock(revision)),
          putOp(COMPACT_KEY, encodeCompacted(copyRevision)),
          putOp(PARTITION_MAP_KEY, Buffer.from(JSON.stringify(map))),
          putOp(IMPORT_KEY, encodeRecord(done)),
        ],
        failure: [],
      },
      false,
    );
    if (!fin.succeeded) throw new ImportRefused('the import marker in the coordinator changed under the import (another import, or a wipe)');
    marker = Buffer.alloc(0);
    o.progress.note(`import: stopped at revision ${revision}: the meta-cluster is ready (clock ${revision}); start the proxies and move the clients over`);
    return { copyRevision, keys, resumed: claim.resumed, revision, events: follower.events, copySeconds };
  } finally {
    if (syncTimer) clearInterval(syncTimer);
    source.close();
    coordinator.close();
    for (const s of shards) s.upstream.close();
  }
}

function rate(n: number, since: number): string {
  const s = (Date.now() - since) / 1000;
  return s > 0 ? Math.round(n / s).toString() : '0';
}

interface Claim {
  marker: Buffer;
  record: ImportRecord;
  resumed: boolean;
  /** An earlier import's partial copy was cleared: the copy starts over. */
  restarted?: boolean;
}

/**
 * Step 1 and 2: empty clusters get the marker and a fresh record; clusters holding this
 * source's import get the marker back (if it was finished) and go on from its record.
 */
interface ClaimWant {
  clusterId: string;
  from: string[];
  sourceRev: bigint;
  map: PartitionMap;
  namespace: string;
}

async function claimClusters(coordinator: Upstream, shards: Upstream[], want: ClaimWant): Promise<Claim> {
  const { clusterId, from, sourceRev } = want;
  const unreachable = (name: string) => (err: unknown) => {
    throw new ImportRefused(`${name}: cannot be reached: ${(err as Error).message}`);
  };
  const recordKv = await readKey(coordinator, IMPORT_KEY).catch(unreachable('coordinator'));
  const marker = importMarker(clusterId);
  if (!recordKv) {
    const all = [coordinator, ...shards];
    const counts = await Promise.all(all.map((u) => keyCount(u).catch(unreachable(u.name))));
    const busy = all.flatMap((u, i) => (counts[i] > 0n ? [`${u.name} holds ${counts[i]} keys`] : []));
    if (busy.length) throw new ImportRefused(`import needs empty clusters: ${busy.join(', ')}`);
    const record: ImportRecord = {
      format: 1,
      source: clusterId,
      endpoints: from,
      copyRevision: sourceRev.toString(),
      applied: '0',
      phase: 'copy',
      map: want.map,
      namespace: want.namespace,
      updatedAt: new Date().toISOString(),
    };
    const res = await coordinator.txn(
      { compare: [absent(PARTITION_MAP_KEY), absent(IMPORT_KEY)], success: [putOp(PARTITION_MAP_KEY, marker), putOp(IMPORT_KEY, encodeRecord(record))], failure: [] },
      false,
    );
    if (!res.succeeded) throw new ImportRefused('the coordinator got a partition map while the import started (is a proxy or another import running on it?)');
    return { marker, record, resumed: false };
  }
  const record = decodeRecord(recordKv.value);
  if (!record) throw new ImportRefused('the coordinator holds an import record this version cannot read');
  if (record.source !== clusterId) {
    throw new ImportRefused(`these clusters hold an import of another etcd (cluster ${record.source}, ${record.endpoints.join(',')}), not of cluster ${clusterId}`);
  }
  const moved = mapMismatch(record.map, want.map);
  if (moved !== null || record.namespace !== want.namespace) {
    throw new ImportRefused(`the configuration places keys differently from the import it would continue (${moved ?? `namespace ${JSON.stringify(want.namespace)}, was ${JSON.stringify(record.namespace)}`})`);
  }
  if (record.phase === 'copy') {
    // A partial copy cannot be told from a whole one: it is cleared and the copy starts over.
    const mapNow = await readKey(coordinator, PARTITION_MAP_KEY);
    if (!mapNow || !isImportMarker(mapNow.value)) throw new ImportRefused('the import record says a copy runs, but the partition map is not its marker');
    await wipePartialCopy(coordinator, shards);
    const fresh: ImportRecord = { ...record, endpoints: from, copyRevision: sourceRev.toString(), applied: '0', updatedAt: new Date().toISOString() };
    const res = await coordinator.txn(
      { compare: [valueIs(PARTITION_MAP_KEY, mapNow.value), valueIs(IMPORT_KEY, recordKv.value)], success: [putOp(IMPORT_KEY, encodeRecord(fresh))], failure: [] },
      false,
    );
    if (!res.succeeded) throw new ImportRefused('the import marker changed while an interrupted copy was cleared (another import?)');
    return { marker: Buffer.from(mapNow.value), record: fresh, resumed: false, restarted: true };
  }
  if (sourceRev < BigInt(record.applied)) {
    throw new ImportRefused(`the source is at revision ${sourceRev}, below revision ${record.applied} already imported`);
  }
  const mapKv = await readKey(coordinator, PARTITION_MAP_KEY);
  if (record.phase === 'follow') {
    if (!mapKv || !isImportMarker(mapKv.value)) throw new ImportRefused('the import record says an import runs, but the partition map is not its marker');
    // Taken over from the run that stopped: the marker's bytes are what later txns compare.
    return { marker: Buffer.from(mapKv.value), record, resumed: true };
  }
  // Finished: going on is safe only while no proxy wrote (the clock is still the last revision
  // imported) and none is running.
  const proxies = await coordinator.range({ key: PROXIES_PREFIX, range_end: prefixEnd(PROXIES_PREFIX), count_only: true });
  if (BigInt(proxies.count) > 0n) throw new ImportRefused(`${proxies.count} proxies are registered on these clusters: stop them before importing more`);
  const clock = decodeClock((await readKey(coordinator, CLOCK_KEY))?.value);
  if (clock !== BigInt(record.applied) || !mapKv) {
    throw new ImportRefused(`the meta-cluster moved on since the import stopped at revision ${record.applied} (clock ${clock}): it cannot follow the source any more`);
  }
  try {
    parsePartitionMap(mapKv.value);
  } catch (err) {
    throw new ImportRefused(`the partition map cannot be read: ${(err as Error).message}`);
  }
  const next: ImportRecord = { ...record, phase: 'follow', endpoints: from, updatedAt: new Date().toISOString() };
  const res = await coordinator.txn(
    {
      compare: [valueIs(PARTITION_MAP_KEY, mapKv.value), valueIs(CLOCK_KEY, encodeClock(clock)), valueIs(IMPORT_KEY, recordKv.value)],
      success: [putOp(PARTITION_MAP_KEY, marker), putOp(IMPORT_KEY, encodeRecord(next))],
      failure: [rangeOp(PARTITION_MAP_KEY)],
    },
    false,
  );
  if (!res.succeeded) throw new ImportRefused('the meta-cluster changed while the import resumed (a proxy started?)');
  return { marker, record: next, resumed: true };
}
