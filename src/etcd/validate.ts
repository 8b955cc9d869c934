/**
 * Request checks etcd runs before it applies anything (etcdserver/api/v3rpc/key.go), in the
 * same order, so a bad request gets the same error from the proxy as from etcd.
 */
import { Errors } from './errors.js';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types.js';
import { SortOrder, SortTarget } from './types.js';

export interface Limits {
  maxTxnOps: number;
}

export function checkRange(r: RangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey();
  if (!Object.values(SortOrder).includes(r.sort_order as 0)) throw Errors.invalidSortOption();
  if (!Object.values(SortTarget).includes(r.sort_target as 0)) throw Errors.invalidSortOption();
}


export function checkPut(r: PutRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey();
  if (r.ignore_value && r.value.length !== 0) throw Errors.valueProvided();
  if (r.ignore_lease && r.lease !== '0') throw Errors.leaseProvided();
}

export function checkDelete(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey();
}

export function checkTxn(r: TxnRequest, limits: Limits): void {
  checkTxnOps(r, limits.maxTxnOps);
  // etcd checks put/delete overlaps after the cheap checks, to avoid quadratic work.
  checkIntervals(r.success);
  checkIntervals(r.failure);
}

function checkTxnOps(r: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > maxTxnOps) throw Errors.tooManyOps();
  for (const c of r.compare) if (c.key.length === 0) throw Errors.emptyKey();
  for (const op of r.success) checkOp(op, maxTxnOps - opc);
  for (const op of r.failure) checkOp(op, maxTxnOps - opc);
}

function checkOp(op: RequestOp, maxTxnOps: number): void {
  if (op.request_range) return checkRange(op.request_range);
  if (op.request_put) return checkPut(op.request_put);
  if (op.request_delete_range) return checkDelete(op.request_delete_range);
  if (op.request_txn) return checkTxnOps(op.request_txn, maxTxnOps);
  throw Errors.keyNotFound(); // an empty RequestOp
}

/** A delete interval [start, end); end '' = a single point; etcd's affine end '' is +infinity only for intervals. */
interface Interval {
  start: string;
  end: string | null; // null: the point `start`
}

function intersectsPoint(dels: Interval[], k: string): boolean {
  for (const d of dels) {
    if (d.end === null) {
      if (d.start === k) return true;
    } else if (k >= d.start && k < d.end) {
      return true;
    }
  }
  return false;
}

/**
 * etcd forbids a txn branch from putting a key twice or putting a key it also deletes, nested
 * txns included (puts in the then/else of one nested txn may repeat: only one runs).
 */
export function checkIntervals(reqs: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of reqs) {
    const d = op.request_delete_range;
    if (!d) continue;
    dels.push(
      d.range_end.length !== 0
        ? { start: d.key.toString('latin1'), end: d.range_end.toString('latin1') }
        : { start: d.key.toString('latin1'), end: null },
    );
  }
  const puts = new Set<string>();
  for (const op of reqs) {
    const t = op.request_txn;
    if (!t) continue;
    const then = checkIntervals(t.success);
    const els = checkIntervals(t.failure);
    for (const k of then.puts) {
      if (puts.has(k) || intersectsPoint(dels, k)) throw Errors.duplicateKey();
      puts.add(k);
    }
    for (const k of els.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw Errors.duplicateKey();
      if (intersectsPoint(dels, k)) throw Errors.duplicateKey();
      puts.add(k);
    }
    dels.push(...then.dels, ...els.dels);
  }
  for (const op of reqs) {
    const p = op.request_put;
    if (!p) continue;
    const k = p.key.toString('latin1');
    if (puts.has(k) || intersectsPoint(dels, k)) throw Errors.duplicateKey();
    puts.add(k);
  }
  return { puts, dels };
}
