/**
 * A strict check of a request's protobuf wire format before it is decoded, with the errors a
 * plain etcd gives. protobufjs accepts what etcd's (gogo-generated) decoders refuse — a field
 * tag 0, an 11-byte varint, a known field with the wrong wire type — so a malformed request
 * could be applied by the proxy where etcd answers an error. This walks the bytes with the
 * message's schema the way etcd's generated Unmarshal does and returns etcd's message (grpc-go
 * answers INTERNAL "grpc: error unmarshalling request: <decoder error>"), or null.
 *
 * It also measures how deep messages nest (a txn inside a txn is two levels: RequestOp and
 * TxnRequest), so that requests too deep for the proxy's own encoders are refused before
 * anything is applied (see MAX_MESSAGE_DEPTH).
 */
import type protobuf from 'protobufjs';

const EOF = 'unexpected EOF';
const OVERFLOW = 'proto: integer overflow';
const NEGATIVE_LENGTH = 'proto: negative length found during unmarshaling';

const VARINT_TYPES = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'bool']);
const FIXED64_TYPES = new Set(['fixed64', 'sfixed64', 'double']);
const FIXED32_TYPES = new Set(['fixed32', 'sfixed32', 'float']);

class Refused extends Error {}

/** What a check found: etcd's error text (null: well-formed) and the deepest message nesting. */
export interface WireCheck {
  error: string | null;
  depth: number;
}

interface Cursor {
  buf: Buffer;
  at: number;
  end: number;
  maxDepth: number;
  limit: number;
}

/**
 * A varint as etcd reads it: at most 10 bytes (shift < 64), never past the end. Short ones (the
 * usual tags and lengths) are read as numbers; longer ones again, exactly, as a bigint.
 */
function varint(c: Cursor): bigint | number {
  const { buf } = c;
  const start = c.at;
  let v = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (c.at >= c.end) throw new Refused(EOF);
    const b = buf[c.at++];
    v |= (b & 0x7f) << shift;
    if (b < 0x80) return v;
  }
  c.at = start;
  return varintBig(c);
}

function varintBig(c: Cursor): bigint {
  let v = 0n;
  for (let shift = 0n; ; shift += 7n) {
    if (shift >= 64n) throw new Refused(OVERFLOW);
    if (c.at >= c.end) throw new Refused(EOF);
    const b = c.buf[c.at++];
    v |= BigInt(b & 0x7f) << shift;
    if (b < 0x80) return BigInt.asUintN(64, v);
  }
}

/** Skips a varint value (its bytes are checked, its value is not needed). */
function skipVarint(c: Cursor): void {
  for (let i = 0; ; i++) {
    if (i >= 10) throw new Refused(OVERFLOW);
    if (c.at >= c.end) throw new Refused(EOF);
    if (c.buf[c.at++] < 0x80) return;
  }
}

/** A length prefix: negative as a Go int is refused, a body past the end is EOF. */
function lengthDelimited(c: Cursor): number {
  const raw = varint(c);
  if (typeof raw === 'number') {
    if (c.at + raw > c.end) throw new Refused(EOF);
    return raw;
  }
  const len = BigInt.asIntN(64, raw);
  if (len < 0n) throw new Refused(NEGATIVE_LENGTH);
  if (BigInt(c.at) + len > BigInt(c.end)) throw new Refused(EOF);
  return Number(len);
}

/** Go's field name for a proto field (gogo's error messages name it): range_end → RangeEnd. */
function goName(field: string): string {
  return field
    .split('_')
    .map((p) => (p.length ? p[0].toUpperCase() + p.slice(1) : p))
    .join('');
}

/** Go's type name: nested messages are Parent_Child. */
function goTypeName(type: protobuf.Type): string {
  const names: string[] = [];
  let t: protobuf.ReflectionObject | null = type;
  while (t && (t as protobuf.Type).fields !== undefined) {
    names.unshift(t.name);
    t = t.parent;
  }
  return names.join('_');
}

/** What the check needs of one field, computed once per message type. */
interface FieldInfo {
  /** Bit w set: wire type w is accepted. */
  wireTypes: number;
  /** The scalar wire type of a packable repeated field (0, 1 or 5), else -1. */
  packed: number;
  goName: string;
  message: protobuf.Type | null;
}

interface TypeInfo {
  goName: string;
  fields: Map<number, FieldInfo>;
}

const typeInfos = new WeakMap<protobuf.Type, TypeInfo>();

function infoOf(type: protobuf.Type): TypeInfo {
  let info = typeInfos.get(type);
  if (!info) {
    const fields = new Map<number, FieldInfo>();
    for (const f of type.fieldsArray) {
      f.resolve();
      const accepted = wireTypesOf(f);
      const sub = f.resolvedType && (f.resolvedType as protobuf.Type).fields !== undefined ? (f.resolvedType as protobuf.Type) : null;
      fields.set(f.id, {
        wireTypes: accepted.reduce((m, w) => m | (1 << w), 0),
        packed: accepted.length > 1 ? accepted[0] : -1,
        goName: goName(f.name),
        message: sub,
      });
    }
    info = { goName: goTypeName(type), fields };
    typeInfos.set(type, info);
  }
  return info;
}

