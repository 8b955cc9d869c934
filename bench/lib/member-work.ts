/**
 * What etcds and proxies did during a measured run, from their own /metrics (and /proc for CPU
 * time): a sample before and after, and the differences per user request.
 *
 * etcd 3.4 serves /metrics on its client URL. The figures read there:
 * - proposals: etcd_server_proposals_committed_total (a gauge of the committed raft index, so
 *   its difference counts proposals committed);
 * - mvcc puts / ranges / txns: etcd_mvcc_*_total (or the older etcd_debugging_mvcc_*_total);
 *   etcd counts each Txn compare as an mvcc range, so ranges = compares + reads;
 * - watch events: etcd_debugging_mvcc_events_total (events sent to watchers), watchers:
 *   etcd_debugging_mvcc_watcher_total;
 * - requests: grpc_server_handled_total by method (Put, Txn, Range).
 * The proxy's: etcd_metaproxy_client_writes_total, _fence_writes_total, _member_writes_total,
 * _write_retries_total (by reason), _clock_allocations_total, and the sums and counts of its
 * latency histograms (client requests, member txns, coordinator reads, waits for arrival proofs).
 */
import { cpuSeconds } from './cpu.js';
import type { CpuCap, CpuStat } from './cgroup-cpu.js';
import { counter, scrape, series } from './metrics.js';

export const ETCD_FIGURES = ['proposals', 'mvccPuts', 'mvccRanges', 'mvccTxns', 'events', 'putRpcs', 'txnRpcs', 'rangeRpcs'] as const;
export type EtcdFigure = (typeof ETCD_FIGURES)[number];

export interface EtcdCounters {
  figures: Partial<Record<EtcdFigure, number>>;
  /** Gauge: watchers open on this etcd. */
  watchers?: number;
  /** Gauge: backend size, bytes. */
  dbBytes?: number;
  /** Gauge: keys in the store. */
  keys?: number;
}

function first(text: string, names: string[]): number | undefined {
  for (const n of names) {
    const v = counter(text, n);
    if (v !== undefined) return v;
  }
  return undefined;
}

function rpcs(text: string, method: string): number | undefined {
  return counter(text, 'grpc_server_handled_total', (l) => l['grpc_method'] === method && l['grpc_service'] === 'etcdserverpb.KV');
}

export function parseEtcdCounters(text: string): EtcdCounters {
  const figures: Partial<Record<EtcdFigure, number>> = {};
  const set = (k: EtcdFigure, v: number | undefined) => {
    if (v !== undefined) figures[k] = v;
  };
  set('proposals', first(text, ['etcd_server_proposals_committed_total']));
  set('mvccPuts', first(text, ['etcd_mvcc_put_total', 'etcd_debugging_mvcc_put_total']));
  set('mvccRanges', first(text, ['etcd_mvcc_range_total', 'etcd_debugging_mvcc_range_total']));
  set('mvccTxns', first(text, ['etcd_mvcc_txn_total', 'etcd_debugging_mvcc_txn_total']));
  set('events', first(text, ['etcd_debugging_mvcc_events_total']));
  set('putRpcs', rpcs(text, 'Put'));
  set('txnRpcs', rpcs(text, 'Txn'));
  set('rangeRpcs', rpcs(text, 'Range'));
  const out: EtcdCounters = { figures };
  const watchers = first(text, ['etcd_debugging_mvcc_watcher_total']);
  const dbBytes = first(text, ['etcd_mvcc_db_total_size_in_bytes', 'etcd_debugging_mvcc_db_total_size_in_bytes']);
  const keys = first(text, ['etcd_debugging_mvcc_keys_total']);
  if (watchers !== undefined) out.watchers = watchers;
  if (dbBytes !== undefined) out.dbBytes = dbBytes;
  if (keys !== undefined) out.keys = keys;
  return out;
}

/** The proxy's figures that are plain numbers (differences over a run are taken of each). */
export const PROXY_NUMBERS = [
  // Unary client requests answered (etcd_metaproxy_grpc_requests_total, every method and code).
  'requests',
  'clientWrites',
  'fenceWrites',
  'memberWrites',
  'clockAllocations',
  // Progress requests sent to members (etcd_metaproxy_member_progress_requests_total).
  'progressRequests',
  // Sums and counts of latency histograms: client requests (every method), member Txn calls,
  // coordinator Range calls (mostly arrival proofs), and batches' waits for arrival proofs.
  'requestSec',
  'requestCount',
  'memberTxnSec',
  'memberTxnCount',
  'coordinatorReadSec',
  'coordinatorReadCount',
  'proofWaitSec',
  'proofWaitCount',
] as const;

export type ProxyCounters = Partial<Record<(typeof PROXY_NUMBERS)[number], number>> & { retries: Record<string, number> };

