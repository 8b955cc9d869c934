#!/usr/bin/env bash
# Installs what e2e/patroni.test.ts runs (as root, on Debian): Patroni with its etcd client
# (python3-etcd) and PostgreSQL. Idempotent and quiet; exits non-zero when they cannot be
# installed (the test then skips, saying why). apt waits for other installs (dpkg lock).
set -euo pipefail

have() {
  [ -x /usr/bin/patroni ] && [ -x /usr/bin/patronictl ] &&
    /usr/bin/python3 -c 'import etcd' 2>/dev/null &&
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
have && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-patroni: not root and no sudo: install patroni python3-etcd postgresql" >&2; exit 1; }
  sudo=(sudo -n)
fi
command -v apt-get >/dev/null 2>&1 || { echo "setup-patroni: no apt-get (not Debian?): install patroni python3-etcd postgresql" >&2; exit 1; }

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
if ! { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends patroni python3-etcd postgresql; } >"$log" 2>&1; then
  tail -20 "$log" >&2
  echo "setup-patroni: apt-get could not install patroni python3-etcd postgresql" >&2
  exit 1
fi
have || { echo "setup-patroni: installed, but patroni, python3-etcd or initdb is still missing" >&2; exit 1; }
