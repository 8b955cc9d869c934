/**
 * Node load generator: several forked worker processes (one Node process tops out near 3k unary
 * calls/s per core), each with its own gRPC channels, all running at once; their latencies are
 * merged for the percentiles.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onCleanup, stopChild } from './cleanup.js';
import type { Measurement, Workload } from './workloads.js';
import type { WorkerJob, WorkerResult } from '../loadgen-worker.js';

const workerPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'loadgen-worker.ts');

export interface NodeRunOptions {
  endpoint: string;
  clients: number;
  conns: number;
  durationSec: number;
  workers: number;
  warmupSec?: number;
  /** Called when the workers start measuring (after warm-up) and when they are done. */
  onMeasureStart?: () => void;
  onMeasureEnd?: () => void;
}

export async function runNode(w: Workload, target: string, o: NodeRunOptions): Promise<Measurement> {
  const workers = Math.max(1, Math.min(o.workers, o.clients));
  const jobs: Promise<WorkerResult>[] = [];
  for (let i = 0; i < workers; i++) {
    const share = (total: number) => Math.floor(total / workers) + (i < total % workers ? 1 : 0);
    const job: WorkerJob = {
      endpoint: o.endpoint,
      workload: w,
      clients: share(o.clients),
      conns: Math.max(1, share(o.conns)),
      warmupMs: (o.warmupSec ?? 1) * 1000,
      durationMs: o.durationSec * 1000,
      workerIndex: i,
    };
    const child = fork(workerPath, [], {
      execArgv: ['--import', 'tsx'],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const unregister = onCleanup(`loadgen worker ${i}`, () => stopChild(child, 1000));
    jobs.push(
      new Promise<WorkerResult>((resolve, reject) => {
        child.once('message', (m: { ok: boolean; res?: WorkerResult; error?: string }) =>
          m.ok ? resolve(m.res!) : reject(new Error(`loadgen worker ${i}: ${m.error}`)),
        );
        child.once('exit', (code) => reject(new Error(`loadgen worker ${i} exited with ${code}`)));
        child.send(job);
      }).finally(unregister),
    );
  }
  const startTimer = setTimeout(() => o.onMeasureStart?.(), (o.warmupSec ?? 1) * 1000);
  const results = await Promise.all(jobs).finally(() => clearTimeout(startTimer));
  o.onMeasureEnd?.();
  const ops = results.reduce((s, r) => s + r.ops, 0);
  const errors = results.reduce((s, r) => s + r.errors, 0);
  const seconds = Math.max(...results.map((r) => r.seconds));
  const all = new Float64Array(ops);
  let off = 0;
  for (const r of results) {
    all.set(r.latenciesMs, off);
    off += r.latenciesMs.length;
  }
  all.sort();
  const firstError = results.find((r) => r.firstError)?.firstError;
  return {
    workload: w.name,
    target,
    ops,
    errors,
    seconds,
    opsPerSec: ops / seconds,
    p50Ms: percentile(all, 0.5),
    p99Ms: percentile(all, 0.99),
    ...(firstError ? { note: firstError } : {}),
  };
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
