// The per-request metrics (metrics/fast-histogram.ts, metrics/tally.ts) export exactly what
// prom-client's own metrics export for the same observations: prom-client is the oracle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FastHistogram } from '../src/metrics/fast-histogram.js';
import { flushTallies, tally } from '../src/metrics/tally.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];

/** A metric's values without prom-client's exemplar field (null when exemplars are off). */
const valuesOf = async (m: { get(): Promise<{ values: { metricName?: string; labels: object; value: number }[] }> }) =>
  (await m.get()).values.map(({ metricName, labels, value }) => ({ metricName, labels, value }));

test('a fast histogram exports what a prom-client histogram does for the same observations', async () => {
  const theirs = new Registry();
  const ours = new Registry();
  const cfg = { name: 'x_seconds', help: 'h', labelNames: ['method', 'code'] as const, buckets: BUCKETS };
  const oracle = new Histogram({ ...cfg, registers: [theirs] });
  const fast = new FastHistogram({ ...cfg, registers: [ours] });
  const series = fast.labels({ method: 'Put', code: 'OK' });
  // On a bound, between bounds, above the last, zero, and a second label set.
  for (const v of [0.001, 0.0005, 0.5, 3, 0, 0.01, 0.0100001]) {
    oracle.observe({ method: 'Put', code: 'OK' }, v);
    series.observe(v);
  }
  oracle.observe({ method: 'Range', code: 'OK' }, 0.02);
  fast.observe({ method: 'Range', code: 'OK' }, 0.02);
  assert.equal(await ours.metrics(), await theirs.metrics());
  assert.deepEqual(await valuesOf(fast), await valuesOf(oracle));

  // Reset empties the series, as prom-client's reset does for what it then exports.
  ours.resetMetrics();
  theirs.resetMetrics();
  oracle.observe({ method: 'Put', code: 'OK' }, 0.2);
  series.observe(0.2);
  assert.deepEqual((await valuesOf(fast)).filter((v) => 'method' in v.labels && v.labels.method === 'Put'), await valuesOf(oracle));
});

test('a fast histogram without labels exports its zero series from the start, as prom-client does', async () => {
  const theirs = new Registry();
  const ours = new Registry();
  const oracle = new Histogram({ name: 'n', help: 'h', buckets: [1, 8], registers: [theirs] });
  const fast = new FastHistogram({ name: 'n', help: 'h', buckets: [1, 8], registers: [ours] });
  assert.equal(await ours.metrics(), await theirs.metrics());
  oracle.observe(7);
  fast.observe(7);
  assert.equal(await ours.metrics(), await theirs.metrics());
});

test('a fast histogram refuses what prom-client refuses: an unknown label, a value that is not a number', () => {
  const fast = new FastHistogram({ name: 'r', help: 'h', labelNames: ['method'] as const, buckets: BUCKETS, registers: [] });
  assert.throws(() => fast.labels({ method: 'Put', other: 'x' } as { method: string }), /not included in initial labelset/);
  assert.throws(() => fast.observe({ method: 'Put' }, Number.NaN), /not a valid number/);
});

test('tallies reach their counter and gauge when the metric is read, and only what was added since', async () => {
  const reg = new Registry();
  const counter: Counter<'code'> = new Counter({
    name: 'c_total',
    help: 'h',
    labelNames: ['code'] as const,
    registers: [reg],
    collect() {
      flushTallies(this);
    },
  });
  const gauge: Gauge<'use'> = new Gauge({
    name: 'g',
    help: 'h',
    labelNames: ['use'] as const,
    registers: [reg],
    collect() {
      flushTallies(this);
    },
  });
  const ok = tally(counter, { code: 'OK' });
  assert.equal(tally(counter, { code: 'OK' }), ok, 'one tally per label set');
  ok.inc();
  ok.inc(2);
  counter.inc({ code: 'NOT_FOUND' });
  const held = tally(gauge, { use: 'watch' });
  held.inc(100);
  held.inc(-30);
  const values = async () => [...(await counter.get()).values, ...(await gauge.get()).values].map((v) => [v.labels, v.value]);
  assert.deepEqual(await values(), [
    [{ code: 'NOT_FOUND' }, 1],
    [{ code: 'OK' }, 3],
    [{ use: 'watch' }, 70],
  ]);
  held.inc(-70);
  ok.inc();
  assert.deepEqual(await values(), [
    [{ code: 'NOT_FOUND' }, 1],
    [{ code: 'OK' }, 4],
    [{ use: 'watch' }, 0],
  ]);
  assert.match(await reg.metrics(), /c_total\{code="OK"\} 4/);
});
