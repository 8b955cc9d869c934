/** A user key as the meta-cluster reports it, decoded from its member representation. */
import type { KeyValue } from '../etcd/types.js';
import { wire64 } from '../etcd/types.js';
import { decodeEnvelope } from './envelope.js';
import type { ChainEntry } from './envelope.js';
import type { Keyspace } from './keyspace.js';

/** A key's meta-cluster fields, as clients see them. */
export interface MetaFields {
  key: Buffer;
  create: bigint;
  mod: bigint;
  version: bigint;
  lease: bigint;
  value: Buffer;
}

export interface MetaKV extends MetaFields {
  /** The member's own mod revision: pins the exact state in a member txn compare. */
  memberMod: bigint;
  /** Meta version - member version (a put chain applied several puts in one; envelope.ts). Absent: 0. */
  delta?: bigint;
  /** The chain's earlier puts when the member put that wrote this state applied several (envelope.ts). */
  chain?: ChainEntry[];
}

/** A key as the proxy answered it to a client (already meta revisions). */
export function fromWire(kv: KeyValue): MetaFields {
  return {
    key: kv.key,
    create: BigInt(kv.create_revision),
    mod: BigInt(kv.mod_revision),
    version: BigInt(kv.version),
    lease: BigInt(kv.lease),
    value: kv.value,
  };
}

export function fromMember(kv: KeyValue, ks: Keyspace): MetaKV {
  return decodeMember(kv, ks, true);
}

/**
 * fromMember without copies: key and value are views into the member's message, for readers
 * that copy what they keep at once (paged reads, the cache loader) instead of pinning it.
 */
export function fromMemberView(kv: KeyValue, ks: Keyspace): MetaKV {
  return decodeMember(kv, ks, false);
}

function decodeMember(kv: KeyValue, ks: Keyspace, copy: boolean): MetaKV {
  const env = decodeEnvelope(kv.value, copy);
  const key = ks.fromMember(kv.key);
  return {
    key: copy ? Buffer.from(key) : key,
    create: env.create,
    mod: env.mod,
    version: BigInt(kv.version) + env.delta,
    lease: env.lease,
    value: env.value,
    memberMod: BigInt(kv.mod_revision),
    ...(env.delta !== 0n ? { delta: env.delta } : {}),
    ...(env.chain ? { chain: env.chain } : {}),
  };
}

/**
 * The state a chain's put at revision `rev` left (a member state that holds the chain, read at
 * a meta revision inside it), or null when `rev` is before the chain's first put.
 */
export function chainStateAt(kv: MetaKV, rev: bigint): MetaKV | null {
  if (kv.mod <= rev) return kv;
  const chain = kv.chain ?? [];
  for (let i = chain.length - 1; i >= 0; i--) {
    const e = chain[i];
    if (e.rev > rev) continue;
    // Later puts of the chain each added one version (and the member none).
    const later = BigInt(chain.length - i);
    return { key: kv.key, create: kv.create, mod: e.rev, version: kv.version - later, lease: kv.lease, value: e.value, memberMod: kv.memberMod, delta: (kv.delta ?? 0n) - later };
  }
  return null;
}

export function toWire(kv: MetaKV, keysOnly = false): KeyValue {
  return {
    key: kv.key,
    create_revision: wire64(kv.create),
    mod_revision: wire64(kv.mod),
    version: wire64(kv.version),
    value: keysOnly ? Buffer.alloc(0) : kv.value,
    lease: wire64(kv.lease),
  };
}
