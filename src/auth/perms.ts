/**
 * Key-range permission checks with etcd's semantics (auth/range_perm_cache.go and its interval
 * tree): a permission is the point [key] when range_end is empty, [key, +inf) when range_end is
 * "\0", else [key, range_end). In these intervals an empty bound means +inf. A single-key
 * request needs one permission that touches the key; a range request needs its whole interval
 * covered by the union of the user's permissions.
 */
import { READ, READWRITE, WRITE, type AuthState, type Permission, type PermType } from './state.js';

/** Bytes where the empty value is greater than every other (etcd's BytesAffineComparable). */
function cmp(a: Buffer, b: Buffer): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return Buffer.compare(a, b);
}

interface Interval {
  begin: Buffer;
  end: Buffer;
}

function point(key: Buffer): Interval {
  return { begin: key, end: Buffer.concat([key, Buffer.from([0])]) };
}

/** etcd's Interval.Compare == 0: the intervals overlap. */
function overlaps(a: Interval, b: Interval): boolean {
  if (cmp(a.begin, b.begin) < 0 && cmp(a.end, b.begin) <= 0) return false;
  if (cmp(a.begin, b.end) >= 0) return false;
  return true;
}

function permInterval(p: Permission): Interval {
  if (p.rangeEnd.length === 0) return point(p.key);
  const end = p.rangeEnd.length === 1 && p.rangeEnd[0] === 0 ? Buffer.alloc(0) : p.rangeEnd;
  return { begin: p.key, end };
}

function grants(p: Permission, want: typeof READ | typeof WRITE): boolean {
  return p.permType === READWRITE || p.permType === want;
}

/** The intervals a user may read or write (the union of its roles' permissions). */
export function userIntervals(state: AuthState, user: string, want: typeof READ | typeof WRITE): Interval[] {
  const u = state.users.get(user);
  if (!u) return [];
  const out: Interval[] = [];
  for (const name of u.roles) {
    const role = state.roles.get(name);
    if (!role) continue;
    for (const p of role.perms) if (grants(p, want)) out.push(permInterval(p));
  }
  return out;
}

/** Is [key, rangeEnd) (or the single key when rangeEnd is empty) within the given intervals? */
export function covered(intervals: Interval[], key: Buffer, rangeEnd: Buffer): boolean {
  if (rangeEnd.length === 0) {
    const pt = point(key);
    return intervals.some((iv) => overlaps(pt, iv));
  }
  const end = rangeEnd.length === 1 && rangeEnd[0] === 0 ? Buffer.alloc(0) : rangeEnd;
  const want: Interval = { begin: key, end };
  // etcd's IntervalTree.Contains: the intervals touching the request, in order of their start,
  // must be contiguous and reach from its start to its end.
  const touching = intervals.filter((iv) => overlaps(want, iv)).sort((a, b) => cmp(a.begin, b.begin));
  if (touching.length === 0) return false;
  const minBegin = touching[0].begin;
  let maxEnd = touching[0].end;
  for (const iv of touching.slice(1)) {
    if (cmp(maxEnd, iv.begin) < 0) return false;
    if (cmp(iv.end, maxEnd) > 0) maxEnd = iv.end;
  }
  return cmp(maxEnd, want.end) >= 0 && cmp(minBegin, want.begin) <= 0;
}

export function rangePermitted(state: AuthState, user: string, key: Buffer, rangeEnd: Buffer, want: PermType): boolean {
  return covered(userIntervals(state, user, want === WRITE ? WRITE : READ), key, rangeEnd);
}
