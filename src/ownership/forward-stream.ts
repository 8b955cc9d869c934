/**
 * The forwarder's side of `etcdmetaproxy.Peer/ShardTxns` (forward-wire.ts): one long-lived
 * stream to each owner carries the writes this replica forwards to it. The writes that arrive
 * in one turn of the event loop go as one message, so a forwarded write costs both replicas a
 * record instead of a gRPC call each (a call costs a Node process ~0.15 ms of CPU).
 *
 * What a failed stream means for the writes it carried that are still unanswered:
 * - it ended with OK: the owner drained it (shutting down) and never ran them: route again;
 * - it never connected: never sent: route again (OwnerUnreachableError);
 * - the owner refused the replicas' secret (it knows a newer one): nothing ran; read the secret
 *   again and send them once more;
 * - anything else (the owner died, the connection broke): they may or may not have been
 *   applied: UNAVAILABLE, as when an etcd leader is lost mid-request.
 * Each write has the request timeout as its deadline, as a unary call would.
 */
import * as grpc from '@grpc/grpc-js';
import { EtcdError, fromWire } from '../etcd/errors.js';
import type { TxnRequest } from '../etcd/types.js';
import type { TxnOutcome } from '../kv/txn-outcome.js';
import { OwnerUnreachableError } from '../shard/routing-errors.js';
import { decodeAnswers, encodeForwarded, encodeTxn } from './forward-wire.js';
import { PEER_SECRET_HEADER, type PeerSecret } from './peer-secret.js';

export const FORWARD_PATH = '/etcdmetaproxy.Peer/ShardTxns';
/** A message holds records up to about this size (a larger write goes alone). */
const MESSAGE_BYTES = 256 * 1024;

interface Pending {
  id: number;
  record: Buffer;
  resolve: (out: TxnOutcome) => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
  /** Sent again once after the owner refused the secret. */
  resent: boolean;
}

/** One stream to the owner and the writes sent on it that await their answer. */
interface Attempt {
  call: grpc.ClientDuplexStream<Buffer, Buffer>;
  sent: Map<number, Pending>;
}

const identity = (b: Buffer) => b;

export class ForwardStream {
  private attempt: Attempt | null = null;
  private opening = false;
  private unsent: Pending[] = [];
  private flushQueued = false;
  private nextId = 0;

  constructor(
    private readonly client: grpc.Client,
    private readonly url: string,
    private readonly secret: Pick<PeerSecret, 'get' | 'refresh'>,
    private readonly timeoutMs: number,
  ) {}

  /** Forwards a client txn for `shard`; settles with the owner's outcome or error. */
  send(shard: string, txn: TxnRequest, hops: number): Promise<TxnOutcome> {
    return new Promise((resolve, reject) => {
      this.nextId = (this.nextId + 1) % 2 ** 32;
      const id = this.nextId;
      const p: Pending = { id, record: encodeForwarded(id, hops, shard, encodeTxn(txn)), resolve, reject, resent: false };
      p.timer = setTimeout(() => this.expire(p), this.timeoutMs);
      this.unsent.push(p);
      this.queueFlush();
    });
  }

