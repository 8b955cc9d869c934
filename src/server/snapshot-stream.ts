/**
 * Maintenance.Snapshot as a server stream: the chunks of backup/snapshot.ts, written with
 * back-pressure (a slow client holds the scan, it never buffers the whole snapshot), stopped
 * when the client goes away, and ended with etcd's error code and message if the scan fails.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { snapshotStream } from '../backup/snapshot.js';
import { EtcdError } from '../etcd/errors.js';
import type { SnapshotResponse } from '../etcd/types.js';
import type { KeyspaceScan } from '../kv/backend.js';
import { grpcDuration, grpcRequests } from '../metrics/registry.js';
import type { Upstream } from '../upstream/upstream.js';
import type { HeaderSource } from './header.js';

export interface SnapshotDeps {
  scan: KeyspaceScan;
  /** Holds the partition map recorded in the snapshot. */
  coordinator: Pick<Upstream, 'range'>;
  header: HeaderSource;
  logger: Logger;
  /** Reported in the first message's `version`, as etcd reports its storage version. */
  version: string;
  createdBy: string;
}

/** Resolves when the stream can take more, or when the call is over (then `call.cancelled`). */
function writable(call: grpc.ServerWritableStream<object, SnapshotResponse>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      call.off('cancelled', done);
      call.off('close', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
    call.on('close', done);
  });
}

export function snapshotHandler(d: SnapshotDeps): grpc.handleServerStreamingCall<object, SnapshotResponse> {
  return (call) => {
    const started = process.hrtime.bigint();
    const finish = (code: string) => {
      grpcRequests.inc({ method: 'Snapshot', code });
      grpcDuration.observe({ method: 'Snapshot' }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    void (async () => {
      let first = true;
      let sent = 0;
      const chunks = snapshotStream(d.scan, d.coordinator, d.createdBy);
      try {
        for await (const c of chunks) {
          if (call.cancelled) break;
          const more = call.write({
            header: d.header.fill({ cluster_id: '0', member_id: '0', revision: c.revision.toString(), raft_term: '0' }),
            remaining_bytes: c.remaining.toString(),
            blob: c.blob,
            version: first ? d.version : '',
          });
          first = false;
          sent += c.blob.length;
          if (!more) await writable(call);
        }
        if (call.cancelled) {
          d.logger.info({ sent }, 'snapshot cancelled by the client');
          return finish('CANCELLED');
        }
        call.end();
        d.logger.info({ bytes: sent }, 'snapshot sent');
        finish('OK');
      } catch (err) {
        const e = err instanceof EtcdError ? err : new EtcdError(grpc.status.UNKNOWN, err instanceof Error ? err.message : String(err));
        if (!(err instanceof EtcdError)) d.logger.error({ err }, 'snapshot failed');
        else d.logger.warn({ err: e.message, sent }, 'snapshot failed');
        finish(grpc.status[e.code] ?? String(e.code));
        if (!call.cancelled) call.emit('error', { code: e.code, details: e.message, metadata: new grpc.Metadata() });
      } finally {
        await chunks.return(undefined);
      }
    })();
  };
}
