/**
 * Runs a client txn whose keys all live on one shard (DESIGN "Write path"):
 * read the state it depends on, evaluate it in the proxy, then either serve a read-only path
 * pinned to that state, or hand the chosen branch to the shard's writer, which applies it in a
 * member txn fenced on the shard clock and pinned to the state. A failed pin re-evaluates on
 * the state the member returned.
 */
import { status } from '@grpc/grpc-js';
import { EtcdError, Errors } from '../etcd/errors.js';
import type { RangeRequest, RangeResponse, RequestOp, ResponseOp, TxnRequest } from '../etcd/types.js';
import { writeRetries } from '../metrics/registry.js';
import { clockOf } from '../shard/clock-read.js';
import type { Shard } from '../shard/shard.js';
import { chainDepth, innermost, pinned } from '../shard/pin-chain.js';
import { NotOwnerError, OwnerUnreachableError } from '../shard/routing-errors.js';
import { txnWrites } from './txn-snapshot.js';
import type { MetaStore } from './store.js';
import { historyRanges, memberOps, planTxn } from './txn-plan.js';
import { rangeInTxn } from './range.js';
import type { Plan, PlannedOp } from './txn-plan.js';
import type { Turn } from './key-turns.js';
import { chainablePut, chainOps, linkOutcome } from './put-chain.js';
import type { ChainLink } from './put-chain.js';
import { assembleOps } from './txn-response.js';
import { answerFromOwnerState, arrivalOf, exactRevision, type Arrival } from './owner-answer.js';
import { StateReads, TxnState } from './txn-state.js';

const MAX_ATTEMPTS = 64;
/** Above this many state reads, a txn carries no else reads: a failed pin re-reads its state. */
const BIG_TXN_READS = 64;

import type { TxnOutcome } from './txn-outcome.js';

export type { TxnOutcome };

/** Forwarded writes may be forwarded once more (the owner moved meanwhile), no further. */
const MAX_HOPS = 2;
/** Times a write is routed again after the shard's ownership moved under it (nothing applied). */
const MAX_REROUTES = 4;

/**
 * Runs a client txn on its shard. One replica owns each shard's writes (ownership/): a txn that
 * may write runs on the owner, here if this replica owns the shard, else forwarded to it. A
 * write routed under an ownership that then moved was not applied (NotOwnerError): route again.
 * Read-only txns run anywhere (they are pinned reads).
 */
export async function runShardTxn(store: MetaStore, shard: Shard, txn: TxnRequest, hops = 0): Promise<TxnOutcome> {
  const out = await routeShardTxn(store, shard, txn, hops);
  // Read-your-writes: later reads here wait for this revision (MetaStore.acked).
  if (out.wrote) store.noteAcked(out.revision);
  return out;
}

async function routeShardTxn(store: MetaStore, shard: Shard, txn: TxnRequest, hops: number): Promise<TxnOutcome> {
  const routing = store.routing;
  if (!routing || !txnWrites(txn)) return runOwnedTxn(store, shard, txn, undefined);
  for (let attempt = 0; ; attempt++) {
    if (attempt > MAX_REROUTES) throw Errors.unavailable(`shard ${shard.name}`, 'its ownership is moving, try again');
    const route = await routing.route(shard.index);
    try {
      if (route.local) return await runInTurn(store, shard, txn, route.epoch);
      // A write forwarded here by a replica whose view was stale goes on once more at most;
      // after that it waits for this replica's view to catch up.
      if (hops < MAX_HOPS) return await routing.forward(route.owner.url, shard.name, txn, hops + 1);
    } catch (err) {
      // Nothing was applied: the ownership moved, or the owner was never reached.
      if (!(err instanceof NotOwnerError || err instanceof OwnerUnreachableError)) throw err;
    }
    await routing.refresh();
  }
}

