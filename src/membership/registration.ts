/**
 * Keeps this replica's record in the coordinator while it serves: a coordinator lease kept
 * alive in the background, the record put under it, and both removed on close. When the lease
 * is lost (coordinator down longer than the TTL, or a coordinator that lost its data), the next
 * successful keepalive round notices and registers again.
 */
import type { Logger } from 'pino';
import type { Upstream } from '../upstream/upstream.js';
import type { CoordinatorLeases } from './coordinator-lease.js';
import { proxyKey, type ProxyRecord } from './records.js';

/** Lease TTL: how long a replica that died without deregistering stays listed. */
export const REGISTRATION_TTL_SECONDS = 10;

export class ProxyRegistration {
  private lease: bigint | null = null;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private tickRunning: Promise<void> = Promise.resolve();

  constructor(
    private readonly coordinator: Upstream,
    private readonly leases: CoordinatorLeases,
    readonly record: ProxyRecord,
    private readonly log: Logger,
    private readonly ttlSeconds = REGISTRATION_TTL_SECONDS,
  ) {}

  /** Registers once (errors are logged, and retried by the keepalive loop) and starts the loop. */
  async start(): Promise<void> {
    await this.runTick();
    // A third of the TTL: two keepalives may fail before the lease expires.
    this.timer = setInterval(() => void this.runTick(), (this.ttlSeconds * 1000) / 3);
    this.timer.unref();
  }

  get registered(): boolean {
    return this.lease !== null;
  }

  /** Stops the keepalives, then deletes the record and revokes the lease (best effort). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.tickRunning;
    const lease = this.lease;
    this.lease = null;
    if (lease === null) return;
    try {
      await this.coordinator.txn({ success: [{ request_delete_range: { key: proxyKey(this.record.id) } }] }, false);
      await this.leases.revoke(lease);
    } catch (err) {
      // The lease expires on its own within the TTL.
      this.log.warn({ err, lease: lease.toString() }, 'deregistering from the coordinator failed');
    }
  }

  private runTick(): Promise<void> {
    if (this.closed) return this.tickRunning;
    this.tickRunning = this.tick().catch((err: unknown) => {
      this.log.warn({ err }, 'proxy registration: coordinator call failed; retrying');
    });
    return this.tickRunning;
  }

  private async tick(): Promise<void> {
    if (this.lease !== null) {
      const ttl = await this.leases.keepAliveOnce(this.lease);
      if (ttl > 0) return;
      this.log.warn({ lease: this.lease.toString() }, 'proxy registration lease was lost; registering again');
      this.lease = null;
    }
    const granted = await this.leases.grant(this.ttlSeconds);
    if (this.closed) return void (await this.leases.revoke(granted.id).catch(() => undefined));
    await this.coordinator.txn(
      { success: [{ request_put: { key: proxyKey(this.record.id), value: Buffer.from(JSON.stringify(this.record)), lease: granted.id.toString() } }] },
      false,
    );
    this.lease = granted.id;
    this.log.info({ id: this.record.id, lease: granted.id.toString() }, 'registered in the coordinator');
  }
}
