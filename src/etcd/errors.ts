/**
 * etcd's client-visible errors: gRPC code plus the exact message etcd sends, because clients
 * (kube-apiserver, clientv3, etcdctl) match on these strings. Inside the proxy they are told
 * apart by name, as etcd's rpctypes errors are (`Errors.compacted.is(err)`), never by
 * matching text; the one place text is looked up is where an etcd answer comes off the wire
 * (fromWire), as clientv3 maps a gRPC status to its named error.
 */
import { status } from '@grpc/grpc-js';

export class EtcdError extends Error {
  constructor(
    readonly code: status,
    message: string,
    /** etcd's name for the error (Errors' key: 'compacted' for ErrCompacted), when it has one. */
    readonly kind: string | null = null,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

/** One of etcd's named errors: call it for a new error; is() tells an error of this kind. */
export interface NamedError {
  (): EtcdError;
  readonly kind: string;
  readonly code: status;
  readonly message: string;
  is(err: unknown): boolean;
}

/** Every named error by its message, for errors that arrive as code and text (fromWire). */
const byMessage = new Map<string, NamedError>();

/** Names each entry of a table of etcd errors by its key (the key is the error's kind). */
export function namedErrors<K extends string>(table: Record<K, readonly [status, string]>): Record<K, NamedError> {
  const out = {} as Record<K, NamedError>;
  for (const kind of Object.keys(table) as K[]) {
    const [code, message] = table[kind];
    const make = (): EtcdError => new EtcdError(code, message, kind);
    const named: NamedError = Object.assign(make, {
      kind,
      code,
      message,
      is: (err: unknown): boolean => err instanceof EtcdError && err.kind === kind,
    });
    out[kind] = named;
    byMessage.set(message, named);
  }
  return out;
}

/** An error as an etcd server sent it (gRPC code and message), named when etcd names it. */
export function fromWire(code: status, message: string): EtcdError {
  return new EtcdError(code, message, byMessage.get(message)?.kind ?? null);
}

export const Errors = {
  ...namedErrors({
    emptyKey: [status.INVALID_ARGUMENT, 'etcdserver: key is not provided'],
    invalidSortOption: [status.INVALID_ARGUMENT, 'etcdserver: invalid sort option'],
    keyNotFound: [status.INVALID_ARGUMENT, 'etcdserver: key not found'],
    valueProvided: [status.INVALID_ARGUMENT, 'etcdserver: value is provided'],
    leaseProvided: [status.INVALID_ARGUMENT, 'etcdserver: lease is provided'],
    tooManyOps: [status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'],
    duplicateKey: [status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'],
    requestTooLarge: [status.INVALID_ARGUMENT, 'etcdserver: request is too large'],
    compacted: [status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'],
    futureRev: [status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'],
    leaseNotFound: [status.NOT_FOUND, 'etcdserver: requested lease not found'],
    /** etcd's overload answer (ErrTooManyRequests); the proxy's when its memory budget is spent. */
    tooManyRequests: [status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'],
    /** A call the client cancelled (its answer is never seen). */
    cancelled: [status.CANCELLED, 'context canceled'],
    noSpace: [status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'],
    badLeaderTransferee: [status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'],
    /** Keys at or above the reserved prefix hold the proxy's own data. */
    reservedKey: [status.INVALID_ARGUMENT, 'etcd-metaproxy: keys starting with 0xffffff are reserved'],
  }),
  notSupported: (what: string) => new EtcdError(status.UNIMPLEMENTED, `etcd-metaproxy: ${what} is not supported yet`),
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

/**
 * Codes with which etcd refuses a request without applying it (a full backend, a request too
 * large, too many requests, a permission). Transport failures, timeouts and the like may have
 * been applied.
 */
const NOT_APPLIED = new Set<number>([
  status.INVALID_ARGUMENT,
  status.FAILED_PRECONDITION,
  status.RESOURCE_EXHAUSTED,
  status.PERMISSION_DENIED,
  status.UNAUTHENTICATED,
  status.OUT_OF_RANGE,
]);

/** etcd refused the request: nothing of it was applied. */
export function notApplied(err: unknown): boolean {
  return err instanceof EtcdError && NOT_APPLIED.has(err.code);
}