/** On the owner, a write's turn on its keys comes after the earlier writes to them (key-turns.ts). */
async function runInTurn(store: MetaStore, shard: Shard, txn: TxnRequest, epoch: bigint): Promise<TxnOutcome> {
  // Should a path that writes nothing be answered from the owner's state (owner-answer.ts): what
  // the writer had sent when the txn arrived, and a clock read begun after that, started only
  // if the answer needs it.
  const arrival = arrivalOf(store, shard);
  const reads = StateReads.forTxn(txn, store.ks);
  const keys = reads.batchKeys();
  // It takes no turns: counted while in flight, so answers from the owner's state wait (owner-answer.ts).
  if (!keys) return shard.withoutTurns(() => runOwnedTxn(store, shard, txn, epoch, reads, arrival));
  // A blind put of a key whose chain is still waiting for its turn rides along (put-chain.ts).
  const blind = keys.length === 1 ? chainablePut(txn) : null;
  const chains = store.putChains[shard.index];
  const joined = blind ? chains.join(keys[0], epoch, blind.value) : null;
  if (joined) return joined;
  const chain = blind ? chains.start(keys[0], epoch) : null;
  let links: ChainLink[] = [];
  try {
    const turn = await store.keyTurns[shard.index].take(keys);
    if (chain) links = chains.close(keys[0], chain);
    try {
      const values = links.map((l) => l.value);
      const out = await runOwnedTxn(store, shard, txn, epoch, reads, arrival, turn, values);
      // The chain's puts took the revisions after the first one's, in the order they joined.
      links.forEach((l, i) => l.resolve(linkOutcome(out.revision + 1n + BigInt(i))));
      return out;
    } finally {
      turn.leave();
    }
  } catch (err) {
    // Nothing of the chain was applied (the member put carries all of it): its puts fail alike.
    if (chain && !links.length) links = chains.close(keys[0], chain);
    for (const l of links) l.reject(err);
    throw err;
  }
}

/** `epoch`: the owner epoch the write is routed under (undefined: no ownership, any replica writes). */
async function runOwnedTxn(
  store: MetaStore,
  shard: Shard,
  txn: TxnRequest,
  epoch: bigint | undefined,
  reads = StateReads.forTxn(txn, store.ks),
  arrival?: Arrival,
  turn?: Turn,
  /** Values of blind puts chained after this one (put-chain.ts): one member put applies them all. */
  chained: Buffer[] = [],
): Promise<TxnOutcome> {
  // Leases named by its puts, looked up once on the coordinator (one read for all of them).
  const named = leasesNamed(txn);
  const leases = named.length ? await store.leases.lookupAll(named) : NO_LEASES;
  const ctx = { ks: store.ks, leaseIncarnation: (id: bigint) => leases.get(id) ?? null };
  let state = await initialState(store, shard, txn, reads);
  let ticket: number | undefined;

  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    let plan: Plan;
    try {
      plan = planTxn(txn, state, ctx);
    } catch (err) {
      // An error that depends on state (e.g. ignore_value on a missing key) only counts on a
      // state read linearizably: a guess is re-read first.
      if (state.verified) throw err;
      state = await freshState(store, shard, reads);
      continue;
    }
    // Ranges at a past revision read history, which the txn cannot change: read them apart,
    // before anything is written (a future or compacted revision fails the whole txn, as in etcd).
    let history: ReadonlyMap<RangeRequest, RangeResponse>;
    try {
      history = await readHistory(store, plan);
    } catch (err) {
      if (state.verified) throw err;
      state = await freshState(store, shard, reads); // the branch may have been chosen on a guess
      continue;
    }
    const big = reads.reads.length > BIG_TXN_READS;
    if (big && !state.verified) {
      state = await freshState(store, shard, reads);
      continue;
    }
    if (!plan.writes) {
      // On the owner, from its own exact state when it can (owner-answer.ts): decided while the turn is held.
      const exactAt = turn?.held && epoch !== undefined && arrival ? exactRevision(store.hints, shard, epoch, reads, state) : null;
      // Pinned, so it needs no turn: the writes queued behind it on these keys may plan now.
      turn?.leave();
      if (exactAt !== null && arrival) {
        const answered = await answerFromOwnerState(plan, state, exactAt, arrival, history);
        if (answered) return answered;
      }
      const out = await readOnlyPath(store, shard, plan, reads, state, big, history);
      if (!(out instanceof TxnState)) return out;
      writeRetries.inc({ reason: 'read_pin' });
      state = out;
      reads.remember(state, store.hints);
      continue;
    }
    if (turn && !turn.held) {
      // Back in line after a read-only attempt whose pin failed: plan again on the state the
      // writes queued before it leave.
      await turn.retake();
      state = await initialState(store, shard, txn, reads);
      continue;
    }
    // A txn reading very many keys gets no reads in its else branch (they would not fit the
    // member's per-level op limit): on a failed pin its state is read anew.
    const pins = reads.pins(state, store.maxPins);
    const elseOps = big ? [] : reads.memberOps();
    const chainPut = chained.length ? chainHead(plan) : null;
    const opsAt = chainPut ? (rev: bigint) => chainOps(chainPut, rev, chained, store.ks) : (rev: bigint) => memberOps(plan.ops, rev, store.ks);
    const sample = opsAt(0n);
    ticket ??= shard.writer.ticket();
    const generation = shard.writer.generation;
    const res = await shard.writer.submit({
      ops: opsAt,
      pins,
      elseOps,
      keys: reads.batchKeys(),
      deletes: deletes(sample),
      bytes: estimateBytes(sample) + estimateBytes(elseOps) + 64 * pins.length,
      epoch,
      width: 1 + chained.length,
    }, sample, ticket);
    if (res.applied) {
      // On the owner the state it left is exact while the writer's generation lasts (one that
      // changed meanwhile, say by a lost ownership, leaves a guess).
      const exact = epoch !== undefined && turn && shard.writer.generation === generation ? generation : undefined;
      rememberWrite(store, plan.ops, state, res.rev, res.memberRev, exact);
      if (chainPut) rememberChain(store, chainPut, state, res.rev, res.memberRev, chained, exact);
      const responses = assembleOps(plan.ops, res.responses, { ks: store.ks, rev: res.rev, before: res.before, readOnly: false, history });
      return { revision: res.rev, succeeded: plan.succeeded, responses, wrote: true };
    }
    writeRetries.inc({ reason: 'pin' });
    if (big || res.responses.length === 0) {
      state = await freshState(store, shard, reads);
      continue;
    }
    state = reads.parse(res.responses, res.clock, res.memberRev, true);
    reads.remember(state, store.hints);
  }
  throw new EtcdError(status.UNAVAILABLE, `etcd-metaproxy: too much contention on shard ${shard.name}, try again`);
}

