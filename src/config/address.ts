/** Parsing and normalising of listen addresses and endpoint URLs. */

export interface HostPort {
  host: string;
  port: number;
}

/** `host:port` or `[v6]:port` with port 0..65535; undefined if malformed. */
export function parseHostPort(s: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2], port };
}

/** host:port as it appears in a URL (IPv6 literals bracketed). */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/**
 * `http(s)://host[:port][/]` → `scheme://host[:port]`; bare `host:port` → `http://host:port`.
 * Undefined for anything else (paths, queries, credentials or other schemes make no sense for
 * an etcd endpoint).
 */
export function normaliseEndpoint(s: string): string | undefined {
  const text = s.trim();
  if (!text.includes('://')) {
    const hp = parseHostPort(text);
    return hp && hp.port > 0 ? `http://${formatHostPort(hp)}` : undefined;
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) return undefined;
  if (!url.hostname) return undefined;
  return `${url.protocol}//${url.host}`;
}
