#!/usr/bin/env bash
# Runs the node test files of the given directories (default: test e2e), one file at a time.
# A directory without test files is skipped, so an empty e2e/ does not break `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob

dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(test e2e)

files=()
for d in "${dirs[@]}"; do
  files+=("$d"/*.test.ts)
done
if [ ${#files[@]} -eq 0 ]; then
  echo "test.sh: no test files in: ${dirs[*]}" >&2
  exit 0
fi
exec node --import tsx --test --test-concurrency=1 "${files[@]}"
