#!/usr/bin/env bash
# Builds etcd's Go clientv3 ExampleAuth (from Debian's golang-etcd-server-dev) as a small
# program whose endpoints come from $ENDPOINTS, so e2e/auth-go-example.test.ts can run it against
# the proxy. Output: e2e/.cache/example-auth (binary) and e2e/.cache/example-auth.expected
# (the example's "// Output:" lines). Idempotent: does nothing when both exist.
#
# Offline, GOPATH mode (GO111MODULE=off) over /usr/share/gocode: no Go module proxy is used.
# Installs golang-go and golang-etcd-server-dev with apt-get when missing (needs root then).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="$HERE/e2e/.cache"
BIN="$OUT_DIR/example-auth"
EXPECTED="$OUT_DIR/example-auth.expected"
SRC=/usr/share/gocode/src/go.etcd.io/etcd/clientv3/example_auth_test.go

log() { echo "[build-example-auth] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

if [[ -x "$BIN" && -s "$EXPECTED" ]]; then
  exit 0
fi

if ! command -v go >/dev/null || [[ ! -f "$SRC" ]]; then
  [[ $(id -u) -eq 0 ]] || die "golang-go and golang-etcd-server-dev are missing, and installing them needs root"
  log "installing golang-go golang-etcd-server-dev"
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends golang-go golang-etcd-server-dev >&2 \
    || { apt-get -o DPkg::Lock::Timeout=600 update >&2 && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends golang-go golang-etcd-server-dev >&2; } \
    || die "apt-get install golang-go golang-etcd-server-dev"
fi
[[ -f "$SRC" ]] || die "$SRC not found (golang-etcd-server-dev)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PKG="$WORK/src/exampleauth"
mkdir -p "$PKG" "$OUT_DIR"

# The example as a program: package main, ExampleAuth() called from main().
sed -e 's/^package clientv3_test$/package main/' -e 's/^func ExampleAuth()/func exampleAuth()/' "$SRC" > "$PKG/example_auth.go"
grep -q '^func exampleAuth()' "$PKG/example_auth.go" || die "ExampleAuth not found in $SRC"
cat > "$PKG/main.go" <<'GO'
package main

import (
	"os"
	"strings"
	"time"
)

var (
	endpoints   = strings.Split(os.Getenv("ENDPOINTS"), ",")
	dialTimeout = 5 * time.Second
)

func main() { exampleAuth() }
GO
# The expected output: the "// Output:" comment and the comment lines after it.
awk '/\/\/ Output:/ {on=1; sub(/.*\/\/ Output: ?/, ""); print; next} on && /^[[:space:]]*\/\// {sub(/^[[:space:]]*\/\/ ?/, ""); print; next} on {exit}' "$SRC" > "$EXPECTED.tmp"
[[ -s "$EXPECTED.tmp" ]] || die "no // Output: in $SRC"

log "building (GOPATH mode, offline)"
( cd "$PKG" && GOPATH="$WORK:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOCACHE="${GOCACHE:-$OUT_DIR/go-build}" go build -o "$BIN.tmp" . ) >&2 || die "go build"
mv "$BIN.tmp" "$BIN"
mv "$EXPECTED.tmp" "$EXPECTED"
log "built $BIN"