  /** Ends the stream: the owner answers what it runs, then ends it. */
  close(): void {
    this.attempt?.call.end();
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private flush(): void {
    if (!this.unsent.length) return;
    const a = this.attempt;
    if (!a) return void this.open();
    let records: Buffer[] = [];
    let bytes = 0;
    for (const p of this.unsent.splice(0)) {
      if (bytes > 0 && bytes + p.record.length > MESSAGE_BYTES) {
        a.call.write(Buffer.concat(records, bytes));
        records = [];
        bytes = 0;
      }
      a.sent.set(p.id, p);
      records.push(p.record);
      bytes += p.record.length;
    }
    a.call.write(records.length === 1 ? records[0] : Buffer.concat(records, bytes));
  }

  private async open(): Promise<void> {
    if (this.opening) return;
    this.opening = true;
    let secret: Buffer;
    try {
      secret = await this.secret.get();
    } catch (err) {
      this.opening = false;
      const why = new OwnerUnreachableError(this.url, `the replicas' secret could not be read: ${(err as Error).message}`);
      for (const p of this.unsent.splice(0)) this.settle(p, why);
      return;
    }
    const md = new grpc.Metadata();
    md.set(PEER_SECRET_HEADER, secret.toString());
    const call = this.client.makeBidiStreamRequest(FORWARD_PATH, identity, identity, md, {});
    const a: Attempt = { call, sent: new Map() };
    this.attempt = a;
    this.opening = false;
    call.on('data', (msg: Buffer) => this.onAnswers(a, msg));
    call.on('status', (s: grpc.StatusObject) => this.onStatus(a, s));
    // The status event carries every failure.
    call.on('error', () => undefined);
    this.flush();
  }

  private onAnswers(a: Attempt, msg: Buffer): void {
    let answers;
    try {
      answers = decodeAnswers(msg);
    } catch (err) {
      // Which writes the owner ran is unknown: they end as for a broken connection.
      this.onStatus(a, { code: grpc.status.INTERNAL, details: `malformed answer from the owner: ${(err as Error).message}`, metadata: new grpc.Metadata() });
      a.call.cancel();
      return;
    }
    for (const ans of answers) {
      const p = a.sent.get(ans.id);
      if (!p) continue; // it expired meanwhile
      a.sent.delete(ans.id);
      if ('outcome' in ans) {
        clearTimeout(p.timer);
        p.resolve(ans.outcome);
      } else {
        this.settle(p, fromWire(ans.code, ans.message));
      }
    }
  }

  private onStatus(a: Attempt, s: grpc.StatusObject): void {
    if (this.attempt === a) this.attempt = null;
    const left = [...a.sent.values()];
    a.sent.clear();
    if (s.code === grpc.status.PERMISSION_DENIED) {
      // The owner knows another secret (the coordinator lost its data): read it again, once.
      this.secret.refresh();
      for (const p of left) {
        if (p.resent) this.settle(p, new EtcdError(s.code, s.details));
        else {
          p.resent = true;
          this.unsent.push(p);
        }
      }
      this.queueFlush();
      return;
    }
    const why =
      s.code === grpc.status.OK
        ? new OwnerUnreachableError(this.url, 'it ended the forwarding stream (shutting down) before running the write')
        : ownerError(s.code, s.details ?? '', this.url);
    for (const p of left) this.settle(p, why);
    // Writes queued meanwhile go on a new stream.
    if (this.unsent.length) this.queueFlush();
  }

  private expire(p: Pending): void {
    const waiting = this.unsent.indexOf(p);
    if (waiting >= 0) {
      this.unsent.splice(waiting, 1);
      return p.reject(new OwnerUnreachableError(this.url, 'no stream to it within the request timeout'));
    }
    this.attempt?.sent.delete(p.id);
    p.reject(new EtcdError(grpc.status.UNAVAILABLE, `etcd-metaproxy: shard owner at ${this.url} unavailable: Deadline exceeded`));
  }

  private settle(p: Pending, err: Error): void {
    clearTimeout(p.timer);
    p.reject(err);
  }
}

/**
 * What a failed call to an owner means. Its own errors (etcd's messages) pass through; a
 * transport failure is UNAVAILABLE: the write may or may not have been applied (the owner may
 * have died after applying it), as when an etcd leader is lost mid-request. A connection that
 * was never established is OwnerUnreachableError (nothing was sent).
 */
export function ownerError(code: grpc.status, details: string, url: string): EtcdError {
  if (code === grpc.status.UNAVAILABLE && details.startsWith('No connection established')) return new OwnerUnreachableError(url, details);
  if (!details.startsWith('etcd')) return new EtcdError(grpc.status.UNAVAILABLE, `etcd-metaproxy: shard owner at ${url} unavailable: ${details}`);
  return fromWire(code, details);
}
