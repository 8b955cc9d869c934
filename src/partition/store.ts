/** Records the partition map in the coordinator on first start and checks it on every later one. */
import { CompareResult, CompareTarget } from '../etcd/types.js';
import { sysKey } from '../shard/keyspace.js';
import { cmp, putOp, rangeOp } from '../shard/shard.js';
import type { Upstream } from '../shard/upstream.js';
import type { PartitionMap } from './map.js';
import { mapMismatch, parsePartitionMap } from './map.js';

export const PARTITION_MAP_KEY = sysKey('partition-map');

export class PartitionMapMismatch extends Error {}

export async function loadOrRecordPartitionMap(coordinator: Upstream, wanted: PartitionMap): Promise<PartitionMap> {
  const res = await coordinator.txn(
    {
      compare: [cmp(CompareTarget.CREATE, CompareResult.EQUAL, PARTITION_MAP_KEY, { create_revision: '0' })],
      success: [putOp(PARTITION_MAP_KEY, Buffer.from(JSON.stringify(wanted)))],
      failure: [rangeOp(PARTITION_MAP_KEY)],
    },
    false,
  );
  if (res.succeeded) return wanted;
  const raw = res.responses[0].response_range?.kvs[0]?.value;
  if (!raw) throw new Error('partition map vanished from the coordinator while reading it');
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
