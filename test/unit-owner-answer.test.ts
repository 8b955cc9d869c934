import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RequestOp, TxnRequest } from '../src/etcd/types.js';
import { CompareResult, CompareTarget } from '../src/etcd/types.js';
import { rangeRequest } from '../src/etcd/defaults.js';
import { StateHints } from '../src/kv/hints.js';
import { answerFromOwnerState, exactRevision, type Arrival } from '../src/kv/owner-answer.js';
import { planTxn } from '../src/kv/txn-plan.js';
import { StateReads } from '../src/kv/txn-state.js';
import { Keyspace } from '../src/shard/keyspace.js';
import type { MetaKV } from '../src/shard/meta-kv.js';
import type { Shard } from '../src/shard/shard.js';

const B = (s: string) => Buffer.from(s);
const ks = new Keyspace();
const NO_HISTORY = new Map();
/** A txn that arrived once the writer had sent `sent` (default: everything, so the proof decides), with a proof that finds `clock`. */
const proven = (clock: bigint | null, sent = 1_000_000n): Arrival => ({ sent, proof: async () => clock });

/** kube-apiserver's update of `key`, planned on revision `rev`, with `failure` as its else branch. */
function update(key: string, rev: bigint, failure: RequestOp[]): TxnRequest {
  return {
    compare: [{ target: CompareTarget.MOD, result: CompareResult.EQUAL, key: B(key), range_end: B(''), mod_revision: rev.toString() }],
    success: [{ request_put: { key: B(key), value: B('new'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } }],
    failure,
  };
}

const kv = (key: string, mod: bigint): MetaKV => ({ key: B(key), create: 2n, mod, version: 3n, lease: 0n, value: B(`v${mod}`), memberMod: mod + 1000n });

/** A shard whose owner holds `epoch` at writer generation `gen`, the member having applied up to `applied`. */
function shard(o: { epoch?: bigint; gen?: number; applied?: bigint; unturned?: boolean } = {}): Shard {
  const writer = { ownerEpoch: o.epoch ?? 5n, generation: o.gen ?? 7, applied: o.applied ?? 100n };
  return { writer, keyspace: ks, unturnedWrites: o.unturned ?? false } as unknown as Shard;
}

function lostSwap(hints: StateHints, failure: RequestOp[] = [{ request_range: rangeRequest(B('k'), B('')) }]) {
  const txn = update('k', 3n, failure);
  const reads = StateReads.forTxn(txn, ks);
  const state = reads.fromHints(hints, false);
  assert.ok(state);
  const plan = planTxn(txn, state, { ks, leaseIncarnation: () => null });
  assert.equal(plan.writes, false, 'the compare fails on the hint: nothing to write');
  return { reads, state, plan };
}

test('a lost compare-and-swap on the owner is answered from the exact hint its own write left, after the arrival proof', async () => {
  const hints = new StateHints();
  hints.set('k', kv('k', 10n), undefined, 7);
  const { reads, state, plan } = lostSwap(hints);
  const rev = exactRevision(hints, shard(), 5n, reads, state);
  assert.equal(rev, 100n, 'at the last batch the member applied');
  const out = await answerFromOwnerState(plan, state, rev as bigint, proven(90n), NO_HISTORY);
  assert.ok(out);
  assert.equal(out.succeeded, false);
  assert.equal(out.wrote, false);
  assert.equal(out.revision, 100n);
  const range = out.responses[0].response_range;
  assert.equal(String(range?.header?.revision), '100');
  assert.equal(String(range?.count), '1');
  assert.equal(range?.kvs[0]?.value.toString(), 'v10');
  assert.equal(String(range?.kvs[0]?.mod_revision), '10');
  assert.equal(String(range?.kvs[0]?.version), '3');
  assert.equal(await answerFromOwnerState(plan, state, 100n, proven(null), NO_HISTORY), null, 'no proof: read the member');
});

test('an answer from a state a batch sent after the txn arrived needs no arrival proof; one from an older state waits for it', async () => {
  const hints = new StateHints();
  hints.set('k', kv('k', 10n), undefined, 7);
  const { reads, state, plan } = lostSwap(hints);
  const rev = exactRevision(hints, shard(), 5n, reads, state) as bigint;
  let asked = 0;
  const never = (sent: bigint): Arrival => ({ sent, proof: () => (asked++, new Promise<bigint | null>(() => undefined)) });
  // The writer had sent up to 99 when the txn arrived; the member applied 100 since.
  const out = await answerFromOwnerState(plan, state, rev, never(99n), NO_HISTORY);
  assert.equal(out?.revision, 100n, 'answered without the proof');
  assert.equal(asked, 0, 'no clock read was started');
  // The writer had already sent 100 at arrival: the state may be older than the arrival.
  const pending = answerFromOwnerState(plan, state, rev, never(100n), NO_HISTORY);
  const raced = await Promise.race([pending.then(() => 'answered'), new Promise((r) => setTimeout(() => r('waits'), 50))]);
  assert.equal(raced, 'waits', 'it waits for the proof');
  assert.equal(asked, 1);
  assert.equal(await answerFromOwnerState(plan, state, rev, proven(null, 100n), NO_HISTORY), null, 'no proof: read the member');
});

test('the owner reads the member instead when its state may not be exact', () => {
  const hints = new StateHints();
  hints.set('k', kv('k', 10n), undefined, 7);
  const { reads, state } = lostSwap(hints);
  assert.equal(exactRevision(hints, shard({ unturned: true }), 5n, reads, state), null, 'a range write or a reap in flight');
  assert.equal(exactRevision(hints, shard({ gen: 8 }), 5n, reads, state), null, 'another writer generation');
  assert.equal(exactRevision(hints, shard({ epoch: 6n }), 5n, reads, state), null, 'another epoch');
  assert.equal(exactRevision(hints, shard({ applied: 4n }), 5n, reads, state), 10n, "never below the key's own revision");
  hints.set('k', kv('k', 10n), 2000n);
  assert.equal(exactRevision(hints, shard(), 5n, reads, state), null, "the hint was replaced by a read's guess");
});

test('a failure branch that reads beyond the state is left to the member', async () => {
  const hints = new StateHints();
  hints.set('k', kv('k', 10n), undefined, 7);
  const other = lostSwap(hints, [{ request_range: rangeRequest(B('other'), B('')) }]);
  assert.equal(await answerFromOwnerState(other.plan, other.state, 100n, proven(90n), NO_HISTORY), null, 'a key the state does not hold');
  const prefix = lostSwap(hints, [{ request_range: rangeRequest(B('k'), B('l')) }]);
  assert.equal(await answerFromOwnerState(prefix.plan, prefix.state, 100n, proven(90n), NO_HISTORY), null, 'a range');
  const none = lostSwap(hints, []);
  const out = await answerFromOwnerState(none.plan, none.state, 100n, proven(90n), NO_HISTORY);
  assert.deepEqual(out?.responses, [], "etcd's STM: an empty failure branch");
});
