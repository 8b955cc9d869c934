#!/usr/bin/env bash
# Build etcd's own load generator (tools/benchmark, Go) from Debian's etcd source package
# and cache it as bench/.cache/bin/benchmark. Idempotent: does nothing when the binary exists
# (pass --force to rebuild).
#
# Everything comes from Debian's archive: the etcd source package (deb-src) and the Go
# dependencies packaged as golang-*-dev (installed under /usr/share/gocode). The build is a
# GOPATH-mode `go build` (GO111MODULE=off), so no Go module proxy is used.
#
# Needs root (apt-get). Exits non-zero with a message saying which step failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="$HERE/.cache/bin"
OUT="$OUT_DIR/benchmark"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { echo "[setup-benchmark-tool] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

if [[ $FORCE -eq 0 && -x "$OUT" ]] && "$OUT" --help >/dev/null 2>&1; then
  log "already built: $OUT"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "needs root for apt-get (run with sudo)"
command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian-based system"

. /etc/os-release
SUITE="${VERSION_CODENAME:-}"
[[ -n "$SUITE" ]] || die "cannot tell the Debian suite (VERSION_CODENAME missing in /etc/os-release)"

# --- 1. a deb-src line for the configured suite ---------------------------------------------
has_deb_src() {
  grep -Rqs -E '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null && return 0
  grep -Rqs -E '^[[:space:]]*Types:.*deb-src' /etc/apt/sources.list.d/*.sources 2>/dev/null && return 0
  return 1
}
if ! has_deb_src; then
  # Reuse the mirror the system already uses for its main suite.
  MIRROR=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    MIRROR=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z "$MIRROR" && -f /etc/apt/sources.list ]]; then
    MIRROR=$(awk -v s="$SUITE" '$1=="deb" && $3==s {print $2; exit}' /etc/apt/sources.list)
  fi
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
  log "adding deb-src for $SUITE from $MIRROR"
  cat > /etc/apt/sources.list.d/etcd-metaproxy-deb-src.sources <<EOF
Types: deb-src
URIs: $MIRROR
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi

# --- 2. toolchain and Go dependencies from Debian -------------------------------------------
log "apt-get update"
apt-get update -qq || die "apt-get update"
log "installing golang-go golang-etcd-server-dev dpkg-dev"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-etcd-server-dev dpkg-dev >/dev/null \
  || die "apt-get install golang-go golang-etcd-server-dev dpkg-dev"
command -v go >/dev/null || die "go not on PATH after installing golang-go"

# --- 3. etcd's source package ---------------------------------------------------------------
WORK="$(mktemp -d /tmp/etcd-benchmark-build.XXXXXX)"
chmod 755 "$WORK" # apt-get source downloads as the _apt user
trap 'rm -rf "$WORK"' EXIT
log "apt-get source etcd (in $WORK)"
# dpkg-source also applies Debian's patches, which adapt etcd to the packaged dependency
# versions. (It may warn that it cannot verify the .dsc's inline signature without
# debian-keyring; apt-get has already checked the files against the signed Sources index.)
( cd "$WORK" && apt-get source -qq --download-only etcd >/dev/null && dpkg-source -x ./etcd_*.dsc src >/dev/null ) \
  || die "apt-get source etcd (is a deb-src line for $SUITE reachable?)"

# --- 4. GOPATH-mode build -------------------------------------------------------------------
# The tool imports go.etcd.io/etcd/... (this source tree) and third-party packages that Debian
# ships under /usr/share/gocode/src. Put the source tree at its import path in a private GOPATH
# that comes first, so its own packages win over golang-etcd-server-dev's copies.
GP="$WORK/gopath"
mkdir -p "$GP/src/go.etcd.io"
ln -s "$WORK/src" "$GP/src/go.etcd.io/etcd"
mkdir -p "$OUT_DIR"
log "go build ./tools/benchmark (GOPATH mode)"
(
  cd "$GP/src/go.etcd.io/etcd"
  export GO111MODULE=off GOPATH="$GP:/usr/share/gocode" GOFLAGS= GOCACHE="$WORK/gocache" CGO_ENABLED=0
  go build -o "$OUT.tmp" ./tools/benchmark
) || die "go build ./tools/benchmark (see the errors above)"
mv "$OUT.tmp" "$OUT"
"$OUT" --help >/dev/null 2>&1 || die "built binary does not run"
log "built $OUT"
