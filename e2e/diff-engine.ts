/**
 * Differential testing engine: runs one scripted list of etcd requests against a reference
 * ("oracle", a plain etcd) and a subject (the proxy) through raw gRPC clients, step by step, and
 * compares the results field by field.
 *
 * Revisions are compared by order, not by value (the proxy's global clock and a plain etcd's
 * revision counter start at different numbers, and the proxy may leave unused revisions):
 *
 * - A step "writes" when the oracle's header revision rises above every revision it reported
 *   before. The header revisions of writing steps form, per side, the write list W (in script
 *   order). W must be strictly increasing on each side: a subject that orders two writes the
 *   other way round fails here.
 * - Every create_revision / mod_revision in a response must be *exactly* one of that side's W
 *   entries and is replaced by its position ("r7"); a value outside W becomes "r7+gap" (after
 *   the 7th write, not equal to any write) and so never equals the oracle's exact rank. A wrong
 *   create_revision, a mod_revision from the wrong write, or a wrong version therefore fails.
 * - Header revisions: a writing step's header (and the headers of the put/delete responses in a
 *   writing txn) must be its own write revision (checked through W and rank equality). Range
 *   responses inside a txn follow the read rule below. A step that did not write (a read, a delete of a missing key, a txn whose
 *   executed branch only reads, a compaction) is checked only for "header ≥ every mod_revision
 *   in the response" (documented difference: a read of one shard reports the latest revision
 *   that shard has seen), and the value itself is not compared. Except a read at a past
 *   revision (a Range with revision > 0, or a Txn with such a Range): etcd answers it with its
 *   current revision, not the requested one, so its headers are ranked ("rN": after the N-th
 *   write) and compared.
 * - Requests can reference earlier results per side (`ctx.rev('step')` is that side's header
 *   revision of the step), so historical reads and MOD compares use each side's own numbers.
 *
 * Errors compare gRPC code and message exactly. cluster_id, member_id and raft_term are dropped.
 */
import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { CallResult, RawClient } from './grpc-raw.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Msg = any;

export type Service = 'KV' | 'Lease' | 'Maintenance' | 'Cluster';

/** What a request may reference: the results of earlier steps on the same side. */
export interface Ctx {
  /** Header revision of an earlier step (this side's number). */
  rev(step: string): bigint;
  /** Full response of an earlier (successful) step. */
  res(step: string): Msg;
  /** Highest header revision this side reported so far. */
  readonly maxRev: bigint;
}

export interface Step {
  name: string;
  service: Service;
  method: string;
  req: Msg | ((ctx: Ctx) => Msg);
  /**
   * 'ignore': do not compare or rank this step's header, and keep its revision out of W on
   * both sides (for steps whose revision accounting legitimately differs, e.g. LeaseRevoke).
   */
  header?: 'ignore';
  /** Top-level response fields to leave out of the comparison (e.g. a lease's remaining TTL). */
  ignoreFields?: string[];
  /** Rewrites a successful raw response on both sides before comparison (e.g. sort a set). */
  transform?: (res: Msg) => Msg;
  /** Extra per-side check on the raw result; returns a problem description or undefined. */
  check?: (r: CallResult, side: string) => string | undefined;
}

export interface Section {
  name: string;
  steps: Step[];
}

export interface Mismatch {
  section: string;
  step: string;
  request: string;
  expected: unknown;
  got: unknown;
  problem: string;
}

/** One side's bookkeeping. */
class Side implements Ctx {
  readonly results = new Map<string, CallResult>();
  /** Header revisions of writing steps in script order; null = this side did not write there. */
  readonly writes: Array<bigint | null> = [];
  maxRev = 0n;

  constructor(
    readonly label: string,
    readonly client: RawClient,
  ) {}

  rev(step: string): bigint {
    const r = this.results.get(step);
    if (!r) throw new Error(`${this.label}: no result for step ${step}`);
    if (!r.ok) throw new Error(`${this.label}: step ${step} failed (${status[r.code]}: ${r.details}), no revision`);
    return BigInt(r.res.header.revision);
  }

  res(step: string): Msg {
    const r = this.results.get(step);
    if (!r) throw new Error(`${this.label}: no result for step ${step}`);
    if (!r.ok) throw new Error(`${this.label}: step ${step} failed (${status[r.code]}: ${r.details})`);
    return r.res;
  }

  lastWrite(): bigint {
    for (let i = this.writes.length - 1; i >= 0; i--) {
      const w = this.writes[i];
      if (w !== null && w !== undefined) return w;
    }
    return 0n;
  }

  /** "rN" when v is the N-th write (1-based), "rN+gap" when it lies after the N-th. */
  rank(v: bigint, exactOnly: boolean): string {
    if (v === 0n) return '0';
    let floor = 0;
    for (let i = 0; i < this.writes.length; i++) {
      const w = this.writes[i];
      if (w === null || w === undefined) continue;
      if (w === v) return `r${i + 1}`;
      if (w < v) floor = i + 1;
    }
    return exactOnly ? `r${floor}+gap` : `r${floor}`;
  }
}

