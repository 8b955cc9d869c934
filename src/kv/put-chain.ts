/**
 * Put chains: blind puts of one hot key applied by one member put (DESIGN "Write path": writes
 * to one hot key queue in the owner and go out in order, several per batch).
 *
 * On the owner, writes to one key take turns (key-turns.ts): each waits for the one before it
 * to be answered, one member round trip per write. etcd refuses a txn that puts one key twice,
 * so they cannot share a batch either. A blind put (no compare, no prev_kv, no lease, a whole
 * value) does not depend on the state it overwrites, so the blind puts that arrive while a
 * write to their key is waiting for its turn join it as a chain: when the first one's turn
 * comes, it is planned as usual and its member put carries the later ones (envelope.ts
 * format 2), each at its own revision, consecutive after the first. The watch decoder gives
 * every put its event and version; reads inside the chain find each put's value.
 */
import type { PutRequest, RequestOp, TxnRequest } from '../etcd/types.js';
import { revHeader } from '../etcd/header.js';
import { encodeEnvelope } from '../shard/envelope.js';
import type { ChainEntry } from '../shard/envelope.js';
import type { Keyspace } from '../shard/keyspace.js';
import { putOp } from '../upstream/ops.js';
import { leaseIndexOps } from '../lease/index-ops.js';
import type { PlannedOp } from './txn-plan.js';
import type { TxnOutcome } from './txn-outcome.js';

/** Puts one chain carries after its first (bounded: one member request holds them all). */
const MAX_LINKS = 255;
const MAX_LINK_BYTES = 256 * 1024;

/** A blind put waiting in a chain for its outcome. */
export interface ChainLink {
  value: Buffer;
  resolve(out: TxnOutcome): void;
  reject(err: unknown): void;
}

/** A chain whose first put waits for its key's turn; later blind puts join it until it closes. */
class OpenChain {
  readonly links: ChainLink[] = [];
  bytes = 0;

  constructor(readonly epoch: bigint) {}
}

/** The open chains of one shard, by member key (latin1). */
export class PutChains {
  private readonly open = new Map<string, OpenChain>();

  /** This put's outcome once the open chain of `key` applied it; null when there is none to join. */
  join(key: string, epoch: bigint, value: Buffer): Promise<TxnOutcome> | null {
    const chain = this.open.get(key);
    if (!chain || chain.epoch !== epoch || chain.links.length >= MAX_LINKS || chain.bytes + value.length > MAX_LINK_BYTES) return null;
    chain.bytes += value.length;
    // A copy: the link outlives the request message, which it must not pin.
    const own = Buffer.from(value);
    return new Promise((resolve, reject) => chain.links.push({ value: own, resolve, reject }));
  }

  /** Opens a chain on `key` for a blind put about to wait for its turn (the last one opened is joined). */
  start(key: string, epoch: bigint): OpenChain {
    const chain = new OpenChain(epoch);
    this.open.set(key, chain);
    return chain;
  }

  /** Closes the chain (its first put's turn came): the puts that joined it, in arrival order. */
  close(key: string, chain: OpenChain): ChainLink[] {
    if (this.open.get(key) === chain) this.open.delete(key);
    return chain.links;
  }
}

/** The put of a txn that may start or join a chain, else null. */
export function chainablePut(txn: TxnRequest): PutRequest | null {
  if (txn.compare.length || txn.failure.length || txn.success.length !== 1) return null;
  const p = txn.success[0].request_put;
  if (!p || p.prev_kv || p.ignore_value || p.ignore_lease || BigInt(p.lease) !== 0n) return null;
  return p;
}

/**
 * The member ops of a chain: its first put, planned as usual (`op`, at revision `first`), and
 * the links' values at first+1.. in one member put whose value is the last one's.
 */
export function chainOps(op: Extract<PlannedOp, { kind: 'put' }>, first: bigint, links: readonly Buffer[], ks: Keyspace): RequestOp[] {
  const n = BigInt(links.length);
  const key = ks.toMember(op.req.key);
  const earlier: ChainEntry[] = [{ rev: first, value: op.value ?? op.req.value }];
  links.slice(0, -1).forEach((value, i) => earlier.push({ rev: first + 1n + BigInt(i), value }));
  const value = encodeEnvelope(first + n, op.create ?? first, op.lease, links[links.length - 1], op.delta + n, earlier);
  return [putOp(key, value), ...leaseIndexOps(key, op.leaseChange)];
}

/** What a put of the chain answers: a put at its own revision (no prev_kv was asked for). */
export function linkOutcome(rev: bigint): TxnOutcome {
  return { revision: rev, succeeded: true, responses: [{ response: 'response_put', response_put: { header: revHeader(rev), prev_kv: undefined } }], wrote: true };
}