/**
 * What the plan is evaluated on first. Every guess is safe: pins make the member refuse a
 * write or read planned on a state that is not current, and hand back the real one.
 * - known keys: from hints; an unconditional write may also take unknown keys as missing;
 * - otherwise a serializable read (no ReadIndex round trip; it may be stale, pins catch it).
 */
async function initialState(store: MetaStore, shard: Shard, txn: TxnRequest, reads: StateReads): Promise<TxnState> {
  const hinted = reads.fromHints(store.hints, txn.compare.length === 0);
  if (hinted) return hinted;
  const first = await shard.read(reads.memberOps(), true);
  const state = reads.parse(first.responses, first.clock.clock, first.clock.memberRev, false);
  reads.remember(state, store.hints);
  return state;
}

const NO_LEASES: ReadonlyMap<bigint, bigint> = new Map();

/** Lease IDs the txn's puts attach (both branches, nested txns included). */
function leasesNamed(txn: TxnRequest, out: bigint[] = []): bigint[] {
  for (const op of [...txn.success, ...txn.failure]) {
    const p = op.request_put;
    if (p && !p.ignore_lease && p.lease !== '0' && BigInt(p.lease) !== 0n) out.push(BigInt(p.lease));
    if (op.request_txn) leasesNamed(op.request_txn, out);
  }
  return out;
}

const NO_HISTORY: ReadonlyMap<RangeRequest, RangeResponse> = new Map();

async function readHistory(store: MetaStore, plan: Plan): Promise<ReadonlyMap<RangeRequest, RangeResponse>> {
  const wanted = historyRanges(plan.ops);
  if (wanted.length === 0) return NO_HISTORY;
  const out = new Map<RangeRequest, RangeResponse>();
  for (const req of wanted) out.set(req, await rangeInTxn(store, req));
  return out;
}

/** The state read linearizably (a verified state). */
async function freshState(store: MetaStore, shard: Shard, reads: StateReads): Promise<TxnState> {
  const fresh = await shard.read(reads.memberOps());
  const state = reads.parse(fresh.responses, fresh.clock.clock, fresh.clock.memberRev, true);
  reads.remember(state, store.hints);
  return state;
}

/** Whether member ops delete anything, nested txns included. */
function deletes(ops: RequestOp[]): boolean {
  return ops.some((op) => !!op.request_delete_range || (!!op.request_txn && deletes(op.request_txn.success)));
}