/** True if a Range request, or a Range anywhere in a Txn request, reads at a past revision. */
export function readsPastRevision(method: string, req: Msg): boolean {
  const past = (r: Msg) => !!r && BigInt(r.revision ?? 0) > 0n;
  const inOps = (ops: Msg[] | undefined): boolean =>
    (ops ?? []).some((op) => past(op.request_range) || (op.request_txn && (inOps(op.request_txn.success) || inOps(op.request_txn.failure))));
  if (method === 'Range') return past(req);
  if (method === 'Txn') return inOps(req?.success) || inOps(req?.failure);
  return false;
}

/** True if the request (a Txn, recursively in both branches) contains a put or delete. */
export function hasWriteOps(ops: Msg[] | undefined): boolean {
  for (const op of ops ?? []) {
    if (op.request_put || op.request_delete_range) return true;
    if (op.request_txn && (hasWriteOps(op.request_txn.success) || hasWriteOps(op.request_txn.failure))) return true;
  }
  return false;
}

function bytesToString(buf: Buffer): string {
  if (buf.length > 128) return `<${buf.length} bytes sha1:${createHash('sha1').update(buf).digest('hex').slice(0, 12)}>`;
  const s = buf.toString('utf8');
  if (Buffer.from(s, 'utf8').equals(buf) && !/[\x00-\x1f]/.test(s)) return s;
  return `hex:${buf.toString('hex')}`;
}

function isKeyValue(o: Msg): boolean {
  return o && typeof o === 'object' && 'create_revision' in o && 'mod_revision' in o && 'key' in o && 'version' in o;
}

/** Largest mod_revision of any KeyValue anywhere below `o`. */
function maxModRevision(o: Msg): bigint {
  let max = 0n;
  const walk = (x: Msg) => {
    if (x === null || typeof x !== 'object' || Buffer.isBuffer(x)) return;
    if (Array.isArray(x)) return x.forEach(walk);
    if (isKeyValue(x)) {
      const m = BigInt(x.mod_revision);
      if (m > max) max = m;
      return;
    }
    for (const v of Object.values(x)) walk(v);
  };
  walk(o);
  return max;
}

interface NormOptions {
  side: Side;
  /** The step wrote (per the oracle): headers are ranked exactly. */
  wrote: boolean;
  ignoreHeader: boolean;
  problems: string[];
  /** Inside a txn's response_range: its header is a read's (etcd reports the read revision). */
  inRange?: boolean;
  /** A read at a past revision: its headers are the current revision, ranked. */
  pastRead?: boolean;
}

function normalise(x: Msg, o: NormOptions, parent?: Msg): Msg {
  if (x === null || x === undefined) return x ?? null;
  if (Buffer.isBuffer(x)) return bytesToString(x);
  if (Array.isArray(x)) return x.map((e) => normalise(e, o, parent));
  if (typeof x !== 'object') return x;
  if (isKeyValue(x)) {
    return {
      key: bytesToString(x.key),
      create_revision: o.side.rank(BigInt(x.create_revision), true),
      mod_revision: o.side.rank(BigInt(x.mod_revision), true),
      version: x.version,
      value: bytesToString(x.value),
      lease: x.lease,
    };
  }
  const out: Record<string, Msg> = {};
  for (const [k, v] of Object.entries(x as Record<string, Msg>)) {
    if (k === 'header') {
      if (v === null || o.ignoreHeader) continue;
      const rev = BigInt(v.revision);
      if (rev === 0n) {
        // etcd leaves some inner headers unset (e.g. a nested txn's); compared exactly.
        out.header = { revision: '0' };
      } else if (o.wrote && !o.inRange) {
        out.header = { revision: o.side.rank(rev, false) };
      } else {
        const mod = maxModRevision(x);
        if (rev < mod) o.problems.push(`${o.side.label}: header.revision ${rev} < mod_revision ${mod} in the same response`);
        out.header = { revision: o.pastRead && !o.wrote ? `current ${o.side.rank(rev, false)}` : 'read' };
      }
      continue;
    }
    out[k] = normalise(v, k === 'response_range' ? { ...o, inRange: true } : o, x);
  }
  return out;
}

function normaliseResult(r: CallResult, o: NormOptions, ignoreFields: string[], transform?: (res: Msg) => Msg): Msg {
  if (!r.ok) return { error: { code: status[r.code] ?? r.code, details: r.details } };
  const n = normalise(transform ? transform(r.res) : r.res, o);
  for (const f of ignoreFields) delete n[f];
  return n;
}

/** JSON for reports: Buffers as text, long arrays abbreviated. */
export function describe(x: Msg, max = 1500): string {
  const s = JSON.stringify(x, (_k, v) => {
    if (v && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data)) return bytesToString(Buffer.from(v.data));
    if (typeof v === 'bigint') return v.toString();
    if (Array.isArray(v) && v.length > 12) return [...v.slice(0, 6), `... ${v.length - 12} more ...`, ...v.slice(-6)];
    return v;
  });
  return s.length > max ? `${s.slice(0, max)}...(${s.length} chars)` : s;
}