/** The wire types a field accepts (repeated scalars also packed, as Go decoders do). */
function wireTypesOf(field: protobuf.Field): number[] {
  const resolved = field.resolvedType;
  let base: number;
  if (resolved && (resolved as protobuf.Type).fields !== undefined) base = 2;
  else if (resolved) base = 0; // enum
  else if (VARINT_TYPES.has(field.type)) base = 0;
  else if (FIXED64_TYPES.has(field.type)) base = 1;
  else if (FIXED32_TYPES.has(field.type)) base = 5;
  else base = 2; // string, bytes
  return field.repeated && base !== 2 ? [base, 2] : [base];
}

/** Skips one unknown field starting at its tag, as gogo's skip function does. */
function skipField(c: Cursor): void {
  const wire = varint(c);
  const wireType = typeof wire === 'number' ? wire & 7 : Number(wire & 7n);
  switch (wireType) {
    case 0:
      skipVarint(c);
      return;
    case 1:
      if (c.at + 8 > c.end) throw new Refused(EOF);
      c.at += 8;
      return;
    case 2: {
      // Not `c.at += lengthDelimited(c)`: that adds to the position from before the length.
      const len = lengthDelimited(c);
      c.at += len;
      return;
    }
    case 3:
      // A group: fields up to its end-group tag.
      for (;;) {
        const start = c.at;
        const inner = varint(c);
        if ((typeof inner === 'number' ? inner & 7 : Number(inner & 7n)) === 4) return;
        c.at = start;
        skipField(c);
      }
    case 4:
      return;
    case 5:
      if (c.at + 4 > c.end) throw new Refused(EOF);
      c.at += 4;
      return;
    default:
      throw new Refused(`proto: illegal wireType ${wireType}`);
  }
}

/** Nesting beyond the caller's limit: the walk stops (the request is refused for its depth). */
class TooDeep extends Error {}

function checkMessage(type: protobuf.Type, c: Cursor, depth: number): void {
  if (depth > c.maxDepth) c.maxDepth = depth;
  if (depth > c.limit) throw new TooDeep();
  const info = infoOf(type);
  while (c.at < c.end) {
    const preIndex = c.at;
    const raw = varint(c);
    let fieldNum: number;
    let wireType: number;
    if (typeof raw === 'number') {
      fieldNum = raw >>> 3;
      wireType = raw & 7;
    } else {
      fieldNum = Number(BigInt.asIntN(32, raw >> 3n));
      wireType = Number(raw & 7n);
    }
    if (wireType === 4) throw new Refused(`proto: ${info.goName}: wiretype end group for non-group`);
    if (fieldNum <= 0) throw new Refused(`proto: ${info.goName}: illegal tag ${fieldNum} (wire type ${raw})`);
    const field = info.fields.get(fieldNum);
    if (!field) {
      // Unknown fields are skipped from their tag on, as etcd's decoder does.
      c.at = preIndex;
      skipField(c);
      continue;
    }
    if ((field.wireTypes & (1 << wireType)) === 0) throw new Refused(`proto: wrong wireType = ${wireType} for field ${field.goName}`);
    switch (wireType) {
      case 0:
        skipVarint(c);
        break;
      case 1:
        if (c.at + 8 > c.end) throw new Refused(EOF);
        c.at += 8;
        break;
      case 5:
        if (c.at + 4 > c.end) throw new Refused(EOF);
        c.at += 4;
        break;
      default: {
        const len = lengthDelimited(c);
        if (field.message) {
          const inner: Cursor = { buf: c.buf, at: c.at, end: c.at + len, maxDepth: c.maxDepth, limit: c.limit };
          checkMessage(field.message, inner, depth + 1);
          c.maxDepth = inner.maxDepth;
        } else if (len > 0 && field.packed >= 0) {
          // A packed repeated scalar: its body is varints (or fixed values).
          const inner: Cursor = { buf: c.buf, at: c.at, end: c.at + len, maxDepth: 0, limit: 0 };
          while (inner.at < inner.end) {
            if (field.packed === 0) skipVarint(inner);
            else inner.at += field.packed === 1 ? 8 : 4;
          }
          if (inner.at > inner.end) throw new Refused(EOF);
        }
        c.at += len;
      }
    }
  }
}

/**
 * Checks `buf` as a `type` message; never throws. Messages nested deeper than `depthLimit`
 * stop the walk: `depth` is then above the limit and `error` null.
 */
export function checkWire(type: protobuf.Type, buf: Buffer, depthLimit = Number.MAX_SAFE_INTEGER): WireCheck {
  const c: Cursor = { buf, at: 0, end: buf.length, maxDepth: 1, limit: depthLimit };
  try {
    checkMessage(type, c, 1);
    return { error: null, depth: c.maxDepth };
  } catch (err) {
    if (err instanceof TooDeep) return { error: null, depth: c.limit + 1 };
    if (err instanceof Refused) return { error: err.message, depth: c.maxDepth };
    return { error: `proto: ${(err as Error).message}`, depth: c.maxDepth };
  }
}
