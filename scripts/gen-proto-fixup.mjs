// Adapts ts-proto's output (scripts/gen-proto.sh) to the proxy's conventions, file by file in
// place. Usage: node scripts/gen-proto-fixup.mjs <generated dir> <proto dir>
//
// - Encoders accept what the code builds: partial messages (absent fields are proto3 defaults),
//   null for an absent sub-message, int64 as a number (etcd/types.ts wire64) or a decimal string.
// - Decoders name the set member of each oneof in a virtual field (RequestOp.request =
//   'request_put', ...), as @grpc/proto-loader's `oneofs: true` does.
// - Nesting depth: PROTOBUF_DEPTH_LIMIT (etcd/depth-limit.ts) instead of ts-proto's fixed 100,
//   so nested txns up to server/wire-guard.ts's MAX_TXN_NESTING decode.
// - Our wire runtime (etcd/binary.ts) instead of @bufbuild/protobuf/wire: int64s read as decimal
//   strings, bytes as Buffer views, encoded messages as Buffers (no copies in between).
// - No `any`: the depth counter and enum reads are typed.
// - No protoc version in the header (it differs between machines).
import fs from 'node:fs';
import path from 'node:path';

const [dir, protoDir] = process.argv.slice(2);

/** message name -> [{ oneof, members }] from the .proto files (flat messages, as etcd's are). */
function oneofsOf(protoText) {
  const out = new Map();
  let message = null;
  let oneof = null;
  for (const raw of protoText.split('\n')) {
    const line = raw.replace(/\/\/.*/, '').trim();
    let m;
    if ((m = /^message (\w+) \{/.exec(line))) message = m[1];
    else if ((m = /^oneof (\w+) \{/.exec(line))) {
      oneof = { oneof: m[1], members: [] };
      if (!out.has(message)) out.set(message, []);
      out.get(message).push(oneof);
    } else if (oneof && (m = /^[\w.]+ (\w+) = \d+;/.exec(line))) oneof.members.push(m[1]);
    else if (oneof && line === '}') oneof = null;
  }
  return out;
}

const oneofs = new Map();
for (const f of fs.readdirSync(protoDir)) {
  if (f.endsWith('.proto')) for (const [k, v] of oneofsOf(fs.readFileSync(path.join(protoDir, f), 'utf8'))) oneofs.set(k, v);
}

function fixEncode(body) {
  return body
    .replace(/if \(message\.(\w+)\.length !== 0\) \{/g, 'if (message.$1 != null && message.$1.length !== 0) {')
    .replace(/if \(message\.(\w+) !== "0"\) \{/g, 'if (isSet64(message.$1)) {')
    .replace(/if \(message\.(\w+) !== (false|""|0)\) \{/g, 'if (message.$1) {')
    .replace(/if \(message\.(\w+) !== undefined\) \{/g, 'if (message.$1 != null) {')
    .replace(/for \(const v of message\.(\w+)\) \{/g, 'for (const v of message.$1 ?? []) {');
}

function fixFile(file) {
  let src = fs.readFileSync(file, 'utf8');
  src = src.replace(/^\/\/   protoc +v.*\n/m, '');
  // Encoders: each `encode(message: X, ...) {` up to its `return writer;`.
  src = src.replace(/(encode\(message: \w+, writer: BinaryWriter = new BinaryWriter\(\)\): BinaryWriter \{)([\s\S]*?)(return writer;)/g, (_, head, body, tail) => head + fixEncode(body) + tail);
  // Our runtime (etcd/binary.ts): int64s read as strings, bytes as Buffers, finish() gives a Buffer.
  src = src
    .replace(/import \{ BinaryReader, BinaryWriter \} from "@bufbuild\/protobuf\/wire";/, 'import { BinaryReader, BinaryWriter } from "../binary.js";')
    .replace(/reader\.(u?int64)\(\)\.toString\(\)/g, 'reader.$1()')
    .replace(/Buffer\.from\(reader\.bytes\(\)\)/g, 'reader.bytes()')
    .replace(/Buffer\.from\((\w+)\.encode\(value\)\.finish\(\)\)/g, '$1.encode(value).finish()');
  // Depth counter.
  src = src
    .replace(/\(reader as any\)\.__tsProtoDecodeDepth \?\? 0/g, 'reader.depth')
    .replace(/\(reader as any\)\.__tsProtoDecodeDepth/g, 'reader.depth')
    .replace(/previousRecursionDepth >= 100\)/g, 'previousRecursionDepth >= PROTOBUF_DEPTH_LIMIT)')
    .replace(/reader\.int32\(\) as any/g, 'reader.int32()');
  // Oneofs: a virtual field naming the set member, in the interface and set by the decoder.
  for (const [message, groups] of oneofs) {
    for (const { oneof, members } of groups) {
      const iface = new RegExp(`(export interface ${message} \\{\\n)`);
      if (!iface.test(src)) continue;
      const union = members.map((m) => `"${m}"`).join(' | ');
      src = src.replace(iface, `$1  /** Which member of the oneof ${oneof} is set (as @grpc/proto-loader's oneofs: true). */\n  ${oneof}?: ${union} | undefined;\n`);
      const decodeStart = src.indexOf(`export const ${message}: MessageFns<${message}> = {`);
      const decodeEnd = src.indexOf('\n};\n', decodeStart);
      let block = src.slice(decodeStart, decodeEnd);
      for (const m of members) {
        block = block.replace(new RegExp(`(\\n( +)message\\.${m} = [^;]+;)`), `$1\n$2message.${oneof} = "${m}";`);
      }
      src = src.slice(0, decodeStart) + block + src.slice(decodeEnd);
    }
  }
  const helpers =
    '\n/** An int64 worth sending: present and not zero (a number, a bigint or a decimal string). */\n' +
    'function isSet64(v: string | number | bigint | null | undefined): v is string | number | bigint {\n' +
    '  return v != null && v !== "0" && v !== 0 && v !== 0n;\n' +
    '}\n';
  src = src.replace(/(import \{ BinaryReader, BinaryWriter \} from "\.\.\/binary\.js";\n)/, `$1import { PROTOBUF_DEPTH_LIMIT } from "../depth-limit.js";\n`);
  src = src.replace(/(\nexport const protobufPackage = [^\n]*\n)/, `$1${helpers}`);
  if (!src.includes('isSet64(')) src = src.replace(/\nfunction isSet64[\s\S]*?\n\}\n/, '\n');
  if (!src.includes('PROTOBUF_DEPTH_LIMIT)')) src = src.replace(/import \{ PROTOBUF_DEPTH_LIMIT \}[^\n]*\n/, '');
  fs.writeFileSync(file, src);
}

for (const f of fs.readdirSync(dir)) if (f.endsWith('.ts')) fixFile(path.join(dir, f));
