/**
 * The meta-cluster as the layers above kv/ use it, kine's narrow Backend being the model: the KV
 * verbs and the whole-keyspace scan, bound to one MetaStore. server/, backup/ and maintenance/
 * take these interfaces, never the MetaStore itself, so what they reach is what they use.
 */
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  TxnRequest,
} from '../etcd/types.js';
import { compact } from './compact.js';
import { deleteRange } from './delete.js';
import { put } from './put.js';
import { range } from './range.js';
import { rangeInPages, type PageOptions, type PagedRange } from './range-pages.js';
import { countAt, currentScanRevision, scanAt, type ScannedKV } from './scan.js';
import type { MetaStore } from './store.js';
import { txn } from './txn-verb.js';
import type { TxnOutcome } from './txn-outcome.js';

/** The KV service's verbs (server/kv.ts). */
export interface KvVerbs {
  range(r: RangeRequest): Promise<RangeResponse>;
  put(r: PutRequest): Promise<PutResponse>;
  deleteRange(r: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  txn(r: TxnRequest): Promise<TxnOutcome>;
  compact(r: CompactionRequest): Promise<CompactionResponse>;
  /** A big Range read from the members in pages at one revision (kv/range-pages.ts). */
  rangeInPages(r: RangeRequest, opts: PageOptions): Promise<PagedRange>;
}

/** Every user key at one revision, and the records around it (snapshots, HashKV). */
export interface KeyspaceScan {
  /** The current revision at which every shard is fixed (lagging shards are fenced up to it). */
  currentRevision(): Promise<bigint>;
  /** How many user keys exist at `rev`. */
  countAt(rev: bigint): Promise<bigint>;
  /** The keys at `rev` in key order, page by page (kv/scan.ts). */
  pagesAt(rev: bigint, pageSize?: number): AsyncGenerator<ScannedKV[]>;
  /** The highest allocated revision and the compaction revision, read together from the coordinator. */
  coordinatorView(): Promise<{ clock: bigint; compacted: bigint }>;
  /** The meta compaction revision last seen (-1: nothing compacted). */
  readonly compactedRevision: bigint;
}

export function kvVerbs(store: MetaStore): KvVerbs {
  return {
    range: (r) => range(store, r),
    put: (r) => put(store, r),
    deleteRange: (r) => deleteRange(store, r),
    txn: (r) => txn(store, r),
    compact: (r) => compact(store, r),
    rangeInPages: (r, opts) => rangeInPages(store, r, opts),
  };
}

export function keyspaceScan(store: MetaStore): KeyspaceScan {
  return {
    currentRevision: () => currentScanRevision(store),
    countAt: (rev) => countAt(store, rev),
    pagesAt: (rev, pageSize) => scanAt(store, rev, pageSize),
    coordinatorView: () => store.coordinatorView(),
    get compactedRevision() {
      return store.compactedRevision;
    },
  };
}
