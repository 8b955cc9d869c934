/** etcd's compare semantics, evaluated on meta state (DESIGN: the member cannot see meta fields). */
import type { Compare } from '../etcd/types.js';
import { CompareResult, CompareTarget } from '../etcd/types.js';
import type { MetaKV } from '../shard/meta-kv.js';

function cmpBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareOne(c: Compare, kv: MetaKV | null): boolean {
  let result: number;
  switch (c.target) {
    case CompareTarget.VALUE:
      result = Buffer.compare(kv?.value ?? Buffer.alloc(0), c.value ?? Buffer.alloc(0));
      break;
    case CompareTarget.CREATE:
      result = cmpBig(kv?.create ?? 0n, BigInt(c.create_revision ?? '0'));
      break;
    case CompareTarget.MOD:
      result = cmpBig(kv?.mod ?? 0n, BigInt(c.mod_revision ?? '0'));
      break;
    case CompareTarget.VERSION:
      result = cmpBig(kv?.version ?? 0n, BigInt(c.version ?? '0'));
      break;
    case CompareTarget.LEASE:
      result = cmpBig(kv?.lease ?? 0n, BigInt(c.lease ?? '0'));
      break;
    default:
      // etcd compares nothing for an unknown target: the result stays "equal".
      result = 0;
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return result === 0;
    case CompareResult.NOT_EQUAL:
      return result !== 0;
    case CompareResult.GREATER:
      return result > 0;
    case CompareResult.LESS:
      return result < 0;
    default:
      return true;
  }
}

/** `kvs` are the keys the compare selects (one key, or every key of its range). */
export function evalCompare(c: Compare, kvs: MetaKV[]): boolean {
  // A VALUE compare on a missing key fails: there is no way to express a missing value.
  if (kvs.length === 0) return c.target === CompareTarget.VALUE ? false : compareOne(c, null);
  return kvs.every((kv) => compareOne(c, kv));
}
