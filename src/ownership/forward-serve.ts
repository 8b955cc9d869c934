/**
 * The owner's side of `etcdmetaproxy.Peer/ShardTxns` (forward-wire.ts): each forwarded write
 * runs as soon as its message arrives (they may land in one member batch), and the answers
 * ready in one turn of the event loop go back as one message.
 *
 * The contract the forwarder relies on (forward-stream.ts): the owner answers every write it
 * ran, and it ends a stream with OK only once those answers are sent. A write it has not
 * answered by then was never run: the owner is shutting down (drain) and no longer takes
 * writes, so the forwarder may route it again.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { EtcdError } from '../etcd/errors.js';
import type { TxnRequest } from '../etcd/types.js';
import type { TxnOutcome } from '../kv/txn-outcome.js';
import { decodeForwarded, encodeError, encodeOutcome } from './forward-wire.js';
import { PEER_SECRET_HEADER, type PeerSecret } from './peer-secret.js';

export type RunForwarded = (shard: string, txn: TxnRequest, hops: number) => Promise<TxnOutcome>;

interface Served {
  drain(): void;
  ended: Promise<void>;
}

/** The forwarding streams this replica serves, so that a shutdown can end them cleanly. */
export class ForwardStreams {
  private readonly open = new Set<Served>();

  constructor(
    private readonly run: RunForwarded,
    private readonly secret: Pick<PeerSecret, 'accepts'>,
    private readonly log: Logger,
  ) {}

  readonly handler: grpc.handleBidiStreamingCall<Buffer, Buffer> = (call) => {
    const served = serve(call, this.run, this.secret, this.log);
    this.open.add(served);
    void served.ended.then(() => this.open.delete(served));
  };

  /**
   * Stops taking forwarded writes: each stream answers the writes it runs, then ends with OK.
   * Resolves once every stream ended.
   */
  async drain(): Promise<void> {
    const all = [...this.open];
    for (const s of all) s.drain();
    await Promise.all(all.map((s) => s.ended));
  }
}

function serve(call: grpc.ServerDuplexStream<Buffer, Buffer>, run: RunForwarded, secret: Pick<PeerSecret, 'accepts'>, log: Logger): Served {
  let allowed: boolean | null = null;
  const early: Buffer[] = [];
  let running = 0;
  let draining = false;
  let halfClosed = false;
  let done = false;
  let answers: Buffer[] = [];
  let flushQueued = false;
  let ended!: () => void;
  const endedP = new Promise<void>((resolve) => (ended = resolve));

  const finish = () => {
    if (done) return;
    done = true;
    ended();
  };
  const fail = (code: grpc.status, details: string) => {
    if (done) return;
    finish();
    call.emit('error', { code, details });
  };
  const maybeEnd = () => {
    if (done || running > 0 || flushQueued || !(draining || halfClosed)) return;
    finish();
    call.end();
  };
  const flush = () => {
    flushQueued = false;
    if (done) return;
    if (answers.length) call.write(answers.length === 1 ? answers[0] : Buffer.concat(answers));
    answers = [];
    maybeEnd();
  };
  const answer = (record: Buffer) => {
    if (done) return;
    answers.push(record);
    if (flushQueued) return;
    flushQueued = true;
    setImmediate(flush);
  };
  const errorRecord = (id: number, err: unknown): Buffer => {
    if (err instanceof EtcdError) return encodeError(id, err.code, err.message);
    log.error({ err }, 'unexpected error serving a forwarded write');
    return encodeError(id, grpc.status.UNKNOWN, err instanceof Error ? err.message : String(err));
  };
  const take = (msg: Buffer) => {
    // A write that arrives once the stream drains is not run: the forwarder routes it again.
    if (done || draining) return;
    let writes;
    try {
      writes = decodeForwarded(msg);
    } catch (err) {
      return fail(grpc.status.INVALID_ARGUMENT, `etcd-metaproxy: malformed forwarded write: ${(err as Error).message}`);
    }
    for (const w of writes) {
      running++;
      run(w.shard, w.txn, w.hops)
        .then(
          (out) => answer(encodeOutcome(w.id, out)),
          (err: unknown) => answer(errorRecord(w.id, err)),
        )
        .finally(() => {
          running--;
          maybeEnd();
        });
    }
  };

  call.on('data', (msg: Buffer) => {
    if (allowed) take(msg);
    else if (allowed === null) early.push(msg);
  });
  call.on('end', () => {
    halfClosed = true;
    if (allowed) maybeEnd();
  });
  call.on('cancelled', finish);
  call.on('error', finish);
  const presented = call.metadata.get(PEER_SECRET_HEADER)[0];
  secret.accepts(typeof presented === 'string' ? presented : undefined).then(
    (ok) => {
      allowed = ok;
      if (!ok) return fail(grpc.status.PERMISSION_DENIED, 'etcd-metaproxy: only proxy replicas may call etcdmetaproxy.Peer');
      // Headers now: the forwarder's grpc-js stops holding copies of what it sends for a retry.
      if (!done) call.sendMetadata(new grpc.Metadata());
      for (const m of early.splice(0)) take(m);
      maybeEnd();
    },
    (err: unknown) => {
      log.warn({ err }, 'forwarding: could not check the peer secret');
      fail(grpc.status.UNAVAILABLE, 'etcd-metaproxy: cannot check the peer secret');
    },
  );
  return {
    drain: () => {
      draining = true;
      // A stream whose secret is still being checked has run nothing: end it once checked.
      if (allowed) maybeEnd();
      else if (allowed === false) finish();
    },
    ended: endedP,
  };
}
