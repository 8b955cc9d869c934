import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { EtcdError, Errors, fromWire } from '../src/etcd/errors.js';
import { AuthErrors } from '../src/auth/errors.js';
import { Upstream } from '../src/upstream/upstream.js';

test("a named error is etcd's code and message, told apart by name", () => {
  const e = Errors.compacted();
  assert.equal(e.code, status.OUT_OF_RANGE);
  assert.equal(e.message, 'etcdserver: mvcc: required revision has been compacted');
  assert.equal(e.kind, 'compacted');
  assert.ok(Errors.compacted.is(e));
  assert.ok(!Errors.futureRev.is(e));
  assert.ok(!AuthErrors.invalidAuthToken.is(e));
  // Same text, built by hand: not the named error (nothing inside the proxy matches on text).
  assert.ok(!Errors.compacted.is(new EtcdError(status.OUT_OF_RANGE, e.message)));
  assert.ok(!Errors.compacted.is(new Error(e.message)));
  assert.ok(AuthErrors.authOldRevision.is(AuthErrors.authOldRevision()));
});

test('an etcd answer off the wire gets its name; an unknown one keeps its text', () => {
  assert.ok(Errors.compacted.is(fromWire(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted')));
  assert.ok(AuthErrors.invalidAuthToken.is(fromWire(status.UNAUTHENTICATED, 'etcdserver: invalid auth token')));
  const other = fromWire(status.UNKNOWN, 'etcdserver: something new');
  assert.equal(other.kind, null);
  assert.equal(other.message, 'etcdserver: something new');
});

test("Upstream.translate names a member's compacted error (what revmap, compact and the cache check)", () => {
  const up = new Upstream({ name: 's1', endpoints: ['127.0.0.1:1'], requestTimeoutMs: 1000 });
  try {
    const grpcErr = Object.assign(new Error('11 OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted'), {
      code: status.OUT_OF_RANGE,
      details: 'etcdserver: mvcc: required revision has been compacted',
    });
    const e = up.translate(grpcErr);
    assert.ok(Errors.compacted.is(e));
    assert.equal((e as EtcdError).code, status.OUT_OF_RANGE);
    const down = up.translate(Object.assign(new Error('14 UNAVAILABLE: connect failed'), { code: status.UNAVAILABLE, details: 'connect failed' }));
    assert.equal((down as EtcdError).code, status.UNAVAILABLE);
    assert.match(down.message, /shard s1 unavailable: connect failed/);
  } finally {
    up.close();
  }
});
