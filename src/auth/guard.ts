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
import { REQUEST_CHECKS, type CheckContext, type RequestCheck } from './request-checks.js';
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
    const who = await this.who(call);
    const ctx: CheckContext = { state: this.d.store.state, who, leaseKeys: (id) => this.d.leaseKeys(id) };
    await rule(req as never, ctx);
  }

  /** For a watch create request: etcd's cancel reason, or null when permitted. */
  async watchPermission(call: PeerCall, key: Buffer, rangeEnd: Buffer): Promise<string | null> {
    if (this.idle(call)) return null;
    try {
      const who = await this.who(call);
      checkRange(this.d.store.state, who, key, rangeEnd);
      return null;
    } catch (err) {
      const e = asEtcdError(err);
      const known = [AuthErrors.invalidAuthToken(), AuthErrors.authOldRevision(), AuthErrors.userEmpty()].map((x) => x.message);
      return known.includes(e.message) ? e.message : AuthErrors.permissionDenied().message;
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
