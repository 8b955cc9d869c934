#!/usr/bin/env bash
# Runs a command with jemalloc preloaded when the library is installed (Debian: libjemalloc2),
# unless ETCD_METAPROXY_MALLOC=glibc. Why: after a member outage's catch-up, glibc's malloc kept
# ~120 MiB of freed memory (fragmentation) 20 s later; with jemalloc the RSS went back below its
# level before (README "Bounded memory"). `--path` prints the library found (empty if none).
set -euo pipefail
lib=""
for f in /usr/lib/*/libjemalloc.so.2 /usr/lib/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2; do
  if [ -e "$f" ]; then
    lib="$f"
    break
  fi
done
if [ "${1:-}" = "--path" ]; then
  echo "$lib"
  exit 0
fi
if [ -n "$lib" ] && [ "${ETCD_METAPROXY_MALLOC:-jemalloc}" != "glibc" ]; then
  export LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$lib"
fi
exec "$@"
