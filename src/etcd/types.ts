/**
 * The etcd message types, generated from proto/ (etcd/gen/, `npm run gen:proto`): field names as
 * in the .proto, int64 as decimal strings, bytes as Buffers, enums as numbers, every field
 * present after decode (absent sub-messages undefined), oneof members plus a field naming the set
 * one. Outgoing messages may leave fields out and give int64s as numbers (wire64): the generated
 * encoders treat those as proto3 defaults.
 */
export type {
  AlarmMember,
  AlarmRequest,
  AlarmResponse,
  Compare,
  CompactionRequest,
  CompactionResponse,
  DefragmentResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  HashKVRequest,
  HashKVResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponse,
  Member,
  MemberListResponse,
  MoveLeaderRequest,
  MoveLeaderResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  SnapshotResponse,
  StatusResponse,
  TxnRequest,
  TxnResponse,
} from './gen/rpc.js';
export type { KeyValue } from './gen/kv.js';
export type { LeaseRevokeRequest as LeaseIdRequest } from './gen/rpc.js';

export type Int64 = string;

/**
 * An int64 for an outgoing message: a number when it is exact (the encoder writes those without
 * parsing a decimal string), the decimal string otherwise. Never lossy.
 */
export function wire64(v: bigint): Int64 {
  // Int64 says string so code never does arithmetic on it; the encoder also takes an exact number.
  return (v <= 9007199254740991n && v >= -9007199254740991n ? Number(v) : v.toString()) as unknown as Int64;
}

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;
export const AlarmAction = { GET: 0, ACTIVATE: 1, DEACTIVATE: 2 } as const;
export const AlarmType = { NONE: 0, NOSPACE: 1, CORRUPT: 2 } as const;
