/** Records the partition map in the coordinator on first start and checks it on every later one. */
import { sysKey } from '../shard/keyspace.js';
import { createIfAbsent } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';
import type { PartitionMap } from './map.js';
import { mapMismatch, parsePartitionMap } from './map.js';

export const PARTITION_MAP_KEY = sysKey('partition-map');

export class PartitionMapMismatch extends Error {}

export async function loadOrRecordPartitionMap(coordinator: Upstream, wanted: PartitionMap): Promise<PartitionMap> {
  const raw = await createIfAbsent(coordinator, PARTITION_MAP_KEY, Buffer.from(JSON.stringify(wanted)));
  if (raw === null) return wanted;
  const recorded = parsePartitionMap(raw);
  const why = mapMismatch(recorded, wanted);
  if (why) {
    throw new PartitionMapMismatch(
      `the coordinator records a different partition map (${why}); ` +
        'proxies that route differently would corrupt data, so this one refuses to start',
    );
  }
  return recorded;
}