export function parseProxyCounters(text: string): ProxyCounters {
  const out: ProxyCounters = { retries: {} };
  const set = (k: Exclude<keyof ProxyCounters, 'retries'>, name: string) => {
    const v = counter(text, name);
    if (v !== undefined) out[k] = v;
  };
  set('requests', 'etcd_metaproxy_grpc_requests_total');
  set('clientWrites', 'etcd_metaproxy_client_writes_total');
  set('fenceWrites', 'etcd_metaproxy_fence_writes_total');
  set('memberWrites', 'etcd_metaproxy_member_writes_total');
  set('clockAllocations', 'etcd_metaproxy_clock_allocations_total');
  set('progressRequests', 'etcd_metaproxy_member_progress_requests_total');
  set('requestSec', 'etcd_metaproxy_grpc_request_duration_seconds_sum');
  set('requestCount', 'etcd_metaproxy_grpc_request_duration_seconds_count');
  const upstream = (field: 'memberTxn' | 'coordinatorRead', member: boolean, method: string) => {
    const where = (l: Record<string, string>) => l['method'] === method && (l['cluster'] === 'coordinator') !== member;
    const sec = counter(text, 'etcd_metaproxy_upstream_request_duration_seconds_sum', where);
    const count = counter(text, 'etcd_metaproxy_upstream_request_duration_seconds_count', where);
    if (sec !== undefined) out[`${field}Sec`] = sec;
    if (count !== undefined) out[`${field}Count`] = count;
  };
  upstream('memberTxn', true, 'Txn');
  upstream('coordinatorRead', false, 'Range');
  set('proofWaitSec', 'etcd_metaproxy_owner_answer_proof_wait_seconds_sum');
  set('proofWaitCount', 'etcd_metaproxy_owner_answer_proof_wait_seconds_count');
  for (const s of series(text, 'etcd_metaproxy_write_retries_total')) {
    const r = s.labels['reason'] ?? '?';
    out.retries[r] = (out.retries[r] ?? 0) + s.value;
  }
  return out;
}

/** An etcd or proxy process the benchmark watches. */
export interface Observed {
  label: string;
  /** 'coordinator' and 'shard' are the meta-cluster's etcds; 'etcd' a plain one. */
  role: 'etcd' | 'coordinator' | 'shard' | 'proxy';
  metricsUrl: string;
  pid: number | undefined;
  cap?: CpuCap;
}

export interface ProcessSample {
  cpuSec?: number;
  cgroup?: CpuStat;
  etcd?: EtcdCounters;
  proxy?: ProxyCounters;
  scrapeError?: string;
}

export interface Sample {
  at: number;
  of: Map<string, ProcessSample>;
}

export async function takeSample(all: Observed[]): Promise<Sample> {
  const at = performance.now();
  const entries = await Promise.all(
    all.map(async (o): Promise<[string, ProcessSample]> => {
      const s: ProcessSample = {};
      if (o.pid !== undefined) {
        const c = cpuSeconds(o.pid);
        if (c !== undefined) s.cpuSec = c;
      }
      if (o.cap) {
        try {
          s.cgroup = o.cap.stat();
        } catch (err) {
          s.scrapeError = `cpu.stat: ${String(err)}`;
        }
      }
      try {
        const text = await scrape(o.metricsUrl);
        if (o.role === 'proxy') s.proxy = parseProxyCounters(text);
        else s.etcd = parseEtcdCounters(text);
      } catch (err) {
        s.scrapeError = String(err);
      }
      return [o.label, s];
    }),
  );
  return { at, of: new Map(entries) };
}

const diff = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? b - a : undefined);

/** Per-process figures over a run (before → after). */
export interface ProcessDelta {
  label: string;
  role: Observed['role'];
  cpuSec?: number;
  /** CPU used in % of one core. */
  cpuPct?: number;
  /** Share of the cgroup's enforcement periods in which it was throttled. */
  throttledShare?: number;
  throttledSec?: number;
  etcd?: Partial<Record<EtcdFigure, number>>;
  watchers?: number;
  proxy?: ProxyCounters;
}

export function deltas(all: Observed[], before: Sample, after: Sample): ProcessDelta[] {
  const wall = (after.at - before.at) / 1000;
  return all.map((o) => {
    const a = before.of.get(o.label) ?? {};
    const b = after.of.get(o.label) ?? {};
    const d: ProcessDelta = { label: o.label, role: o.role };
    const cpu = diff(a.cpuSec, b.cpuSec);
    if (cpu !== undefined) {
      d.cpuSec = cpu;
      d.cpuPct = wall > 0 ? (cpu / wall) * 100 : undefined;
    }
    if (a.cgroup && b.cgroup) {
      const periods = b.cgroup.periods - a.cgroup.periods;
      d.throttledShare = periods > 0 ? (b.cgroup.throttled - a.cgroup.throttled) / periods : 0;
      d.throttledSec = b.cgroup.throttledSec - a.cgroup.throttledSec;
    }
    if (a.etcd && b.etcd) {
      const e: Partial<Record<EtcdFigure, number>> = {};
      for (const k of ETCD_FIGURES) {
        const v = diff(a.etcd.figures[k], b.etcd.figures[k]);
        if (v !== undefined) e[k] = v;
      }
      d.etcd = e;
      if (b.etcd.watchers !== undefined) d.watchers = b.etcd.watchers;
    }
    if (a.proxy && b.proxy) {
      const retries: Record<string, number> = {};
      for (const [k, v] of Object.entries(b.proxy.retries)) retries[k] = v - (a.proxy.retries[k] ?? 0);
      d.proxy = { retries };
      for (const k of PROXY_NUMBERS) {
        const v = diff(a.proxy[k], b.proxy[k]);
        if (v !== undefined) d.proxy[k] = v;
      }
    }
    return d;
  });
}

/** Sum of one etcd figure over processes of the given roles, per `per` user requests. */
export function etcdPer(ds: ProcessDelta[], roles: Observed['role'][], fig: EtcdFigure, per: number): number {
  let sum = 0;
  let seen = false;
  for (const d of ds) {
    if (!roles.includes(d.role) || d.etcd?.[fig] === undefined) continue;
    sum += d.etcd[fig]!;
    seen = true;
  }
  return seen && per > 0 ? sum / per : NaN;
}
