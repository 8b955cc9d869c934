/**
 * Compact(R): record R in the coordinator first (from then on reads below R are refused),
 * then compact every member at its member revision for R, and the coordinator's own history.
 */
import { Errors } from '../etcd/errors.js';
import type { CompactionRequest, CompactionResponse } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { cmp, createIfAbsent, putOp, rangeOp } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';
import { COMPACT_KEY, decodeCompacted, encodeCompacted } from './store.js';
import type { MetaStore } from './store.js';
import { revHeader } from '../etcd/header.js';

function ignoreCompacted(err: unknown): void {
  if (Errors.compacted.is(err)) return;
  throw err;
}

async function compactUpstream(up: Upstream, memberRev: bigint, physical: boolean): Promise<void> {
  if (memberRev <= 0n) return;
  await up.compact({ revision: memberRev.toString(), physical }).catch(ignoreCompacted);
}

export async function compact(store: MetaStore, req: CompactionRequest): Promise<CompactionResponse> {
  const rev = BigInt(req.revision);
  const compacted = await store.refreshCompacted();
  if (rev <= compacted) throw Errors.compacted();
  const current = await store.clock.current();
  if (rev > current) throw Errors.futureRev();

  const record = () =>
    store.coordinator.txn(
      {
        compare: [cmp(CompareTarget.VALUE, CompareResult.LESS, COMPACT_KEY, { value: encodeCompacted(rev) })],
        success: [putOp(COMPACT_KEY, encodeCompacted(rev))],
        failure: [rangeOp(COMPACT_KEY)],
      },
      false,
    );
  let res = await record();
  if (!res.succeeded && !res.responses[0].response_range?.kvs.length) {
    // The coordinator lost its record (rebuilt empty): recreate it, then record again.
    await initCompactRecord(store.coordinator);
    res = await record();
  }
  if (!res.succeeded) {
    store.noteCompacted(decodeCompacted(res.responses[0].response_range?.kvs[0]?.value));
    throw Errors.compacted();
  }
  store.noteCompacted(rev);

  await Promise.all(
    store.shards.map(async (s) => {
      const head = await s.currentClock();
      // A batch straddling R stays: compacting at the member revision before it keeps R readable.
      const point = await store.revmaps[s.index].memberRevAt(rev, head);
      await compactUpstream(s.upstream, point.rev, req.physical);
    }),
  );
  const coordHead = await store.coordinator.range({ key: COMPACT_KEY });
  await compactUpstream(store.coordinator, BigInt(coordHead.header?.revision ?? '0'), req.physical);
  return { header: revHeader(current) };
}

/** The compaction record must exist: a VALUE compare on a missing key is always false. */
export async function initCompactRecord(coordinator: Upstream): Promise<void> {
  await createIfAbsent(coordinator, COMPACT_KEY, encodeCompacted(-1n));
}
