/** The KV service: validates like etcd, then hands each verb to the meta store. */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { MemoryBudget } from '../budget/memory-budget.js';
import { holdUntilSent } from '../budget/release-on-send.js';
import { decodedRangeSize, encodedRangeSize, txnReadsRanges, txnResponseSize } from '../budget/response-size.js';
import { SizeHints } from '../budget/size-hints.js';
import { checkDelete, checkPut, checkRange, checkTxn } from '../etcd/validate.js';
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
  TxnResponse,
} from '../etcd/types.js';
import { Errors } from '../etcd/errors.js';
import type { CacheReader } from '../cache/reads.js';
import { encodedHeader, encodeRangeResponseInSteps } from '../wire/encoded-kv.js';
import type { KvVerbs } from '../kv/backend.js';
import { txnWrites } from '../kv/txn-snapshot.js';
import { revHeader } from '../etcd/header.js';
import { budgetRejections, clientWrites } from '../metrics/registry.js';
import type { HeaderSource } from './header.js';
import { Encoded, type Handlers } from './service.js';
import { unary } from './unary.js';

export interface KvDeps {
  kv: KvVerbs;
  /** Reads from memory; null when the caches are off. */
  reader: CacheReader | null;
  header: HeaderSource;
  logger: Logger;
  maxRequestBytes: number;
  maxTxnOps: number;
  /** Responses in flight are reserved here before they are built (budget/memory-budget.ts). */
  budget: MemoryBudget;
}

/** Bytes of one member page of a paged read: a 64th of the budget, 256 KiB to 8 MiB. */
export function memberPageBytes(budget: number): number {
  return Math.max(256 * 1024, Math.min(8 * 1024 * 1024, Math.floor(budget / 64)));
}

/** Reads whose member answer is small by shape: one key, or a count. */
function smallByShape(r: RangeRequest): boolean {
  return r.range_end.length === 0 || r.count_only;
}

export function kvService(d: KvDeps): Handlers<'KV'> {
  const o = { logger: d.logger, maxRequestBytes: d.maxRequestBytes };
  const hints = new SizeHints(d.budget.opts.smallBytes + 1, Math.floor(d.budget.limit / 4));
  const pageBytes = memberPageBytes(d.budget.limit);
  return {
    Range: unary<RangeRequest, RangeResponse | Encoded>(
      'Range',
      async (r, cancel) => {
        checkRange(r);
        const hit = d.reader ? await d.reader.range(r) : null;
        if (hit) {
          // The size is known before the response exists: room first, then the bytes. Twice:
          // grpc-js frames a copy of the response, and both live until it was written.
          const room = await d.budget.reserve(2 * encodedRangeSize(hit.kvs), cancel.signal);
          try {
            const built = encodeRangeResponseInSteps(d.header.fill(revHeader(hit.rev)), hit.kvs, hit.more, hit.count);
            const bytes = built instanceof Promise ? await built : built;
            return holdUntilSent(new Encoded(bytes), room);
          } catch (err) {
            room.release();
            throw err;
          }
        }
        // Single keys and counts are small by shape: one member read, answered at once.
        if (smallByShape(r)) {
          const room = d.budget.reserveNow(0);
          try {
            const res = await d.kv.range(r);
            room.resize(decodedRangeSize(res.kvs));
            return holdUntilSent({ ...res, header: d.header.fill(res.header) }, room);
          } catch (err) {
            room.release();
            throw err;
          }
        }
        // Anything else is read from the members in pages (kv/range-pages.ts), each charged
        // before it is read. A read first waits for room for what the same range took last time
        // (a range not seen yet is read by one request at a time, size-hints.ts), then grows
        // without waiting: past the budget it gets etcd's "too many requests".
        const estimate = await hints.estimate(r.key, r.range_end, cancel.signal);
        try {
          const room = await d.budget.reserve(estimate.bytes, cancel.signal);
          try {
            const hold = (bytes: number) => {
              if (room.growTo(bytes)) return;
              budgetRejections.inc();
              estimate.settle(bytes);
              throw Errors.tooManyRequests();
            };
            const header = (rev: bigint) => encodedHeader(d.header.fill(revHeader(rev)));
            const opts = { pageBytes, header, hold, expected: (bytes: number) => estimate.settle(bytes), signal: cancel.signal };
            // A compaction past the revision of a current read while its pages were read: read
            // again at a new revision (etcd would have answered from its snapshot).
            const res = await d.kv.rangeInPages(r, opts).catch((err: unknown) => {
              if (r.revision === '0' && Errors.compacted.is(err)) return d.kv.rangeInPages(r, opts);
              throw err;
            });
            estimate.settle(res.held);
            room.resize(res.held);
            const bytes = res.response;
            return holdUntilSent(new Encoded(bytes), room);
          } catch (err) {
            room.release();
            throw err;
          }
        } finally {
          estimate.settle(null);
        }
      },
      o,
    ),
    Put: unary<PutRequest, PutResponse>(
      'Put',
      async (r) => {
        checkPut(r);
        const res = await d.kv.put(r);
        clientWrites.inc();
        return { ...res, header: d.header.fill(res.header) };
      },
      o,
      () => true,
    ),
    DeleteRange: unary<DeleteRangeRequest, DeleteRangeResponse>(
      'DeleteRange',
      async (r) => {
        checkDelete(r);
        const res = await d.kv.deleteRange(r);
        clientWrites.inc();
        return { ...res, header: d.header.fill(res.header) };
      },
      o,
      () => true,
    ),
    Txn: unary<TxnRequest, TxnResponse>(
      'Txn',
      async (r, cancel) => {
        checkTxn(r, { maxTxnOps: d.maxTxnOps });
        // A Txn that may read many keys waits for room as a read of unknown size (a quarter of
        // the budget, as a member Range not seen before); its answer is held once built.
        const room = txnReadsRanges(r) ? await d.budget.reserve(Math.floor(d.budget.limit / 4), cancel.signal) : d.budget.reserveNow(0);
        try {
          const out = (d.reader && !txnWrites(r) ? await d.reader.txn(r) : null) ?? (await d.kv.txn(r));
          if (out.wrote) clientWrites.inc();
          room.resize(txnResponseSize(out.responses));
          const res = {
            header: d.header.fill({ cluster_id: '0', member_id: '0', revision: out.revision.toString(), raft_term: '0' }),
            succeeded: out.succeeded,
            responses: out.responses,
          };
          return holdUntilSent(res, room);
        } catch (err) {
          room.release();
          throw err;
        }
      },
      o,
      // etcd sends every txn but an all-Range one through raft, where the size limit applies.
      (r) => [...r.success, ...r.failure].some((op) => !op.request_range),
    ),
    Compact: unary<CompactionRequest, CompactionResponse>(
      'Compact',
      async (r) => {
        const res = await d.kv.compact(r);
        return { header: d.header.fill(res.header) };
      },
      o,
      () => true,
    ),
  };
}
