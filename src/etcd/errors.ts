/**
 * etcd's client-visible errors: gRPC code plus the exact message etcd sends, because clients
 * (kube-apiserver, clientv3, etcdctl) match on these strings.
 */
import { status } from '@grpc/grpc-js';

export class EtcdError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

const e = (code: status, message: string) => () => new EtcdError(code, message);

export const Errors = {
  emptyKey: e(status.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  invalidSortOption: e(status.INVALID_ARGUMENT, 'etcdserver: invalid sort option'),
  keyNotFound: e(status.INVALID_ARGUMENT, 'etcdserver: key not found'),
  valueProvided: e(status.INVALID_ARGUMENT, 'etcdserver: value is provided'),
  leaseProvided: e(status.INVALID_ARGUMENT, 'etcdserver: lease is provided'),
  tooManyOps: e(status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'),
  duplicateKey: e(status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'),
  requestTooLarge: e(status.INVALID_ARGUMENT, 'etcdserver: request is too large'),
  compacted: e(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: e(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'),
  leaseNotFound: e(status.NOT_FOUND, 'etcdserver: requested lease not found'),
  /** etcd's overload answer (ErrTooManyRequests); the proxy's when its memory budget is spent. */
  tooManyRequests: e(status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'),
  /** A call the client cancelled (its answer is never seen). */
  cancelled: e(status.CANCELLED, 'context canceled'),
  noSpace: e(status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'),
  badLeaderTransferee: e(status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'),
  notSupported: (what: string) => new EtcdError(status.UNIMPLEMENTED, `etcd-metaproxy: ${what} is not supported yet`),
  /** Keys at or above the reserved prefix hold the proxy's own data. */
  reservedKey: e(status.INVALID_ARGUMENT, 'etcd-metaproxy: keys starting with 0xffffff are reserved'),
  crossShard: (shards: string[]) =>
    new EtcdError(
      status.FAILED_PRECONDITION,
      `etcd-metaproxy: cross-shard transaction: its keys live on shards ${shards.join(', ')}; ` +
        'a transaction that writes must keep all its keys on one shard (see routingPrefixSegments)',
    ),
  unavailable: (what: string, detail: string) =>
    new EtcdError(status.UNAVAILABLE, `etcd-metaproxy: ${what} unavailable: ${detail}`),
};

/** gRPC service errors carry code + details; grpc-js sends `details` as grpc-message. */
export interface GrpcLikeError {
  code?: number;
  details?: string;
  message?: string;
}

export function isGrpcError(err: unknown): err is GrpcLikeError & Error {
  return typeof err === 'object' && err !== null && typeof (err as GrpcLikeError).code === 'number';
}
