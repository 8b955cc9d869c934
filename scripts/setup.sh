#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine with Node 20 (as root): etcd + etcdctl from
# Debian, node_modules matching package-lock.json, and the build in dist/. Quiet unless
# something fails.
set -euo pipefail
cd "$(dirname "$0")/.."

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Runs a command with its output captured; on failure prints that output and stops.
quiet() {
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: failed: $*" >&2
    exit 1
  fi
}

if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: etcd is missing; run as root or install etcd-server and etcd-client" >&2; exit 1; }
    sudo=(sudo)
  fi
  quiet "${sudo[@]}" apt-get update
  quiet "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server etcd-client
fi

# jemalloc, preloaded by scripts/with-jemalloc.sh (README "Bounded memory": glibc's malloc keeps
# what a big catch-up freed). Optional: without it the proxy runs on glibc's malloc.
if [ -z "$(bash scripts/with-jemalloc.sh --path)" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  if ! env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libjemalloc2 >"$log" 2>&1; then
    apt-get update >"$log" 2>&1 && env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libjemalloc2 >"$log" 2>&1 ||
      echo "setup: libjemalloc2 could not be installed; the proxy runs on glibc's malloc" >&2
  fi
fi

# node_modules is stale when npm's record of the installed tree (node_modules/.package-lock.json)
# disagrees with package-lock.json (optional packages for other platforms are never installed).
deps_fresh() {
  node --input-type=module -e '
    import fs from "node:fs";
    const read = (f) => JSON.parse(fs.readFileSync(f, "utf8"));
    if (!fs.existsSync("package-lock.json")) {
      const pkg = read("package.json");
      const names = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies });
      process.exit(names.every((n) => fs.existsSync(`node_modules/${n}/package.json`)) ? 0 : 1);
    }
    if (!fs.existsSync("node_modules/.package-lock.json")) process.exit(1);
    const want = read("package-lock.json").packages ?? {};
    const have = read("node_modules/.package-lock.json").packages ?? {};
    for (const [path, entry] of Object.entries(want)) {
      if (path === "" || !path.startsWith("node_modules/")) continue;
      const got = have[path];
      if (got === undefined ? !entry.optional : got.version !== entry.version) process.exit(1);
    }
    for (const path of Object.keys(have)) if (!(path in want)) process.exit(1);
  '
}

if [ ! -d node_modules ] || ! deps_fresh; then
  if [ -f package-lock.json ]; then
    quiet npm ci --no-audit --no-fund
  else
    quiet npm install --no-audit --no-fund
  fi
fi

quiet npm run build
