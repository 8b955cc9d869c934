/**
 * The replica records in the coordinator: one key per live proxy under
 * `0xffffff "metaproxy/proxies/" <member id>`, attached to that proxy's coordinator lease, so a
 * replica that dies without deregistering disappears when its lease expires.
 */
import { prefixEnd, sysKey } from '../shard/keyspace.js';
import type { Upstream } from '../upstream/upstream.js';

export const PROXIES_PREFIX = sysKey('proxies/');

/** What a replica publishes about itself (JSON in the coordinator). */
export interface ProxyRecord {
  /** Member id (decimal uint64), stable per replica: derived from its first advertised URL. */
  id: string;
  name: string;
  clientURLs: string[];
  /** The shard endpoints this replica uses, so `status` can reach them without a config file. */
  shards: Record<string, string[]>;
  /** The namespace of user keys in the members (latin1). */
  namespace: string;
  version: string;
  /** ISO time the replica registered. */
  since: string;
}

export function proxyKey(id: string): Buffer {
  return Buffer.concat([PROXIES_PREFIX, Buffer.from(id)]);
}

function parseRecord(raw: Buffer): ProxyRecord | null {
  try {
    const r = JSON.parse(raw.toString('utf8')) as Partial<ProxyRecord>;
    if (typeof r.id !== 'string' || !/^\d+$/.test(r.id) || typeof r.name !== 'string' || !Array.isArray(r.clientURLs)) return null;
    return {
      id: r.id,
      name: r.name,
      clientURLs: r.clientURLs.filter((u): u is string => typeof u === 'string'),
      shards: r.shards && typeof r.shards === 'object' ? r.shards : {},
      namespace: typeof r.namespace === 'string' ? r.namespace : '',
      version: typeof r.version === 'string' ? r.version : 'unknown',
      since: typeof r.since === 'string' ? r.since : '',
    };
  } catch {
    return null;
  }
}

/** Orders records by member id (uint64), as etcd orders its members. */
export function byId(a: ProxyRecord, b: ProxyRecord): number {
  const x = BigInt(a.id);
  const y = BigInt(b.id);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Every registered replica, ordered by member id as etcd orders its members. Malformed records are skipped. */
export async function listProxies(coordinator: Upstream): Promise<ProxyRecord[]> {
  const res = await coordinator.range({ key: PROXIES_PREFIX, range_end: prefixEnd(PROXIES_PREFIX) });
  const records = res.kvs.map((kv) => parseRecord(kv.value)).filter((r): r is ProxyRecord => r !== null);
  return records.sort(byId);
}
