/**
 * The one place where requests meet auth: every service's handlers are wrapped here before
 * the server registers them (server/proxy.ts), so no handler checks permissions itself.
 * A request first resolves who it comes from (the `token` metadata as etcd clients send it,
 * else the client certificate's common name), then passes its method's check
 * (request-checks.ts). Watch streams check each create request (watchPermission).
 *
 * While auth has never been enabled and a request carries no token, nothing is looked up:
 * the hot path costs one map lookup.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { EtcdError } from '../etcd/errors.js';
import { grpcRequests } from '../metrics/registry.js';
import { checkRange, type AuthInfo } from './authorize.js';
import { AuthErrors } from './errors.js';
import { certificateUser, type PeerCall } from './peer-user.js';
import { rawAuthError, REQUEST_CHECKS, type CheckContext, type RequestCheck } from './request-checks.js';
import type { AuthStore } from './store.js';
import type { TokenProvider } from './tokens.js';

export interface GuardDeps {
  store: AuthStore;
  tokens: TokenProvider;
  leaseKeys(id: bigint): Promise<Buffer[]>;
  /**
   * etcd's own request validation (validate.ts) for a method, run first so that a malformed
   * request gets its validation error before any auth error, as in etcd.
   */
  validate(service: string, method: string, req: unknown): boolean;
  logger: Logger;
}

function tokenOf(md: grpc.Metadata): string | null {
  const v = md.get('token')[0] ?? md.get('authorization')[0];
  if (v === undefined) return null;
  return typeof v === 'string' ? v : v.toString('latin1');
}

function asEtcdError(err: unknown): EtcdError {
  if (err instanceof EtcdError) return err;
  return new EtcdError(grpc.status.UNKNOWN, err instanceof Error ? err.message : String(err));
}

/** Go's status error text, which etcd puts in a refused watch's cancel_reason. */
const GO_CODE_NAMES: Partial<Record<grpc.status, string>> = {
  [grpc.status.INVALID_ARGUMENT]: 'InvalidArgument',
  [grpc.status.PERMISSION_DENIED]: 'PermissionDenied',
  [grpc.status.UNAUTHENTICATED]: 'Unauthenticated',
};

function goStatusText(e: EtcdError): string {
  return `rpc error: code = ${GO_CODE_NAMES[e.code] ?? 'Unknown'} desc = ${e.message}`;
}

type UnaryImpl = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => void;
type ServerStreamImpl = (call: grpc.ServerWritableStream<unknown, unknown>) => void;

export class RequestGuard {
  constructor(private readonly d: GuardDeps) {}

  /** etcd's AuthInfoFromCtx: the token's user (an invalid token is an error), else the certificate's. */
  async who(call: PeerCall): Promise<AuthInfo | null> {
    const state = this.d.store.state;
    const token = tokenOf(call.metadata);
    if (token !== null) {
      const info = await this.d.tokens.info(token, state);
      if (!info) throw AuthErrors.invalidAuthToken();
      return info;
    }
    const cn = certificateUser(call);
    return cn === null ? null : { user: cn, revision: this.d.store.state.revision };
  }

  /** Nothing to check: auth off and no token (JWT tokens stay verifiable with auth off, as in etcd). */
  private idle(call: PeerCall): boolean {
    return !this.d.store.state.enabled && call.metadata.get('token').length === 0 && call.metadata.get('authorization').length === 0;
  }

  async check(service: string, method: string, req: unknown, call: PeerCall): Promise<void> {
    const rule: RequestCheck | undefined = REQUEST_CHECKS[service]?.[method];
    if (!rule || this.idle(call)) return;
    await this.orFresher(async () => {
      let who: AuthInfo | null;
      try {
        who = await this.who(call);
      } catch (err) {
        throw service === 'Maintenance' ? rawAuthError(err) : err;
      }
      const ctx: CheckContext = { state: this.d.store.state, who, leaseKeys: (id) => this.d.leaseKeys(id) };
      await rule(req as never, ctx);
    });
  }

  /**
   * Runs a check; when it refuses, reads the auth state again and, if another replica changed
   * it meanwhile, checks once more: a grant made through any replica works at once everywhere
   * (revocations reach this replica through its coordinator watch).
   */
  private async orFresher(run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (err) {
      if (!(err instanceof EtcdError)) throw err;
      const before = this.d.store.state;
      const after = await this.d.store.refresh().catch(() => before);
      if (after === before) throw err;
      await run();
    }
  }

  /** For a watch create request: etcd's cancel reason, or null when permitted. */
  async watchPermission(call: PeerCall, key: Buffer, rangeEnd: Buffer): Promise<string | null> {
    if (this.idle(call)) return null;
    try {
      await this.orFresher(async () => checkRange(this.d.store.state, await this.who(call), key, rangeEnd));
      return null;
    } catch (err) {
      const e = asEtcdError(err);
      const known = [AuthErrors.invalidAuthToken, AuthErrors.authOldRevision, AuthErrors.userEmpty].find((k) => k.is(e));
      return goStatusText((known ?? AuthErrors.permissionDenied)());
    }
  }

  /** Wraps a service's unary and server-streaming handlers with their checks. */
  wrap(service: string, def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
    const out: grpc.UntypedServiceImplementation = { ...impl };
    for (const [method, md] of Object.entries(def)) {
      if (!REQUEST_CHECKS[service]?.[method] || md.requestStream) continue;
      const original = impl[method];
      if (md.responseStream) out[method] = this.wrapServerStream(service, method, original as ServerStreamImpl);
      else out[method] = this.wrapUnary(service, method, original as UnaryImpl);
    }
    return out;
  }

  private refused(method: string, err: unknown): grpc.ServiceError {
    const e = asEtcdError(err);
    if (!(err instanceof EtcdError)) this.d.logger.error({ err, method }, 'auth check failed unexpectedly');
    grpcRequests.inc({ method, code: grpc.status[e.code] ?? String(e.code) });
    return { code: e.code, details: e.message, metadata: new grpc.Metadata(), name: 'EtcdError', message: e.message } as grpc.ServiceError;
  }

  private wrapUnary(service: string, method: string, original: UnaryImpl): UnaryImpl {
    return (call, cb) => {
      if (this.idle(call) || !this.d.validate(service, method, call.request)) return original(call, cb);
      this.check(service, method, call.request, call).then(
        () => original(call, cb),
        (err: unknown) => cb(this.refused(method, err)),
      );
    };
  }

  private wrapServerStream(service: string, method: string, original: ServerStreamImpl): ServerStreamImpl {
    return (call) => {
      if (this.idle(call)) return original(call);
      this.check(service, method, call.request, call).then(
        () => original(call),
        (err: unknown) => call.emit('error', this.refused(method, err)),
      );
    };
  }
}
