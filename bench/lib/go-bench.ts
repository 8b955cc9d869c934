/**
 * Runs etcd's own Go `benchmark` tool (built by bench/setup-benchmark-tool.sh) and parses its
 * report. The tool counts requests (--total), not time, so each run is preceded by a short
 * calibration run (which doubles as warm-up) that sizes --total to the wanted duration.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onCleanup, stopChild } from './cleanup.js';
import { pad4, type Measurement, type Workload } from './workloads.js';

export const GO_BENCHMARK_BIN = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '.cache',
  'bin',
  'benchmark',
);

export function goBenchmarkAvailable(bin = GO_BENCHMARK_BIN): boolean {
  return existsSync(bin);
}

export interface GoRunOptions {
  endpoint: string;
  clients: number;
  conns: number;
  durationSec: number;
  bin?: string;
  /** Called right before and after the measured run (not the calibration). */
  onMeasureStart?: () => void;
  onMeasureEnd?: () => void;
}

export interface GoReport {
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  firstError?: string;
}

export function goArgs(w: Workload, o: GoRunOptions, total: number): string[] {
  const common = [`--endpoints=${o.endpoint}`, `--conns=${o.conns}`, `--clients=${o.clients}`, '--precise'];
  if (w.kind === 'put') {
    return [
      ...common,
      'put',
      `--total=${total}`,
      `--key-space-size=${w.keySpace}`,
      `--key-size=${w.keySize}`,
      `--val-size=${w.valSize}`,
    ];
  }
  const key = w.rangeEnd ? w.key : `${w.key}${pad4(0)}`;
  return [
    ...common,
    'range',
    key,
    ...(w.rangeEnd ? [w.rangeEnd] : []),
    `--consistency=${w.serializable ? 's' : 'l'}`,
    `--total=${total}`,
  ];
}

export function parseGoReport(out: string): GoReport {
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const opsPerSec = num(/Requests\/sec:\s*([\d.eE+-]+)/);
  const seconds = num(/Total:\s*([\d.eE+-]+)\s*secs/);
  const p50 = num(/\n\s*50% in ([\d.eE+-]+) secs/);
  const p99 = num(/\n\s*99% in ([\d.eE+-]+) secs/);
  if (opsPerSec === undefined || seconds === undefined) {
    throw new Error(`cannot parse benchmark output:\n${out.slice(-2000)}`);
  }
  let errors = 0;
  let firstError: string | undefined;
  const errSection = /Error distribution:\n([\s\S]*?)(?:\n\n|$)/.exec(out);
  if (errSection) {
    for (const line of errSection[1]!.split('\n')) {
      const m = /^\s*\[(\d+)\]\s*(.*)$/.exec(line);
      if (m) {
        errors += Number(m[1]);
        firstError ??= m[2];
      }
    }
  }
  return {
    seconds,
    opsPerSec,
    // When every request failed the tool prints no latency distribution.
    p50Ms: p50 !== undefined ? p50 * 1000 : NaN,
    p99Ms: p99 !== undefined ? p99 * 1000 : NaN,
    errors,
    firstError,
  };
}

export async function runGoOnce(w: Workload, o: GoRunOptions, total: number): Promise<GoReport> {
  // Generous bound: the tool has no duration limit of its own.
  return runGoArgs(goArgs(w, o, total), Math.max(60_000, o.durationSec * 10_000), o.bin);
}

/** Runs the tool with `args` (killed after `limitMs`) and parses its report. */
export async function runGoArgs(args: string[], limitMs: number, bin = GO_BENCHMARK_BIN): Promise<GoReport> {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const unregister = onCleanup('go benchmark', () => stopChild(child, 1000));
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-8000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  unregister();
  if (code !== 0) {
    throw new Error(`benchmark exited with ${code}: ${err.split('\n').filter((l) => !l.startsWith('INFO')).join('\n').slice(-2000)}`);
  }
  return parseGoReport(out);
}

/** Calibrates, then runs for about `durationSec`. */
export async function runGo(w: Workload, target: string, o: GoRunOptions): Promise<Measurement> {
  const calTotal = Math.max(o.clients * 10, 1000);
  const cal = await runGoOnce(w, o, calTotal);
  const total = Math.min(5_000_000, Math.max(o.clients * 10, Math.round(cal.opsPerSec * o.durationSec)));
  o.onMeasureStart?.();
  const r = await runGoOnce(w, o, total);
  o.onMeasureEnd?.();
  return {
    workload: w.name,
    target,
    ops: total,
    errors: r.errors,
    seconds: r.seconds,
    opsPerSec: r.opsPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    ...(r.firstError ? { note: r.firstError } : {}),
  };
}
