/**
 * Credentials for the proxy's connections to upstream clusters: plain text for http://
 * endpoints; TLS for https:// ones, with the cluster's CA (or the system's) and, for members
 * started with --client-cert-auth, a client certificate. Files are re-read when they change.
 */
import * as grpc from '@grpc/grpc-js';
import type { UpstreamTls } from '../config/types.js';
import { CheckedCertificateProvider, readCertFiles } from './cert-files.js';

/** One credentials object per cluster (its endpoints share the providers). */
export function channelCredentials(url: string, tls: UpstreamTls | undefined): grpc.ChannelCredentials {
  if (!url.startsWith('https://')) return grpc.credentials.createInsecure();
  if (!tls) return grpc.credentials.createSsl();
  const identity = tls.certFile ? new CheckedCertificateProvider({ certFile: tls.certFile, keyFile: tls.keyFile }, 'upstream TLS') : null;
  if (tls.caFile) {
    const ca = new CheckedCertificateProvider({ caFile: tls.caFile }, 'upstream TLS CA');
    return grpc.experimental.createCertificateProviderChannelCredentials(ca, identity);
  }
  // The system's CAs: grpc-js's providers need a CA file, so the client certificate is read once.
  const files = readCertFiles({ certFile: tls.certFile || undefined, keyFile: tls.keyFile || undefined });
  return grpc.credentials.createSsl(null, files.key ?? null, files.cert ?? null);
}

/** http(s)://host:port or host:port → host:port. */
export function targetOf(url: string): string {
  return url.replace(/^[a-z]+:\/\//, '').replace(/\/+$/, '');
}
