/**
 * Where lease data lives. In the coordinator, a marker per meta lease, attached to the
 * coordinator lease of the same ID (so the coordinator deletes it on expiry or revoke): it tells
 * meta leases from the proxies' own coordinator leases, and its create revision names this
 * grant of the ID (its "incarnation": an ID may be granted again after it died).
 * In each member, an index entry per leased key: `lease/<id>/` ++ member key, valued with the
 * incarnation it was attached under, written in the same member txn as the key.
 */
import { encodeClock, decodeClock } from '../shard/envelope.js';
import { prefixEnd, sysKey } from '../shard/keyspace.js';

/** 16 hex digits of the ID's two's complement: fixed width, so entries of one lease are one prefix. */
export function leaseHex(id: bigint): string {
  return BigInt.asUintN(64, id).toString(16).padStart(16, '0');
}

export function parseLeaseHex(hex: string): bigint | null {
  if (!/^[0-9a-f]{16}$/.test(hex)) return null;
  return BigInt.asIntN(64, BigInt(`0x${hex}`));
}

export const MARKER_PREFIX = sysKey('lease/');
export const MARKER_END = prefixEnd(MARKER_PREFIX);

export function markerKey(id: bigint): Buffer {
  return sysKey(`lease/${leaseHex(id)}`);
}

/** The lease ID a coordinator marker key names, or null for another key. */
export function markerId(key: Buffer): bigint | null {
  if (key.length !== MARKER_PREFIX.length + 16 || !key.subarray(0, MARKER_PREFIX.length).equals(MARKER_PREFIX)) return null;
  return parseLeaseHex(key.subarray(MARKER_PREFIX.length).toString('latin1'));
}

/** Same prefix in the members (a different cluster): `lease/<id>/<member key>`. */
export const INDEX_PREFIX = MARKER_PREFIX;
export const INDEX_END = MARKER_END;
const ENTRY_HEAD = INDEX_PREFIX.length + 17;

export function indexPrefix(id: bigint): Buffer {
  return sysKey(`lease/${leaseHex(id)}/`);
}

export function indexKey(id: bigint, memberKey: Buffer): Buffer {
  return Buffer.concat([indexPrefix(id), memberKey]);
}

export interface IndexEntry {
  id: bigint;
  memberKey: Buffer;
  incarnation: bigint;
  /** The entry's own member mod revision (pins it while it is reaped). */
  entryMod: bigint;
  entryKey: Buffer;
}

/** Parses an index entry read from a member; null for anything else under the prefix. */
export function parseEntry(key: Buffer, value: Buffer, mod: bigint): IndexEntry | null {
  if (key.length <= ENTRY_HEAD || key[ENTRY_HEAD - 1] !== 0x2f) return null;
  const id = parseLeaseHex(key.subarray(INDEX_PREFIX.length, ENTRY_HEAD - 1).toString('latin1'));
  if (id === null || !key.subarray(0, INDEX_PREFIX.length).equals(INDEX_PREFIX)) return null;
  return { id, memberKey: Buffer.from(key.subarray(ENTRY_HEAD)), incarnation: decodeClock(value), entryMod: mod, entryKey: Buffer.from(key) };
}

export const encodeIncarnation = encodeClock;
