/**
 * Builds the proxy's auth pieces from the config: the coordinator-backed auth store (followed
 * by a watch), the token provider (simple or JWT, as etcd's --auth-token), the request guard
 * and the Auth service.
 */
import type { Logger } from 'pino';
import { RequestGuard } from '../auth/guard.js';
import { JwtTokens } from '../auth/jwt-tokens.js';
import { DEFAULT_AUTH, parseAuthToken } from '../config/auth-options.js';
import { SimpleTokens } from '../auth/simple-tokens.js';
import { AuthStore } from '../auth/store.js';
import type { TokenProvider } from '../auth/tokens.js';
import type { ProxyConfig } from '../config/types.js';
import { checkDelete, checkPut, checkRange, checkTxn } from '../etcd/validate.js';
import type { LeaseCluster } from '../lease/cluster-view.js';
import { timeToLive } from '../lease/verbs.js';
import type { Upstream } from '../upstream/upstream.js';
import { authService } from './auth.js';
import type { HeaderSource } from './header.js';
import type { Handlers } from './service.js';

export interface AuthSetupDeps {
  cfg: ProxyConfig;
  /** The keys of a lease, for the guard's LeaseRevoke check; its clock for response headers. */
  cluster: LeaseCluster;
  coordinator: Upstream;
  header: HeaderSource;
  logger: Logger;
  maxRequestBytes: number;
}

export interface RunningAuth {
  guard: RequestGuard;
  service: Handlers<'Auth'>;
  close(): void;
}

export async function startAuth(d: AuthSetupDeps): Promise<RunningAuth> {
  const opts = d.cfg.auth ?? DEFAULT_AUTH;
  const kind = parseAuthToken(opts.token);
  const auth = new AuthStore(d.coordinator, d.logger);
  let tokens: TokenProvider;
  if (kind.kind === 'jwt') {
    tokens = new JwtTokens(kind);
  } else {
    const simple = new SimpleTokens(d.coordinator, opts.tokenTtl, d.logger);
    auth.onTokenEvent = (key, value) => simple.onTokenEvent(key, value);
    tokens = simple;
  }
  await auth.start();
  const maxTxnOps = d.cfg.limits.maxTxnOps;
  const validators: Record<string, (req: never) => void> = {
    Range: checkRange,
    Put: checkPut,
    DeleteRange: checkDelete,
    Txn: (r: never) => checkTxn(r, { maxTxnOps }),
  };
  const guard = new RequestGuard({
    store: auth,
    tokens,
    logger: d.logger,
    leaseKeys: async (id) => {
      try {
        return (await timeToLive(d.cluster, { ID: id.toString(), keys: true })).keys;
      } catch {
        return [];
      }
    },
    validate: (service, method, req) => {
      const v = service === 'KV' ? validators[method] : undefined;
      if (!v) return true;
      try {
        v(req as never);
        return true;
      } catch {
        return false;
      }
    },
  });
  const service = authService({ ...d, clock: d.cluster.clock, auth, tokens, guard, bcryptCost: opts.bcryptCost });
  return {
    guard,
    service,
    close: () => {
      auth.close();
      tokens.close();
    },
  };
}
