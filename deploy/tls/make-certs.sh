#!/usr/bin/env bash
# Test certificates for docker-compose.tls.yml: a throw-away CA, a server certificate naming every
# compose service, and a client certificate (CN root), in deploy/tls/certs/ (git-ignored). The
# keys are made readable by the containers' users (the proxy image runs as uid 1000): fine for a
# local test setup, not for real keys.
#
#   deploy/tls/make-certs.sh
#   docker compose -f docker-compose.yml -f docker-compose.tls.yml up -d --build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${CERTS_DIR:-$here/certs}
TEST_CERT_SANS="DNS:etcd-coordinator,DNS:etcd-s1,DNS:etcd-s2,DNS:etcd-s3,DNS:proxy-1,DNS:proxy-2" \
  bash "$here/../../scripts/make-test-certs.sh" "$out"
chmod 644 "$out"/*.pem
echo "test certificates in $out"
