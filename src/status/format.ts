/** `status` output: etcdctl-style tables, or the report as JSON. */
import type { EndpointStatus, StatusReport } from './report.js';

/** A bordered table like etcdctl's `-w table`. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const row = (cells: string[]) => `|${widths.map((w, i) => ` ${(cells[i] ?? '').padEnd(w)} `).join('|')}|`;
  return [line, row(header), line, ...rows.map(row), line].join('\n');
}

/** Bytes as etcdctl prints them (SI units: 20 kB, 1.2 MB). */
export function humanBytes(bytes: string | null): string {
  if (bytes === null) return '-';
  const n = Number(bytes);
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

function health(h: string, endpoints: EndpointStatus[]): string {
  const failing = endpoints.filter((e) => e.error !== null).map((e) => e.endpoint);
  const alarms = endpoints.flatMap((e) => e.errors ?? []);
  return [h, failing.length ? `(down: ${failing.join(', ')})` : '', alarms.length ? `(${alarms.join('; ')})` : ''].filter(Boolean).join(' ');
}

export function formatTable(r: StatusReport): string {
  const c = r.coordinator;
  const via = r.via
    ? [`VIA PROXY ${r.via.endpoint} (${r.via.name}, version ${r.via.version}): its coordinator and shards are shown`, '']
    : [];
  const out = [
    ...via,
    'COORDINATOR',
    table(
      ['ENDPOINTS', 'HEALTH', 'CLOCK REVISION', 'COMPACT REVISION', 'PARTITIONS'],
      [[c.endpoints.map((e) => e.endpoint).join(','), health(c.health, c.endpoints), c.clockRevision ?? '-', c.compactRevision ?? '-', c.partitions === null ? '-' : String(c.partitions)]],
    ),
    '',
    'SHARDS',
    table(
      ['NAME', 'ENDPOINTS', 'HEALTH', 'KEYS', 'DB SIZE', 'PARTITIONS', 'REVISION'],
      r.shards.map((s) => [
        s.name,
        s.endpoints.length ? s.endpoints.map((e) => e.endpoint).join(',') : '(unknown)',
        health(s.health, s.endpoints) + (s.error ? ` (${s.error})` : ''),
        s.keys ?? '-',
        humanBytes(s.dbSize),
        String(s.partitions),
        s.revision ?? '-',
      ]),
    ),
    '',
    'PROXIES',
    table(
      ['ID', 'NAME', 'CLIENT URLS', 'VERSION', 'SINCE'],
      r.proxies.map((p) => [BigInt(p.id).toString(16), p.name, p.clientURLs.join(','), p.version, p.since]),
    ),
  ];
  if (r.notes.length) out.push('', ...r.notes.map((n) => `note: ${n}`));
  return `${out.join('\n')}\n`;
}

export function formatJson(r: StatusReport): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}
