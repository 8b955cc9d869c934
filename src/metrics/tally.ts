/**
 * Counter and gauge children for the per-request paths: inc() adds to a number, and the metric
 * takes what was added when it is read (its collect(), which prom-client runs on every scrape
 * and get()). prom-client's own children hash and validate their labels on every inc.
 */
import type { Counter, Gauge, LabelValues } from 'prom-client';

type Tallied<L extends string> = Counter<L> | Gauge<L>;

export class Tally {
  pending = 0;

  constructor(readonly labels: Readonly<Record<string, string>>) {}

  /** Adds `n` (a counter's tallies only ever add). */
  inc(n = 1): void {
    this.pending += n;
  }
}

const byMetric = new WeakMap<object, Map<string, Tally>>();

/** The tally of one label set of `metric`, made once; the metric must flush tallies in its collect(). */
export function tally<L extends string>(metric: Tallied<L>, labels: LabelValues<L>): Tally {
  let m = byMetric.get(metric);
  if (!m) byMetric.set(metric, (m = new Map()));
  const plain: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (v !== undefined) plain[k] = String(v);
  const key = JSON.stringify(Object.entries(plain).sort());
  let t = m.get(key);
  if (!t) m.set(key, (t = new Tally(plain)));
  return t;
}

/** Moves what the metric's tallies added into it (called from its collect()). */
export function flushTallies<L extends string>(metric: Tallied<L>): void {
  for (const t of byMetric.get(metric)?.values() ?? []) {
    if (t.pending === 0) continue;
    const n = t.pending;
    t.pending = 0;
    metric.inc(t.labels as LabelValues<L>, n);
  }
}
