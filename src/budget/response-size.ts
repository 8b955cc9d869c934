/**
 * Sizes of responses before they are built, for the memory budget: a cached Range is its
 * encoded KeyValues plus framing; a member Range's decoded KeyValues cost their bytes plus the
 * objects around them.
 */
import type { KeyValue } from '../etcd/types.js';

/** Framing of a RangeResponse beyond its KeyValues (header, more, count). */
const RESPONSE_FRAMING = 64;
/** Tag and length prefix of one embedded KeyValue. */
const KV_FRAMING = 6;
/** A decoded KeyValue's objects (the KeyValue, two Buffers, revision strings). */
const KV_OBJECTS = 160;

export function encodedRangeSize(kvs: readonly string[]): number {
  let size = RESPONSE_FRAMING;
  for (const kv of kvs) size += kv.length + KV_FRAMING;
  return size;
}

export function decodedRangeSize(kvs: readonly KeyValue[]): number {
  let size = RESPONSE_FRAMING;
  for (const kv of kvs) size += kv.key.length + kv.value.length + KV_OBJECTS;
  return size;
}
