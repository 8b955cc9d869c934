/** Complete etcd messages with proto3 defaults, for requests the proxy builds itself. */
import type { RangeRequest } from './types.js';
import { SortOrder, SortTarget } from './types.js';

export function rangeRequest(key: Buffer, rangeEnd: Buffer = Buffer.alloc(0), fields: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key,
    range_end: rangeEnd,
    limit: '0',
    revision: '0',
    sort_order: SortOrder.NONE,
    sort_target: SortTarget.KEY,
    serializable: false,
    keys_only: false,
    count_only: false,
    min_mod_revision: '0',
    max_mod_revision: '0',
    min_create_revision: '0',
    max_create_revision: '0',
    ...fields,
  };
}
