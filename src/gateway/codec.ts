/**
 * etcd's gateway JSON (golang/protobuf's jsonpb with original field names) for the project's
 * protos, through protobufjs reflection:
 * - out: fields in declaration order, default values left out, int64 as decimal strings,
 *   bytes as standard base64, enums by name, a present sub-message always (even when empty);
 * - in: original or lowerCamelCase field names, int64 as string or number, enums by name or
 *   number, unknown fields ignored, null as "not set", with jsonpb's error wording.
 * Requests become protobuf bytes and responses are read back from protobuf bytes, so the JSON
 * says exactly what the gRPC wire says (a sub-message's presence included).
 */
import path from 'node:path';
import protobuf from 'protobufjs';
import { PROTO_DIR } from '../etcd/proto.js';
import { GoJsonError, kindOf, type JsonValue } from './json-parse.js';

let root: protobuf.Root | undefined;

/** The project's etcd protos as protobufjs types (original field names). */
export function protoRoot(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => path.join(PROTO_DIR, path.basename(target));
    r.loadSync('rpc.proto', { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32 = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);

/** Go's type name of an enum: etcdserverpb.RangeRequest_SortOrder. */
function goEnumName(e: protobuf.Enum): string {
  const full = e.fullName.replace(/^\./, '');
  const dot = full.indexOf('.');
  return dot < 0 ? full : `${full.slice(0, dot)}.${full.slice(dot + 1).replace(/\./g, '_')}`;
}

function goScalarType(type: string): string {
  if (type === 'bytes') return '[]uint8';
  if (type === 'bool' || type === 'string') return type;
  if (type.startsWith('s') && type !== 'string') return type.slice(1).replace('fixed', 'int');
  return type.replace('fixed', 'uint');
}

const cannot = (v: JsonValue, goType: string) => new GoJsonError(`json: cannot unmarshal ${kindOf(v)} into Go value of type ${goType}`);

/** Go's base64.StdEncoding.DecodeString, failing where Go fails, with Go's byte offset. */
export function decodeBase64Strict(s: string): Buffer {
  const ok = /^[A-Za-z0-9+/]$/;
  for (let q = 0; q < s.length; q += 4) {
    for (let j = 0; j < 4; j++) {
      const at = q + j;
      if (at >= s.length) throw new GoJsonError(`illegal base64 data at input byte ${q}`);
      const c = s[at]!;
      if (c === '=') {
        // Padding ends the input: "xx==" or "xxx=" (Go's decodeQuantum, with its offsets).
        if (j < 2) throw new GoJsonError(`illegal base64 data at input byte ${at}`);
        let end = at + 1;
        if (j === 2) {
          if (end === s.length) throw new GoJsonError(`illegal base64 data at input byte ${s.length}`);
          if (s[end] !== '=') throw new GoJsonError(`illegal base64 data at input byte ${at}`);
          end++;
        }
        if (end < s.length) throw new GoJsonError(`illegal base64 data at input byte ${end}`);
        return Buffer.from(s, 'base64');
      }
      if (!ok.test(c)) throw new GoJsonError(`illegal base64 data at input byte ${at}`);
    }
  }
  return Buffer.from(s, 'base64');
}

const INT_TEXT = /^-?(0|[1-9][0-9]*)$/;
const NUMBER_TEXT = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;

function integer(v: JsonValue, type: string): string {
  const goType = goScalarType(type);
  let text: string;
  if (v.t === 'num') text = v.raw;
  else if (v.t === 'str') {
    // jsonpb takes the quoted text and reads it as a JSON number.
    text = v.v;
    if (!NUMBER_TEXT.test(text)) {
      const bad = text.length === 0 ? new GoJsonError('unexpected end of JSON input') : new GoJsonError(`invalid character '${text[0]}' looking for beginning of value`);
      throw bad;
    }
  } else throw cannot(v, goType);
  if (!INT_TEXT.test(text)) throw new GoJsonError(`json: cannot unmarshal number ${text} into Go value of type ${goType}`);
  const n = BigInt(text);
  const bits = type.endsWith('64') ? 64n : 32n;
  const unsigned = type.startsWith('uint') || (type.startsWith('fixed') && !type.startsWith('sfixed'));
  const [min, max] = unsigned ? [0n, (1n << bits) - 1n] : [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n];
  if (n < min || n > max) throw new GoJsonError(`json: cannot unmarshal number ${text} into Go value of type ${goType}`);
  return n.toString();
}

function scalarIn(field: protobuf.Field, v: JsonValue): unknown {
  const type = field.type;
  if (field.resolvedType instanceof protobuf.Enum) {
    const e = field.resolvedType;
    if (v.t === 'str') {
      const n = e.values[v.v];
      if (n === undefined) throw new GoJsonError(`unknown value ${JSON.stringify(v.v)} for enum ${goEnumName(e)}`);
      return n;
    }
    if (v.t === 'num' && INT_TEXT.test(v.raw)) return Number(v.raw);
    throw cannot(v, goEnumName(e));
  }
  if (field.resolvedType instanceof protobuf.Type) return messageIn(field.resolvedType, v);
  if (type === 'bytes') {
    if (v.t !== 'str') throw cannot(v, '[]uint8');
    return decodeBase64Strict(v.v);
  }
  if (type === 'bool') {
    if (v.t !== 'bool') throw cannot(v, 'bool');
    return v.v;
  }
  if (type === 'string') {
    if (v.t !== 'str') throw cannot(v, 'string');
    return v.v;
  }
  if (INT64.has(type)) return integer(v, type);
  if (INT32.has(type)) return Number(integer(v, type));
  throw new GoJsonError(`unsupported field type ${type}`);
}

const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** A JSON object as a plain object for protobufjs's fromObject (original field names). */
function messageIn(type: protobuf.Type, v: JsonValue): Record<string, unknown> {
  if (v.t !== 'obj') throw cannot(v, 'map[string]json.RawMessage');
  const byName = new Map<string, protobuf.Field>();
  for (const f of type.fieldsArray) {
    byName.set(f.name, f);
    byName.set(camel(f.name), f);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of v.entries) {
    const field = byName.get(key);
    if (!field || value.t === 'null') continue; // unknown fields are ignored, null means unset
    if (field.repeated) {
      if (value.t !== 'arr') throw cannot(value, '[]json.RawMessage');
      out[field.name] = value.items.map((item) => scalarIn(field, item));
    } else out[field.name] = scalarIn(field, value);
  }
  return out;
}

/** A request body value → the request's protobuf bytes. Throws GoJsonError on a bad value. */
export function encodeRequest(type: protobuf.Type, v: JsonValue | null): Buffer {
  const obj = v === null || v.t === 'null' ? {} : messageIn(type, v);
  return Buffer.from(type.encode(type.fromObject(obj)).finish());
}

function isDefault(field: protobuf.Field, v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (field.repeated) return Array.isArray(v) && v.length === 0;
  if (field.resolvedType instanceof protobuf.Type) return false;
  if (typeof v === 'boolean') return !v;
  if (typeof v === 'number') return v === 0;
  if (typeof v === 'string') return v === '' || v === '0';
  if (v instanceof Uint8Array) return v.length === 0;
  return false;
}

function scalarOut(field: protobuf.Field, v: unknown): unknown {
  if (field.resolvedType instanceof protobuf.Enum) {
    const n = Number(v);
    return field.resolvedType.valuesById[n] ?? n;
  }
  if (field.resolvedType instanceof protobuf.Type) return messageOut(field.resolvedType, v as Record<string, unknown>);
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (INT64.has(field.type)) return String(v);
  return v;
}

function messageOut(type: protobuf.Type, obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const v = obj[field.name];
    if (isDefault(field, v)) continue;
    out[field.name] = field.repeated ? (v as unknown[]).map((item) => scalarOut(field, item)) : scalarOut(field, v);
  }
  return out;
}

/** A response's protobuf bytes → its gateway JSON object. */
export function decodeResponse(type: protobuf.Type, bytes: Uint8Array): Record<string, unknown> {
  const msg = type.decode(bytes);
  const obj = type.toObject(msg, { longs: String, enums: Number, defaults: false, arrays: false, oneofs: false });
  return messageOut(type, obj);
}
