/**
 * Key-range permission checks with etcd's semantics (auth/range_perm_cache.go): a permission is
 * the point [key, key\0) when range_end is empty, [key, +inf) when range_end is "\0", else
 * [key, range_end); an empty bound means +inf. A single-key request needs one permission that
 * touches the key; a range request needs its interval covered by the user's permissions. The
 * permissions go into interval trees built as etcd builds them (interval-tree.ts), once per
 * user and auth state.
 */
import { IntervalTree, type Interval } from './interval-tree.js';
import { READ, READWRITE, WRITE, type AuthState, type Permission, type PermType } from './state.js';

interface UserTrees {
  read: IntervalTree;
  write: IntervalTree;
}

const cache = new WeakMap<AuthState, Map<string, UserTrees>>();

function point(key: Buffer): Interval {
  return { begin: key, end: Buffer.concat([key, Buffer.from([0])]) };
}

function permInterval(p: Permission): Interval {
  if (p.rangeEnd.length === 0) return point(p.key);
  const end = p.rangeEnd.length === 1 && p.rangeEnd[0] === 0 ? Buffer.alloc(0) : p.rangeEnd;
  return { begin: p.key, end };
}

/** etcd's getMergedPerms: the user's roles in order, each role's permissions in order. */
function treesOf(state: AuthState, user: string): UserTrees | null {
  let perUser = cache.get(state);
  if (!perUser) {
    perUser = new Map();
    cache.set(state, perUser);
  }
  const hit = perUser.get(user);
  if (hit) return hit;
  const u = state.users.get(user);
  if (!u) return null;
  const trees: UserTrees = { read: new IntervalTree(), write: new IntervalTree() };
  for (const name of u.roles) {
    const role = state.roles.get(name);
    if (!role) continue;
    for (const p of role.perms) {
      const iv = permInterval(p);
      if (p.permType === READWRITE || p.permType === READ) trees.read.insert(iv);
      if (p.permType === READWRITE || p.permType === WRITE) trees.write.insert(iv);
    }
  }
  perUser.set(user, trees);
  return trees;
}

/** Is [key, rangeEnd) (or the single key when rangeEnd is empty) within the tree's intervals? */
export function covered(tree: IntervalTree, key: Buffer, rangeEnd: Buffer): boolean {
  if (rangeEnd.length === 0) return tree.intersects(point(key));
  const end = rangeEnd.length === 1 && rangeEnd[0] === 0 ? Buffer.alloc(0) : rangeEnd;
  return tree.contains({ begin: key, end });
}

export function rangePermitted(state: AuthState, user: string, key: Buffer, rangeEnd: Buffer, want: PermType): boolean {
  const trees = treesOf(state, user);
  if (!trees) return false;
  return covered(want === WRITE ? trees.write : trees.read, key, rangeEnd);
}
