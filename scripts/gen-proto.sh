#!/usr/bin/env bash
# Regenerates src/etcd/gen/ from proto/*.proto: static TypeScript codecs and grpc-js service
# definitions by ts-proto (a protoc plugin), then scripts/gen-proto-fixup.mjs adapts them to the
# shapes the proxy's code uses (see that file). `npm run gen:proto`; `--check` only verifies that
# the checked-in files are what the generator makes (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
  apt-get -o DPkg::Lock::Timeout=600 install -y protobuf-compiler >/dev/null || {
    apt-get -o DPkg::Lock::Timeout=600 update >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y protobuf-compiler >/dev/null
  }
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# keepCase names, int64 as decimal strings, bytes as Buffer, enums as numbers, every field
# present after decode (proto-loader's LOADER_OPTIONS in src/etcd/proto.ts, the shapes the code
# was written against); PascalCase method names as in the .proto (client.Txn, not client.txn).
opts=snakeToCamel=false,forceLong=string,env=node,oneof=properties,useOptionals=none
opts+=,outputServices=grpc-js,lowerCaseServiceMethods=false,esModuleInterop=true,importSuffix=.js
opts+=,outputJsonMethods=false,outputPartialMethods=false,outputTypeRegistry=false
protoc --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out="$out" --ts_proto_opt="$opts" -I proto \
  proto/rpc.proto proto/kv.proto proto/auth.proto proto/metaproxy.proto
# The header names the protoc version, which differs between machines: leave it out.
node scripts/gen-proto-fixup.mjs "$out" proto
if [ "${1:-}" = "--check" ]; then
  if ! diff -r "$out" src/etcd/gen >/dev/null; then
    echo "src/etcd/gen is out of date: run npm run gen:proto" >&2
    diff -r "$out" src/etcd/gen | head -40 >&2
    exit 1
  fi
  echo "src/etcd/gen is up to date"
else
  rm -rf src/etcd/gen
  mkdir -p src/etcd/gen
  cp "$out"/*.ts src/etcd/gen/
  echo "generated src/etcd/gen/: $(ls src/etcd/gen | tr '\n' ' ')"
fi
