/**
 * Meta leases on the coordinator (canonical there, DESIGN "Leases"): a grant is the
 * coordinator's own lease of the same ID and TTL plus a marker key attached to it (keys.ts), so
 * the coordinator's lease engine does TTLs, keepalives and expiry, and its errors are etcd's.
 */
import { status } from '@grpc/grpc-js';
import { Batcher, type Waiter } from '../batching/batcher.js';
import { EtcdError } from '../etcd/errors.js';
import type { LeaseGrantRequest, LeaseGrantResponse, RequestOp } from '../etcd/types.js';
import { rangeOp } from '../upstream/ops.js';
import type { Upstream } from '../upstream/upstream.js';
import { MARKER_END, MARKER_PREFIX, markerId, markerKey } from './keys.js';

/** Markers read per read-only coordinator txn (below etcd's default --max-txn-ops). */
const LOOKUPS_PER_TXN = 100;

/** Which leases were live at a coordinator revision: ID → incarnation. */
export interface LeaseView {
  rev: bigint;
  /** Every live meta lease, whatever namespace granted it (the reaper must not take another's for dead). */
  live: Map<bigint, bigint>;
  /** The live leases granted through this proxy's namespace: the only ones its clients see. */
  own: Set<bigint>;
}

/**
 * An index entry's attachment is dead in `view` when it was made before the view was read and
 * that incarnation is not live in it (a later incarnation is not known to the view: kept).
 */
export function isDead(view: LeaseView, id: bigint, incarnation: bigint): boolean {
  return incarnation <= view.rev && view.live.get(id) !== incarnation;
}

export class LeaseDirectory {
  /** Lookups share coordinator reads, LOOKUPS_PER_TXN at most in each. */
  private readonly lookups = new Batcher<bigint, bigint | null>((batch) => this.readMarkers(batch), { take: () => LOOKUPS_PER_TXN });

  /**
   * `namespace`: the proxy's key namespace. Proxies with different namespaces may share the
   * clusters; a marker's value names the namespace that granted the lease, and a lease of
   * another namespace does not exist for this proxy's clients (lookups answer null).
   */
  constructor(
    private readonly coordinator: Upstream,
    private readonly namespace: Buffer = Buffer.alloc(0),
  ) {}

  /**
   * Grants on the coordinator, then attaches the marker. If the marker cannot be written the
   * grant is taken back (best effort) and the error returned: a lease without a marker is no
   * meta lease.
   */
  async grant(req: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    const res = await this.coordinator.leaseGrant({ TTL: req.TTL, ID: req.ID });
    if (res.error) throw new EtcdError(status.UNKNOWN, res.error);
    const id = BigInt(res.ID);
    try {
      const put: RequestOp = { request_put: { key: markerKey(id), value: this.namespace, lease: id.toString() } as RequestOp['request_put'] };
      await this.coordinator.txn({ compare: [], success: [put], failure: [] }, false);
    } catch (err) {
      await this.coordinator.leaseRevoke(id).catch(() => undefined);
      throw err;
    }
    return res;
  }

  /**
   * The incarnation of a live meta lease, or null. Lookups that arrive while one is in flight
   * share the next coordinator read (each sees every grant and revoke finished before it began).
   */
  lookup(id: bigint): Promise<bigint | null> {
    return this.lookups.submit(id);
  }

  async lookupAll(ids: Iterable<bigint>): Promise<Map<bigint, bigint>> {
    const out = new Map<bigint, bigint>();
    const unique = [...new Set(ids)];
    const found = await Promise.all(unique.map((id) => this.lookup(id)));
    unique.forEach((id, i) => {
      const inc = found[i];
      if (inc !== null && inc !== undefined) out.set(id, inc);
    });
    return out;
  }

  /** Every live meta lease, read linearizably, with the coordinator revision of the read. */
  async view(): Promise<LeaseView> {
    const res = await this.coordinator.range({ key: MARKER_PREFIX, range_end: MARKER_END });
    const live = new Map<bigint, bigint>();
    const own = new Set<bigint>();
    for (const kv of res.kvs) {
      const id = markerId(kv.key);
      if (id === null) continue;
      live.set(id, BigInt(kv.create_revision));
      if (this.namespace.equals(kv.value)) own.add(id);
    }
    return { rev: BigInt(res.header?.revision ?? '0'), live, own };
  }

  private async readMarkers(batch: Waiter<bigint, bigint | null>[]): Promise<void> {
    const ids = [...new Set(batch.map((l) => l.item))];
    const res = await this.coordinator.txn({ compare: [], success: ids.map((id) => rangeOp(markerKey(id))), failure: [] }, true);
    const found = new Map<bigint, bigint>();
    ids.forEach((id, i) => {
      const kv = res.responses[i]?.response_range?.kvs[0];
      if (kv && this.namespace.equals(kv.value)) found.set(id, BigInt(kv.create_revision));
    });
    for (const l of batch) l.resolve(found.get(l.item) ?? null);
  }
}
