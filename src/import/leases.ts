/**
 * The source's leases, mirrored as meta leases on the coordinator with the same IDs, so imported
 * keys stay attached to their lease. A meta lease is a coordinator lease plus its marker
 * (lease/directory.ts); a key's member index entry names the marker's incarnation.
 *
 * - A lease is granted with the source's *granted* TTL (etcd cannot grant a remaining TTL that
 *   later keepalives would restore: clients that keep it alive after switching over would get a
 *   shorter TTL than they asked for). While the import follows, the mirror is kept alive as long
 *   as the source's lease lives and revoked once the source's is gone, so expiry matches the
 *   source within a poll (1 s).
 * - A lease the source no longer holds gets incarnation 1: an index entry under no live marker
 *   is a dead attachment, so a proxy's reaper deletes such keys (the source deleted them too).
 */
import type { Logger } from 'pino';
import { LeaseDirectory } from '../lease/directory.js';
import type { Upstream } from '../shard/upstream.js';
import type { ImportSource } from './source.js';

/** The incarnation of a lease the source no longer holds: below any live marker's. */
export const DEAD_INCARNATION = 1n;

export class LeaseMirror {
  private readonly directory: LeaseDirectory;
  /** Lease id → incarnation (DEAD_INCARNATION once the source's lease is gone). */
  private readonly known = new Map<bigint, bigint>();
  private readonly pending = new Map<bigint, Promise<bigint>>();

  constructor(
    private readonly source: ImportSource,
    private readonly coordinator: Upstream,
    namespace: Buffer,
    private readonly log: Logger,
  ) {
    this.directory = new LeaseDirectory(coordinator, namespace);
  }

  /** Leases mirrored and alive. */
  get live(): number {
    let n = 0;
    for (const inc of this.known.values()) if (inc !== DEAD_INCARNATION) n++;
    return n;
  }

  /** The incarnation keys of lease `id` are indexed under; mirrors the lease on first use. */
  incarnation(id: bigint): Promise<bigint> {
    const inc = this.known.get(id);
    if (inc !== undefined) return Promise.resolve(inc);
    let p = this.pending.get(id);
    if (!p) {
      p = this.mirror(id).finally(() => this.pending.delete(id));
      this.pending.set(id, p);
    }
    return p;
  }

  private async mirror(id: bigint): Promise<bigint> {
    // Mirrored by an earlier run of this import?
    const existing = await this.directory.lookup(id);
    if (existing !== null) {
      this.known.set(id, existing);
      return existing;
    }
    const ttl = await this.source.upstream.leaseTimeToLive({ ID: id.toString() });
    if (BigInt(ttl.TTL) <= 0n) {
      this.known.set(id, DEAD_INCARNATION);
      return DEAD_INCARNATION;
    }
    await this.directory.grant({ ID: id.toString(), TTL: ttl.grantedTTL });
    const inc = await this.directory.lookup(id);
    if (inc === null) throw new Error(`lease ${id}: its marker vanished right after the grant`);
    this.known.set(id, inc);
    this.log.debug({ lease: id.toString(), ttl: ttl.TTL, grantedTTL: ttl.grantedTTL }, 'lease mirrored');
    return inc;
  }

  /**
   * One round of keeping the mirror in step: leases new on the source are mirrored (so keyless
   * leases come over too), live ones kept alive, gone ones revoked.
   */
  async sync(): Promise<void> {
    const ids = new Set(await this.source.leaseIds());
    const work: Array<Promise<unknown>> = [];
    for (const id of ids) {
      const inc = this.known.get(id);
      if (inc === undefined) work.push(this.incarnation(id));
      else if (inc !== DEAD_INCARNATION) work.push(this.coordinator.leaseKeepAlive(id));
    }
    for (const [id, inc] of this.known) {
      if (inc === DEAD_INCARNATION || ids.has(id)) continue;
      this.known.set(id, DEAD_INCARNATION);
      work.push(this.coordinator.leaseRevoke(id).catch((err: unknown) => this.log.debug({ err, lease: id.toString() }, 'revoke of a mirrored lease')));
    }
    await Promise.all(work);
  }
}
