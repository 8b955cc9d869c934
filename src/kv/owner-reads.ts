/**
 * A serializable read-only txn of single keys, answered on their shard's owner from its exact
 * state (kv/hints.ts) when the read cache has not yet caught up with this replica's
 * acknowledged writes. The cache would wait for the merged stream to release them: about a
 * millisecond per update in the hot-key compare-and-swap loop, where it lies on the key's
 * cycle (the winner's client reads again at once, bench/scaleout.ts d).
 *
 * Why the answer is a consistent state at its header revision R = the last batch the shard's
 * member applied from this owner, or a newer key's mod revision (as owner-answer.ts's
 * exactRevision): each key's hint is what this owner's own applied write left, exact for the
 * writer's current generation; no write to the keys is in flight (their key turns are free, and
 * no write without turns runs on the shard); this replica's later writes get higher revisions;
 * and another replica writes the shard only after raising its epoch, which fails this owner's
 * next batch, and at revisions above this owner's block, so above R. Serializable reads may be
 * stale (as etcd's), never a mix of states. The header is at least every revision this replica
 * acknowledged (read-your-writes, as the cache's); else the cache answers after its wait.
 */
import type { RangeRequest, TxnRequest } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import { revHeader } from '../etcd/header.js';
import { ownerStateReads } from '../metrics/registry.js';
import { assembleRange } from './range-result.js';
import { exactKeysRevision, type ExactKey } from './owner-answer.js';
import type { Router } from '../partition/router.js';
import type { Keyspace } from '../shard/keyspace.js';
import type { Shard } from '../shard/shard.js';
import type { StateHints } from './hints.js';
import type { KeyTurns } from './key-turns.js';
import type { TxnOutcome } from './txn-outcome.js';

/** What the answer needs of the meta-store (kv/store.ts's MetaStore has this shape). */
export interface OwnerState {
  readonly ks: Keyspace;
  readonly router: Router;
  readonly shards: readonly Shard[];
  readonly keyTurns: readonly KeyTurns[];
  readonly hints: StateHints;
  /** The highest revision of a write this replica acknowledged. */
  readonly acked: bigint;
}

/** The owner's exact answer of `t`, or null: compares, ranges or keys it does not hold exactly. */
export function ownerSerializableRead(store: OwnerState, t: TxnRequest): TxnOutcome | null {
  if (t.compare.length > 0 || t.success.length === 0) return null;
  const reqs: RangeRequest[] = [];
  for (const op of t.success) {
    const r = op.request_range;
    if (!r || !r.serializable || r.range_end.length > 0 || r.revision !== '0' || !store.ks.writable(r.key)) return null;
    reqs.push(r);
  }
  const index = store.router.shardOf(reqs[0].key);
  if (reqs.some((r) => store.router.shardOf(r.key) !== index)) return null;
  const shard = store.shards[index];
  const keys: ExactKey[] = [];
  for (const r of reqs) {
    const memberKey = shard.keyspace.toMember(r.key).toString('latin1');
    const kv = store.hints.get(memberKey);
    if (kv === undefined) return null;
    keys.push({ memberKey, kv });
  }
  if (!store.keyTurns[index].idle(keys.map((k) => k.memberKey))) return null;
  const rev = exactKeysRevision(store.hints, shard, keys);
  if (rev === null || rev < store.acked) return null;
  const responses = reqs.map((r, i) => {
    const kv = keys[i].kv;
    const res = assembleRange(r, [{ kvs: kv ? [kv] : [], count: kv ? 1n : 0n }]);
    return { response: 'response_range' as const, response_range: { header: revHeader(rev), kvs: res.kvs, more: res.more, count: wire64(res.count) } };
  });
  ownerStateReads.inc();
  return { revision: rev, succeeded: true, responses, wrote: false };
}
