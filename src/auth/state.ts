/**
 * The auth data (users, roles, the enabled flag, the auth revision) as one immutable value,
 * and its encoding in the coordinator: one JSON document, so every change is one compare-and-
 * swap and every replica reads a consistent whole. Keys of permissions are base64 (bytes).
 */
export const READ = 0;
export const WRITE = 1;
export const READWRITE = 2;
export type PermType = typeof READ | typeof WRITE | typeof READWRITE;

export interface Permission {
  permType: PermType;
  key: Buffer;
  rangeEnd: Buffer;
}

export interface User {
  name: string;
  /** bcrypt hash; empty for a user added with no_password. */
  hash: string;
  noPassword: boolean;
  /** Sorted, as etcd keeps them. */
  roles: string[];
  /** Changes with each password change: simple tokens issued before it are no longer valid. */
  epoch: string;
}

export interface Role {
  name: string;
  /** Sorted by key, as etcd keeps them. */
  perms: Permission[];
}

export interface AuthState {
  enabled: boolean;
  /** etcd's auth revision: 1 on a fresh store, +1 on every change but AuthEnable. */
  revision: bigint;
  /** Changes on AuthDisable: every simple token issued before it is void. */
  tokenEpoch: string;
  users: ReadonlyMap<string, User>;
  roles: ReadonlyMap<string, Role>;
}

export const EMPTY_STATE: AuthState = { enabled: false, revision: 1n, tokenEpoch: '0', users: new Map(), roles: new Map() };

interface Doc {
  v: 1;
  enabled: boolean;
  revision: string;
  tokenEpoch: string;
  users: Array<{ name: string; hash: string; noPassword: boolean; roles: string[]; epoch: string }>;
  roles: Array<{ name: string; perms: Array<{ t: number; k: string; e: string }> }>;
}

export function encodeState(s: AuthState): Buffer {
  const doc: Doc = {
    v: 1,
    enabled: s.enabled,
    revision: s.revision.toString(),
    tokenEpoch: s.tokenEpoch,
    users: [...s.users.values()].map((u) => ({ name: u.name, hash: u.hash, noPassword: u.noPassword, roles: u.roles, epoch: u.epoch })),
    roles: [...s.roles.values()].map((r) => ({
      name: r.name,
      perms: r.perms.map((p) => ({ t: p.permType, k: p.key.toString('base64'), e: p.rangeEnd.toString('base64') })),
    })),
  };
  return Buffer.from(JSON.stringify(doc));
}

function permType(t: unknown): PermType {
  return t === WRITE ? WRITE : t === READWRITE ? READWRITE : READ;
}

/** Decodes the coordinator's document; throws on anything malformed (the caller keeps its last good state). */
export function decodeState(raw: Buffer): AuthState {
  const doc = JSON.parse(raw.toString('utf8')) as Partial<Doc>;
  if (doc.v !== 1 || typeof doc.revision !== 'string' || !Array.isArray(doc.users) || !Array.isArray(doc.roles)) {
    throw new Error('malformed auth document in the coordinator');
  }
  const users = new Map<string, User>();
  for (const u of doc.users) {
    users.set(String(u.name), {
      name: String(u.name),
      hash: String(u.hash ?? ''),
      noPassword: !!u.noPassword,
      roles: Array.isArray(u.roles) ? u.roles.map(String) : [],
      epoch: String(u.epoch ?? ''),
    });
  }
  const roles = new Map<string, Role>();
  for (const r of doc.roles) {
    roles.set(String(r.name), {
      name: String(r.name),
      perms: (Array.isArray(r.perms) ? r.perms : []).map((p) => ({
        permType: permType(p.t),
        key: Buffer.from(String(p.k ?? ''), 'base64'),
        rangeEnd: Buffer.from(String(p.e ?? ''), 'base64'),
      })),
    });
  }
  return { enabled: !!doc.enabled, revision: BigInt(doc.revision), tokenEpoch: String(doc.tokenEpoch ?? '0'), users, roles };
}

/** etcd lists users and roles in byte order of their names (its bolt buckets). */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function hasRootRole(u: User): boolean {
  return u.roles.includes('root');
}