/** The put a chain's first write plans (a blind put plans exactly one). */
function chainHead(plan: Plan): Extract<PlannedOp, { kind: 'put' }> {
  const op = plan.ops[0];
  if (plan.ops.length !== 1 || op?.kind !== 'put') throw new Error('a put chain must start with one put');
  return op;
}

/** The hint a chain leaves: its last put, versions and delta advanced by every put of it. */
function rememberChain(store: MetaStore, op: Extract<PlannedOp, { kind: 'put' }>, state: TxnState, first: bigint, memberRev: bigint, chained: Buffer[], exact: number | undefined): void {
  const n = BigInt(chained.length);
  const key = op.req.key;
  store.hints.set(store.ks.toMember(key).toString('latin1'), {
    key,
    create: op.create ?? first,
    mod: first + n,
    version: (state.key(key)?.version ?? 0n) + 1n + n,
    lease: op.lease,
    value: chained[chained.length - 1],
    memberMod: memberRev,
    delta: op.delta + n,
  }, undefined, exact);
}

/** Updates hints with what an applied write left behind (`exact`: see kv/hints.ts). */
function rememberWrite(store: MetaStore, ops: PlannedOp[], state: TxnState, rev: bigint, memberRev: bigint, exact: number | undefined): void {
  for (const op of ops) {
    if (op.kind === 'txn') rememberWrite(store, op.ops, state, rev, memberRev, exact);
    else if (op.kind === 'put') {
      const key = op.req.key;
      store.hints.set(store.ks.toMember(key).toString('latin1'), {
        key,
        create: op.create ?? rev,
        mod: rev,
        version: (state.key(key)?.version ?? 0n) + 1n,
        lease: op.lease,
        // hints.set keeps its own copy.
        value: op.value ?? op.req.value,
        memberMod: memberRev,
        ...(op.delta !== 0n ? { delta: op.delta } : {}),
      }, undefined, exact);
    } else if (op.kind === 'delete' && op.range) {
      if (op.req.range_end.length === 0) store.hints.set(store.ks.toMember(op.req.key).toString('latin1'), null, undefined, exact);
      else store.hints.forgetRange(op.range.start.toString('latin1'), op.range.end.toString('latin1'));
    }
  }
}

function estimateBytes(ops: RequestOp[]): number {
  let n = 0;
  for (const op of ops) {
    if (op.request_txn) n += 16 + estimateBytes(op.request_txn.success);
    const r = op.request_range ?? op.request_put ?? op.request_delete_range;
    if (!r) continue;
    n += 32 + r.key.length + ('value' in r && r.value ? r.value.length : 0) + ('range_end' in r && r.range_end ? r.range_end.length : 0);
  }
  return n;
}

/**
 * A path that writes nothing is read in a member txn pinned to the state it was chosen on: a
 * linearizable read-only txn (no raft write). If a pin fails, the fresh state comes back instead.
 */
async function readOnlyPath(
  store: MetaStore,
  shard: Shard,
  plan: Plan,
  reads: StateReads,
  state: TxnState,
  big: boolean,
  history: ReadonlyMap<RangeRequest, RangeResponse>,
): Promise<TxnOutcome | TxnState> {
  const ops = memberOps(plan.ops, state.clock, store.ks, true);
  const failure = big ? [] : [...shard.readClockOps(), ...reads.memberOps()];
  // Up to one level of pins this is a read-only member txn (no raft round); more pins chain
  // nested levels, which etcd then orders through raft.
  const pins = reads.pins(state, store.maxPins);
  const top = await store.sharedReads[shard.index].read(pinned(pins, [...shard.readClockOps(), ...ops], failure));
  const res = innermost(top, chainDepth(pins.length)) ?? top;
  if (!res.succeeded) {
    if (!top.succeeded && failure.length) return reads.parse(top.responses.slice(1), clockOf(top, 0).clock, BigInt(top.header?.revision ?? '0'), true);
    return freshState(store, shard, reads);
  }
  const clock = clockOf(res, 0).clock;
  const responses = assembleOps(plan.ops, res.responses.slice(1), { ks: store.ks, rev: clock, before: clock, readOnly: true, history });
  return { revision: clock, succeeded: plan.succeeded, responses, wrote: false };
}
