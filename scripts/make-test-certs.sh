#!/usr/bin/env bash
# Makes a throw-away test CA and certificates with openssl, for trying TLS locally (README
# "Security", docker-compose.tls.yml) and for the e2e tests. Never use these in production.
#
#   make-test-certs.sh DIR                      CA (ca.pem, ca-key.pem) if DIR has none, then
#                                               server.pem/server-key.pem and client.pem/client-key.pem
#   make-test-certs.sh DIR issue NAME CN [SAN]  one more certificate NAME.pem/NAME-key.pem from DIR's CA
#
# Server certificates name localhost and 127.0.0.1 plus any SANs given (as DNS:x or IP:x, or in
# $TEST_CERT_SANS, comma-separated); every certificate is good for TLS server and client use.
# The client certificate's common name is $CLIENT_CN (default "root": etcd's user for it).
set -euo pipefail

command -v openssl >/dev/null || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get -o DPkg::Lock::Timeout=600 install -y -q openssl >/dev/null
  else
    echo "make-test-certs.sh: openssl is needed" >&2
    exit 1
  fi
}

dir=${1:?usage: make-test-certs.sh DIR [issue NAME CN [SAN...]]}
mkdir -p "$dir"
cd "$dir"

if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -keyout ca-key.pem -out ca.pem -subj "/CN=etcd-metaproxy test CA $(openssl rand -hex 4)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

issue() {
  local name=$1 cn=$2
  shift 2
  local sans="DNS:localhost,IP:127.0.0.1"
  for s in "$@"; do sans="$sans,$s"; done
  if [ -n "${TEST_CERT_SANS:-}" ]; then sans="$sans,$TEST_CERT_SANS"; fi
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$name-key.pem.tmp" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$sans" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -set_serial "0x$(openssl rand -hex 8)" \
    -days 825 -extfile "$name.ext" -out "$name.pem.tmp" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
  chmod 600 "$name-key.pem.tmp"
  # Renamed into place (key first): a watcher never reads a half-written file.
  mv "$name-key.pem.tmp" "$name-key.pem"
  mv "$name.pem.tmp" "$name.pem"
}

if [ "${2:-}" = issue ]; then
  issue "${3:?NAME}" "${4:?CN}" "${@:5}"
else
  issue server "${SERVER_CN:-etcd-metaproxy test server}"
  issue client "${CLIENT_CN:-root}"
fi
