/**
 * The user of a client that authenticated with a TLS certificate: the certificate's common
 * name, as etcd uses it (etcd: --client-cert-auth; auth/store.go AuthInfoFromTLS). grpc-js
 * reports a peer certificate only for a TLS connection whose client certificate it verified,
 * so a plain-text connection, or one without a (trusted) certificate, has no such user. As
 * etcd, a request relayed by the gRPC gateway (metadata grpcgateway-accept) is not trusted.
 */
import type * as grpc from '@grpc/grpc-js';

export interface PeerCall {
  metadata: grpc.Metadata;
  getAuthContext?: () => { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } | null;
}

export function certificateUser(call: PeerCall): string | null {
  const cert = call.getAuthContext?.()?.sslPeerCertificate;
  if (!cert) return null;
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (!name) return null;
  if (call.metadata.get('grpcgateway-accept').length > 0) return null;
  return name;
}
