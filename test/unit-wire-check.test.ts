/** The wire checker (src/etcd/wire-check.ts) and the Alarm guard, without any etcd. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkWire } from '../src/etcd/wire-check.js';
import * as grpc from '@grpc/grpc-js';
import { refusingMalformed, requestType, WireRefusal } from '../src/server/wire-guard.js';
import { serviceDefinition } from '../src/server/service.js';
import { guardAlarm } from '../src/maintenance/alarm.js';
import type { AlarmRequest } from '../src/etcd/types.js';

/** An AlarmRequest as a client may send it: any enum numbers (etcd's wire carries unknown ones). */
const alarmReq = (action: number, alarm: number): AlarmRequest => ({ action, memberID: '0', alarm }) as AlarmRequest;

const check = (path: string, hex: string) => checkWire(requestType(path)!, Buffer.from(hex, 'hex'));

describe('wire check', () => {
  test('well-formed requests pass, unknown fields are skipped', () => {
    assert.equal(check('/etcdserverpb.KV/Range', '0a0161').error, null);
    assert.equal(check('/etcdserverpb.KV/Range', '0a0161f80301').error, null, 'unknown varint field 127');
    assert.equal(check('/etcdserverpb.Lease/LeaseGrant', '08ffffffffffffffffff01').error, null, '10-byte varint');
    assert.equal(check('/etcdserverpb.Maintenance/Status', '').error, null);
    assert.equal(check('/etcdserverpb.Lease/LeaseKeepAlive', '1200').error, null, 'unknown length-delimited field (found by the fuzzer)');
    assert.equal(check('/etcdserverpb.Lease/LeaseKeepAlive', '1a020000').error, null);
  });
  test("malformed requests get etcd's decoder errors", () => {
    assert.equal(check('/etcdserverpb.Lease/LeaseGrant', '05').error, 'proto: LeaseGrantRequest: illegal tag 0 (wire type 5)');
    assert.equal(check('/etcdserverpb.Lease/LeaseGrant', '08ffffffffffffffffffff01').error, 'proto: integer overflow');
    assert.equal(check('/etcdserverpb.KV/Put', '0801').error, 'proto: wrong wireType = 0 for field Key');
    assert.equal(check('/etcdserverpb.KV/Range', '4201').error, 'proto: wrong wireType = 2 for field KeysOnly');
    assert.equal(check('/etcdserverpb.KV/Put', '0a05616263').error, 'unexpected EOF');
    assert.equal(check('/etcdserverpb.KV/Range', '0affffffffffffffffff01').error, 'proto: negative length found during unmarshaling');
    assert.equal(check('/etcdserverpb.KV/Put', '0c').error, 'proto: PutRequest: wiretype end group for non-group');
    assert.equal(check('/etcdserverpb.KV/DeleteRange', '7e').error, 'proto: illegal wireType 6');
    assert.equal(check('/etcdserverpb.KV/Txn', '12020000').error, 'proto: RequestOp: illegal tag 0 (wire type 0)', 'nested messages are checked');
  });
  test('depth: each nested txn is two levels; the walk stops past the limit', () => {
    let op = Buffer.from('0a020a00', 'hex'); // RequestOp{request_range{key: ""}}
    for (let i = 0; i < 3; i++) {
      const txn = Buffer.concat([Buffer.from([0x12, op.length]), op]); // TxnRequest{success: [op]}
      op = Buffer.concat([Buffer.from([0x22, txn.length]), txn]); // RequestOp{request_txn}
    }
    const txn = Buffer.concat([Buffer.from([0x12, op.length]), op]);
    const r = checkWire(requestType('/etcdserverpb.KV/Txn')!, txn);
    assert.deepEqual(r, { error: null, depth: 9 }, 'Txn, Op, Txn, Op, Txn, Op, Txn, Op, Range');
    assert.deepEqual(checkWire(requestType('/etcdserverpb.KV/Txn')!, txn, 5), { error: null, depth: 6 });
  });
});

describe('Alarm guard', () => {
  test('unknown actions and activating unknown types are refused; no-ops answered locally', () => {
    assert.throws(() => guardAlarm(alarmReq(9, 1)), /etcdserver: unknown alarm action 9/);
    assert.throws(() => guardAlarm(alarmReq(1, 3)), /etcdserver: unknown alarm type 3/);
    assert.deepEqual(guardAlarm(alarmReq(1, 0)), []);
    assert.deepEqual(guardAlarm(alarmReq(0, 5)), []);
    assert.deepEqual(guardAlarm(alarmReq(2, 5)), []);
    assert.equal(guardAlarm(alarmReq(0, 0)), null);
    assert.equal(guardAlarm(alarmReq(1, 1)), null);
  });
});

test('refusingMalformed: a refused unary request is answered with its code and message and never reaches the handler; streaming and missing methods are left as they were', () => {
  const def = serviceDefinition('KV');
  const seen: unknown[] = [];
  const handler: grpc.handleUnaryCall<unknown, unknown> = (call, cb) => {
    seen.push(call.request);
    cb(null, { ok: true });
  };
  const wrapped = refusingMalformed(def, { Range: handler, Put: handler });
  assert.equal(wrapped['Txn'], undefined, 'a method left out stays out (grpc-js: UNIMPLEMENTED)');
  const answers: unknown[] = [];
  const call = (request: unknown) => ({ request }) as unknown as grpc.ServerUnaryCall<unknown, unknown>;
  const range = wrapped['Range'] as grpc.handleUnaryCall<unknown, unknown>;
  range(call(new WireRefusal(grpc.status.INTERNAL, 'grpc: error unmarshalling request: x')), (err, res) => answers.push(err ?? res));
  range(call({ key: Buffer.from('k') }), (err, res) => answers.push(err ?? res));
  assert.equal(seen.length, 1, 'only the well-formed request reached the handler');
  assert.deepEqual(
    answers.map((a) => (a instanceof Object && 'code' in a ? [a.code, (a as grpc.ServiceError).details] : a)),
    [[grpc.status.INTERNAL, 'grpc: error unmarshalling request: x'], { ok: true }],
  );
  const watchDef = serviceDefinition('Watch');
  const watch = () => undefined;
  assert.equal(refusingMalformed(watchDef, { Watch: watch })['Watch'], watch);
});
