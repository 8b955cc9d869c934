/**
 * The partition map: how many partitions, how a key is routed, and which shard owns each
 * partition. Recorded once in the coordinator; every proxy must route identically, so a proxy
 * whose configuration disagrees with the recorded map refuses to start.
 */
export interface PartitionMap {
  format: 1;
  partitions: number;
  routingPrefixSegments: number;
  /** Shard names in order; `owner[p]` indexes into it. */
  shards: string[];
  owner: number[];
}

export function defaultPartitionMap(partitions: number, routingPrefixSegments: number, shards: string[]): PartitionMap {
  const owner = Array.from({ length: partitions }, (_, p) => p % shards.length);
  return { format: 1, partitions, routingPrefixSegments, shards: [...shards], owner };
}

/** Why `recorded` cannot serve a proxy configured as `wanted`, or null when it can. */
export function mapMismatch(recorded: PartitionMap, wanted: PartitionMap): string | null {
  if (recorded.partitions !== wanted.partitions) {
    return `partitions: recorded ${recorded.partitions}, configured ${wanted.partitions}`;
  }
  if (recorded.routingPrefixSegments !== wanted.routingPrefixSegments) {
    return `routingPrefixSegments: recorded ${recorded.routingPrefixSegments}, configured ${wanted.routingPrefixSegments}`;
  }
  if (recorded.shards.join('\n') !== wanted.shards.join('\n')) {
    return `shards: recorded [${recorded.shards.join(', ')}], configured [${wanted.shards.join(', ')}]`;
  }
  return null;
}

/** Field of the placeholder `etcd-metaproxy restore` records until its restore is complete. */
export const RESTORING_MARKER = 'restoring';

export function parsePartitionMap(raw: Buffer): PartitionMap {
  const m = JSON.parse(raw.toString('utf8')) as PartitionMap;
  if ('importing' in m && m.importing === true) {
    throw new Error('an import into these clusters (etcd-metaproxy import) is running or was interrupted; stop it (SIGINT/SIGTERM) or run it again to finish');
  }
  if (RESTORING_MARKER in m && m[RESTORING_MARKER] === true) {
    throw new Error('a restore into these clusters (etcd-metaproxy restore) has not finished; wipe them and restore again');
  }
  if (m.format !== 1 || !Array.isArray(m.shards) || !Array.isArray(m.owner) || m.owner.length !== m.partitions) {
    throw new Error('partition map in the coordinator is malformed');
  }
  return m;
}
