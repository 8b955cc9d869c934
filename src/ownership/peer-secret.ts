/**
 * The replicas' shared secret for the internal `etcdmetaproxy.Peer` service (forward.ts): it
 * sits on the client port, so a client must not be able to hand a write to an owner past the
 * checks its own replica makes. The secret lives in the coordinator under the reserved prefix
 * (never readable by clients), created by the first replica. A coordinator that lost its data
 * gets a new one: a replica that meets a secret it does not know reads the record again.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { sysKey } from '../shard/keyspace.js';
import { createIfAbsent } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';

export const PEER_SECRET_KEY = sysKey('peer-secret');
/** The metadata entry carrying it. */
export const PEER_SECRET_HEADER = 'etcd-metaproxy-peer';

export class PeerSecret {
  private value: Buffer | null = null;
  private reading: Promise<Buffer> | null = null;

  constructor(private readonly coordinator: Upstream) {}

  /** The secret (read or created once; again after refresh()). */
  async get(): Promise<Buffer> {
    if (this.value) return this.value;
    this.reading ??= (async () => {
      try {
        const mine = Buffer.from(randomBytes(32).toString('hex'));
        const there = await createIfAbsent(this.coordinator, PEER_SECRET_KEY, mine);
        this.value = there ?? mine;
        return this.value;
      } finally {
        this.reading = null;
      }
    })();
    return this.reading;
  }

  /** The secret if it was read already (no coordinator call), else null. */
  cached(): Buffer | null {
    return this.value;
  }

  /** Forgets the cached secret: the next get() reads the coordinator. */
  refresh(): void {
    this.value = null;
  }

  /** Whether `presented` is the secret (re-reading it once when it does not match). */
  async accepts(presented: string | undefined): Promise<boolean> {
    if (!presented) return false;
    const p = Buffer.from(presented);
    const same = (s: Buffer) => s.length === p.length && timingSafeEqual(s, p);
    if (same(await this.get())) return true;
    this.refresh();
    return same(await this.get());
  }
}
