#!/usr/bin/env bash
# Idempotent: installs Debian's prometheus (for e2e/prometheus.test.ts) unless it is already
# there. Quiet unless something fails. Other jobs may hold the dpkg lock: wait for it.
set -euo pipefail

command -v prometheus >/dev/null 2>&1 && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-prometheus: prometheus is missing; run as root or install the prometheus package" >&2; exit 1; }
  sudo=(sudo)
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
apt() {
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup-prometheus: failed: apt-get $*" >&2
    exit 1
  fi
}
# The package lists may be missing on a fresh machine (or a container image).
apt-cache show prometheus >/dev/null 2>&1 || apt update
apt install -y --no-install-recommends prometheus
command -v prometheus >/dev/null 2>&1 || { echo "setup-prometheus: prometheus still not on PATH after apt-get install" >&2; exit 1; }
