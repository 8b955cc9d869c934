/**
 * The proxy's client-facing TLS, with etcd's options: --cert-file/--key-file (re-read when they
 * change), --trusted-ca-file and --client-cert-auth (clients without a certificate that chains to
 * the trusted CA are refused during the handshake, as etcd refuses them).
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { ClientTls } from '../config/types.js';
import { CheckedCertificateProvider } from './cert-files.js';

export interface ServerTls {
  credentials: grpc.ServerCredentials;
  /** The certificate provider (also used by the HTTPS metrics listener); null without TLS. */
  identity: CheckedCertificateProvider | null;
  ca: CheckedCertificateProvider | null;
}

export function serverTls(cfg: ClientTls | undefined, log: Logger): ServerTls {
  if (!cfg) return { credentials: grpc.ServerCredentials.createInsecure(), identity: null, ca: null };
  const identity = new CheckedCertificateProvider({ certFile: cfg.certFile, keyFile: cfg.keyFile }, 'client TLS', log);
  // As etcd: client certificates are asked for (and required) only with client-cert-auth.
  const ca = cfg.clientCertAuth ? new CheckedCertificateProvider({ caFile: cfg.trustedCaFile }, 'client TLS trusted CA', log) : null;
  // grpc-js names this function's first parameter caCertificateProvider, but passes it on as the
  // identity provider (server-credentials.js): identity first, then the CA (or null).
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(identity, ca, cfg.clientCertAuth);
  return { credentials, identity, ca };
}
