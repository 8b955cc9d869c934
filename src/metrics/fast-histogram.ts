/**
 * A histogram for the per-request paths, registered in a prom-client registry and exported as
 * prom-client exports its own (same names, `le` labels, `_sum` and `_count`). prom-client's
 * observe() hashes the labels, validates them and allocates a closure and an object on every
 * call, labelled children included: with a few histograms observed per request that was 2-3 %
 * of the proxy's CPU in the hot-key benchmarks. Here a series is looked up once (labels()) and
 * an observation is a bucket search and three additions.
 */
import type { Metric, MetricObjectWithValues, MetricType, MetricValueWithName, Registry } from 'prom-client';

type Labels<L extends string> = Partial<Record<L, string>>;

/** One label set's buckets: counts[i] holds the observations in (bounds[i-1], bounds[i]], the last +Inf. */
export class HistogramSeries {
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  values(name: string): MetricValueWithName<string>[] {
    const out: MetricValueWithName<string>[] = [];
    let acc = 0;
    for (let i = 0; i <= this.bounds.length; i++) {
      acc += this.counts[i];
      out.push({ metricName: `${name}_bucket`, labels: { le: i < this.bounds.length ? this.bounds[i] : '+Inf', ...this.labels }, value: acc });
    }
    out.push({ metricName: `${name}_sum`, labels: { ...this.labels }, value: this.sum });
    out.push({ metricName: `${name}_count`, labels: { ...this.labels }, value: this.count });
    return out;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

export interface FastHistogramConfig<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  buckets: readonly number[];
  registers: Registry[];
}

export class FastHistogram<L extends string = never> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly labelNames: readonly L[];
  private readonly bounds: readonly number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(cfg: FastHistogramConfig<L>) {
    this.name = cfg.name;
    this.help = cfg.help;
    this.labelNames = cfg.labelNames ?? [];
    this.bounds = [...cfg.buckets].sort((a, b) => a - b);
    // Without labels the one series is exported (all zero) from the start, as prom-client does.
    if (this.labelNames.length === 0) this.labels({});
    // The registry only calls get() and reset() of what it holds.
    for (const r of cfg.registers) r.registerMetric(this as unknown as Metric);
  }

  /** The series of one label set (look it up once and keep it on a hot path). */
  labels(values: Labels<L>): HistogramSeries {
    const key = this.labelNames.map((n) => values[n] ?? '').join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      for (const k of Object.keys(values)) {
        if (!(this.labelNames as readonly string[]).includes(k)) throw new Error(`Added label "${k}" is not included in initial labelset: ${JSON.stringify(this.labelNames)}`);
      }
      const labels: Record<string, string> = {};
      for (const n of this.labelNames) if (values[n] !== undefined) labels[n] = String(values[n]);
      s = new HistogramSeries(labels, this.bounds);
      this.series.set(key, s);
    }
    return s;
  }

  observe(...args: [value: number] | [labels: Labels<L>, value: number]): void {
    if (args.length === 1) this.labels({}).observe(args[0]);
    else this.labels(args[0]).observe(args[1]);
  }

  async get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values = [...this.series.values()].flatMap((s) => s.values(this.name));
    // MetricType is a declared enum (no runtime object): its 'histogram' member is this string.
    const type = this.type as unknown as MetricType;
    return { name: this.name, help: this.help, type, aggregator: this.aggregator, values, collect: () => undefined };
  }

  reset(): void {
    for (const s of this.series.values()) s.reset();
  }
}
