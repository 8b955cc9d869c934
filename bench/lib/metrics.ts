/** Reads counters and gauges from a Prometheus text exposition. */

export async function scrape(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res.text();
}

export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample of metric `name`, with its labels. */
export function series(text: string, name: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of every series of a metric (those whose labels pass `where`, if given); undefined when absent. */
export function counter(text: string, name: string, where?: (labels: Record<string, string>) => boolean): number | undefined {
  let sum: number | undefined;
  for (const s of series(text, name)) if (!where || where(s.labels)) sum = (sum ?? 0) + s.value;
  return sum;
}
