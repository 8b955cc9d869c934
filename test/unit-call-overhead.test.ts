import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { holdUntilSent, releaseOnSend, serializing } from '../src/budget/release-on-send.js';
import { MemoryBudget } from '../src/budget/memory-budget.js';
import { CallCancel } from '../src/server/unary.js';
import { withoutCallerStack } from '../src/upstream/caller-stack.js';

const method = (path: string) => ({ path, requestStream: false, responseStream: false }) as grpc.ServerMethodDefinition<unknown, unknown>;

/** The call grpc-js hands to an interceptor, recording what reaches it. */
function baseCall() {
  const seen: string[] = [];
  let listener: Parameters<grpc.ServerInterceptingCallInterface['start']>[0] | undefined;
  const call = {
    start: (l: typeof listener) => {
      listener = l;
      seen.push('start');
    },
    sendMessage: (_m: unknown, cb: () => void) => {
      seen.push('message');
      cb();
    },
    sendStatus: () => seen.push('status'),
  } as unknown as grpc.ServerInterceptingCallInterface;
  return { call, seen, cancel: () => listener?.onCancel() };
}

const handlerListener = (seen: string[]) => ({
  onReceiveMetadata: () => seen.push('metadata'),
  onReceiveMessage: () => seen.push('request'),
  onReceiveHalfClose: () => seen.push('half-close'),
  onCancel: () => seen.push('cancel'),
});

test('release-on-send: a KV Range or Txn response holds its reservation until its status goes (after the write), a cancelled call releases at once', () => {
  const budget = new MemoryBudget(1000, { smallBytes: 10, waitMs: 1000 });
  for (const path of ['/etcdserverpb.KV/Range', '/etcdserverpb.KV/Txn']) {
    const { call, seen } = baseCall();
    const wrapped = releaseOnSend(method(path), call);
    assert.notEqual(wrapped, call);
    wrapped.start(handlerListener(seen));
    const res = holdUntilSent({ kvs: [] }, budget.reserveNow(100));
    assert.equal(budget.inUse, 100);
    wrapped.sendMessage(res, () => seen.push('written'));
    assert.equal(budget.inUse, 100, 'held while the status waits for the write');
    wrapped.sendStatus({ code: 0, details: 'OK' });
    assert.equal(budget.inUse, 0);
    assert.deepEqual(seen, ['start', 'message', 'written', 'status']);
  }
  const { call, seen, cancel } = baseCall();
  const wrapped = releaseOnSend(method('/etcdserverpb.KV/Range'), call);
  wrapped.start(handlerListener(seen));
  const res = holdUntilSent({ kvs: [] }, budget.reserveNow(50));
  cancel();
  wrapped.sendMessage(res, () => undefined);
  assert.equal(budget.inUse, 0, 'a response sent after the cancel is never written');
  assert.deepEqual(seen, ['start', 'cancel', 'message']);
});

test('release-on-send: other methods pass the interceptor untouched, and a reservation their response holds ends as it is serialized', () => {
  const budget = new MemoryBudget(1000, { smallBytes: 10, waitMs: 1000 });
  const { call } = baseCall();
  assert.equal(releaseOnSend(method('/etcdserverpb.KV/Put'), call), call);
  const res = holdUntilSent({ header: {} }, budget.reserveNow(30));
  serializing('/etcdserverpb.KV/Range', res);
  assert.equal(budget.inUse, 30, 'a watched method keeps it until written');
  serializing('/etcdserverpb.KV/Put', res);
  assert.equal(budget.inUse, 0);
});

test('unary CallCancel: listens for the cancel only when a handler asks for the signal; a cancel after the answer aborts nothing', () => {
  const call = Object.assign(new EventEmitter(), { cancelled: false });
  const untouched = new CallCancel(call);
  assert.equal(call.listenerCount('cancelled'), 0);
  untouched.answered = true;

  const waiting = new CallCancel(call);
  const signal = waiting.signal;
  assert.equal(call.listenerCount('cancelled'), 1);
  assert.equal(signal.aborted, false);
  call.cancelled = true;
  call.emit('cancelled');
  assert.equal(signal.aborted, true);

  // Cancelled before the handler asked: the signal starts aborted.
  assert.equal(new CallCancel(call).signal.aborted, true);

  const call2 = Object.assign(new EventEmitter(), { cancelled: false });
  const answered = new CallCancel(call2);
  const s2 = answered.signal;
  answered.answered = true;
  call2.emit('cancelled'); // grpc-js reports it after most answered calls
  assert.equal(s2.aborted, false);
});

test('withoutCallerStack: the call starts with no stack capture, and the limit is restored, even when it throws', () => {
  const before = Error.stackTraceLimit;
  const stack = withoutCallerStack(() => new Error('x').stack ?? '');
  assert.equal(stack.split('\n').length, 1, 'only the message line');
  assert.equal(Error.stackTraceLimit, before);
  assert.throws(() => withoutCallerStack(() => {
    throw new Error('boom');
  }), /boom/);
  assert.equal(Error.stackTraceLimit, before);
});
