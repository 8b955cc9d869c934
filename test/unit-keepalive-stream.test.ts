/**
 * Unit tests of the upstream keepalive stream (src/upstream/keepalive-stream.ts): answers are
 * matched by lease ID, and a keepalive that gets no answer gives the stream up (a stuck member
 * would otherwise keep every later keepalive message in grpc-js's buffers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { KeepAliveStream } from '../src/upstream/keepalive-stream.js';
import type { ClientOf } from '../src/etcd/services.js';

class FakeDuplex extends EventEmitter {
  written: string[] = [];
  cancelled = false;
  write(m: { ID: string }): boolean {
    this.written.push(m.ID);
    return true;
  }
  cancel(): void {
    this.cancelled = true;
    this.emit('error', Object.assign(new Error('1 CANCELLED: Cancelled on client'), { code: 1 }));
  }
}

function client(streams: FakeDuplex[]): ClientOf<'Lease'> {
  return {
    LeaseKeepAlive: () => {
      const d = new FakeDuplex();
      streams.push(d);
      return d;
    },
  } as unknown as ClientOf<'Lease'>;
}

const translate = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

test('keepalive stream: answers are matched to their lease, in order', async () => {
  const streams: FakeDuplex[] = [];
  const ka = new KeepAliveStream(client(streams), 'coordinator', 1000, translate);
  const a = ka.renew(7n);
  const b = ka.renew(9n);
  streams[0]!.emit('data', { ID: '9', TTL: '30' });
  streams[0]!.emit('data', { ID: '7', TTL: '10' });
  assert.equal((await a).TTL, '10');
  assert.equal((await b).TTL, '30');
  assert.equal(ka.closed, false);
  ka.close();
});

test('keepalive stream: an unanswered keepalive gives the stream up (cancelled, failed) and fails the others waiting on it', async () => {
  const streams: FakeDuplex[] = [];
  const ka = new KeepAliveStream(client(streams), 'coordinator', 40, translate);
  const first = ka.renew(1n);
  const second = ka.renew(2n);
  await assert.rejects(first, /coordinator unavailable: keepalive timed out/);
  await assert.rejects(second, /coordinator unavailable/);
  assert.equal(ka.closed, true);
  assert.equal(ka.failed, true, 'failed: the upstream tries its next endpoint');
  assert.equal(streams[0]!.cancelled, true, 'the stuck stream is cancelled, freeing what was written to it');
  await assert.rejects(ka.renew(3n), /keepalive stream closed/);
  assert.deepEqual(streams[0]!.written, ['1', '2'], 'nothing more written to the stuck stream');
});