function deepEqual(a: Msg, b: Msg): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Runs sections step by step on both sides. Returns a runner whose `section(s)` executes one
 * section and returns its mismatches (later sections still run after a mismatch).
 */
export class DiffRunner {
  readonly oracle: Side;
  readonly subject: Side;
  /** Highest revision the oracle reported so far (to detect which steps write). */
  private oracleCurrent = 0n;
  readonly log: string[] = [];

  constructor(oracle: RawClient, subject: RawClient, labels: [string, string] = ['oracle', 'subject']) {
    this.oracle = new Side(labels[0], oracle);
    this.subject = new Side(labels[1], subject);
  }

  /** Reads the oracle's current revision; call once before the first section. */
  async init(): Promise<void> {
    const r = await this.oracle.client.call('KV', 'Range', { key: Buffer.from('\0'), count_only: true });
    if (!r.ok) throw new Error(`oracle not reachable: ${r.details}`);
    this.oracleCurrent = BigInt(r.res.header.revision);
  }

  /** Hook for self-tests: lets a test corrupt the subject's raw results. */
  mutateSubject?: (step: Step, r: CallResult) => CallResult;

  async runSection(section: Section): Promise<Mismatch[]> {
    const out: Mismatch[] = [];
    for (const step of section.steps) out.push(...(await this.runStep(section.name, step)));
    return out;
  }

  private async call(side: Side, step: Step): Promise<{ req: Msg; r: CallResult }> {
    let req: Msg;
    try {
      req = typeof step.req === 'function' ? step.req(side) : step.req;
    } catch (err) {
      // A reference to an earlier step that failed on this side.
      return { req: undefined, r: { ok: false, code: -1, details: `request not built: ${(err as Error).message}` } };
    }
    const r = await side.client.call(step.service as 'KV', step.method, req, { deadlineMs: 15_000 });
    return { req, r };
  }

  async runStep(sectionName: string, step: Step): Promise<Mismatch[]> {
    const problems: string[] = [];
    const o = await this.call(this.oracle, step);
    let s = await this.call(this.subject, step);
    if (this.mutateSubject) s = { req: s.req, r: this.mutateSubject(step, s.r) };
    this.oracle.results.set(step.name, o.r);
    this.subject.results.set(step.name, s.r);

    // Did this step write? (Per the oracle.)
    let wrote = false;
    if (o.r.ok && o.r.res?.header) {
      const rev = BigInt(o.r.res.header.revision);
      wrote = rev > this.oracleCurrent;
      if (rev > this.oracleCurrent) this.oracleCurrent = rev;
    }
    if (step.header === 'ignore') wrote = false;

    if (wrote) {
      this.oracle.writes.push(BigInt(o.r.ok ? o.r.res.header.revision : 0));
      if (s.r.ok && s.r.res?.header) {
        const rev = BigInt(s.r.res.header.revision);
        const last = this.subject.lastWrite();
        if (rev <= last) {
          problems.push(`${this.subject.label}: write revision ${rev} is not above the previous write's ${last} (writes out of order)`);
          this.subject.writes.push(null);
        } else {
          this.subject.writes.push(rev);
        }
      } else {
        this.subject.writes.push(null);
      }
    }
    for (const side of [this.oracle, this.subject]) {
      const r = side.results.get(step.name)!;
      if (r.ok && r.res?.header) {
        const rev = BigInt(r.res.header.revision);
        if (rev > side.maxRev) side.maxRev = rev;
      }
      const extra = step.check?.(r, side.label);
      if (extra) problems.push(`${side.label}: ${extra}`);
    }

    const ignoreFields = step.ignoreFields ?? [];
    const ignoreHeader = step.header === 'ignore';
    const pastRead = readsPastRevision(step.method, o.req);
    const no = normaliseResult(o.r, { side: this.oracle, wrote, ignoreHeader, problems, pastRead }, ignoreFields, step.transform);
    const ns = normaliseResult(s.r, { side: this.subject, wrote, ignoreHeader, problems, pastRead }, ignoreFields, step.transform);
    const mismatches: Mismatch[] = [];
    const base = { section: sectionName, step: step.name, request: `${step.service}.${step.method} ${describe(s.req ?? o.req, 600)}` };
    if (!deepEqual(no, ns)) mismatches.push({ ...base, expected: no, got: ns, problem: 'results differ' });
    for (const p of problems) mismatches.push({ ...base, expected: no, got: ns, problem: p });
    this.log.push(`${sectionName}/${step.name}: ${mismatches.length === 0 ? 'ok' : 'MISMATCH'} wrote=${wrote}\n  ${describe(no, 100_000)}`);
    return mismatches;
  }
}

export function formatMismatches(ms: Mismatch[]): string {
  return ms
    .map(
      (m) =>
        `[${m.section}] step "${m.step}": ${m.problem}\n  request:  ${m.request}\n  expected: ${describe(m.expected)}\n  got:      ${describe(m.got)}`,
    )
    .join('\n');
}
