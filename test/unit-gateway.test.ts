/**
 * The gateway's JSON reader and codec: Go's error wording (taken from etcd 3.4's gateway
 * answers), lossless int64, base64 as Go decodes it, jsonpb's output rules, routes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBase64Strict, decodeResponse, encodeRequest, protoRoot } from '../src/gateway/codec.js';
import { errorBody, httpStatusOf, streamErrorChunk } from '../src/gateway/errors.js';
import { GoJsonError, readJsonValue, UnexpectedEof } from '../src/gateway/json-parse.js';
import { ownsPath } from '../src/gateway/gateway.js';
import { routeOf } from '../src/gateway/routes.js';

const type = (name: string) => protoRoot().lookupType(`etcdserverpb.${name}`);
const syntaxError = (text: string) => {
  try {
    readJsonValue(text, 0);
  } catch (err) {
    return (err as Error).message;
  }
  return null;
};

test('Go syntax errors', () => {
  assert.equal(syntaxError('{bad'), "invalid character 'b' looking for beginning of object key string");
  assert.equal(syntaxError('{"a" 1}'), "invalid character '1' after object key");
  assert.equal(syntaxError('{"a":1 "b"}'), "invalid character '\"' after object key:value pair");
  assert.equal(syntaxError('[1 2]'), "invalid character '2' after array element");
  assert.equal(syntaxError('{"a":tru}'), "invalid character '}' in literal true (expecting 'e')");
  assert.equal(syntaxError('{"a":x}'), "invalid character 'x' looking for beginning of value");
  assert.equal(syntaxError('{"a":-}'), "invalid character '}' in numeric literal");
  assert.equal(syntaxError('{"a":1.}'), "invalid character '}' after decimal point in numeric literal");
  assert.equal(syntaxError('{"a":"\\q"}'), "invalid character 'q' in string escape code");
  assert.equal(syntaxError('{"a'), 'unexpected EOF');
  assert.ok((() => { try { readJsonValue('{"a":', 0); } catch (e) { return e instanceof UnexpectedEof; } return false; })());
  assert.equal(syntaxError('{"a":1}'), null);
});

test('values are read one at a time; white space alone is the end', () => {
  const text = ' {"a":1}\n{"b":[true,null,"x"]} ';
  const first = readJsonValue(text, 0)!;
  assert.deepEqual(first.value, { t: 'obj', entries: [['a', { t: 'num', raw: '1' }]] });
  const second = readJsonValue(text, first.end)!;
  assert.equal(second.value.t, 'obj');
  assert.equal(readJsonValue(text, second.end), null);
});

test('int64 fields are lossless, as strings or numbers', () => {
  const req = type('LeaseGrantRequest');
  for (const id of ['9223372036854775807', 9007199254740993n]) {
    const body = typeof id === 'string' ? `{"TTL":5,"ID":"${id}"}` : `{"TTL":5,"ID":${id}}`;
    const bytes = encodeRequest(req, readJsonValue(body, 0)!.value);
    const back = req.toObject(req.decode(bytes), { longs: String });
    assert.equal(back.ID, String(id));
  }
  const tooBig = readJsonValue('{"ID":"9223372036854775808"}', 0)!.value;
  assert.throws(() => encodeRequest(req, tooBig), /cannot unmarshal number 9223372036854775808 into Go value of type int64/);
  assert.throws(() => encodeRequest(req, readJsonValue('{"ID":1.5}', 0)!.value), /cannot unmarshal number 1.5 into Go value of type int64/);
  assert.throws(() => encodeRequest(req, readJsonValue('{"ID":"x1"}', 0)!.value), /invalid character 'x' looking for beginning of value/);
});

test('base64 as Go decodes it (std alphabet, padding required, Go offsets)', () => {
  assert.equal(decodeBase64Strict('Zm9v').toString(), 'foo');
  assert.equal(decodeBase64Strict('Zm8=').toString(), 'fo');
  assert.equal(decodeBase64Strict('Zg==').toString(), 'f');
  assert.equal(decodeBase64Strict('').length, 0);
  const at = (s: string) => {
    try {
      decodeBase64Strict(s);
    } catch (err) {
      assert.ok(err instanceof GoJsonError);
      return (err as Error).message;
    }
    return null;
  };
  assert.equal(at('eA'), 'illegal base64 data at input byte 0');
  assert.equal(at('eA-_'), 'illegal base64 data at input byte 2');
  assert.equal(at('!!!'), 'illegal base64 data at input byte 0');
  assert.equal(at('Zg='), 'illegal base64 data at input byte 3');
  assert.equal(at('Zg=x'), 'illegal base64 data at input byte 2');
  assert.equal(at('Zg==Zg=='), 'illegal base64 data at input byte 4');
});

test('requests: original and camelCase names, enums by name or number, unknown fields ignored, bad types', () => {
  const req = type('RangeRequest');
  const enc = (s: string) => req.toObject(req.decode(encodeRequest(req, readJsonValue(s, 0)!.value)), { longs: String, enums: String });
  assert.deepEqual(enc('{"key":"YQ==","sort_order":"DESCEND","sortTarget":2,"keysOnly":true,"x":1,"limit":null}'), {
    key: Buffer.from('a'),
    sort_order: 'DESCEND',
    sort_target: 'CREATE',
    keys_only: true,
  });
  assert.throws(() => enc('{"sort_order":"FOO"}'), /unknown value "FOO" for enum etcdserverpb.RangeRequest_SortOrder/);
  assert.throws(() => enc('{"key":5}'), /json: cannot unmarshal number into Go value of type \[\]uint8/);
  assert.throws(() => enc('{"serializable":"true"}'), /json: cannot unmarshal string into Go value of type bool/);
  assert.throws(() => enc('[]'), /json: cannot unmarshal array into Go value of type map\[string\]json.RawMessage/);
});

test('responses: defaults left out, int64 as strings, enums by name, present sub-messages kept', () => {
  const res = type('WatchResponse');
  const bytes = res
    .encode(
      res.fromObject({
        header: { revision: '12' },
        watch_id: '0',
        created: false,
        events: [{ type: 1, kv: { key: Buffer.from('k'), mod_revision: '12' } }, { kv: { key: Buffer.from('k'), value: Buffer.from('v'), version: '1' } }],
      }),
    )
    .finish();
  assert.deepEqual(decodeResponse(res, bytes), {
    header: { revision: '12' },
    events: [{ type: 'DELETE', kv: { key: 'aw==', mod_revision: '12' } }, { kv: { key: 'aw==', version: '1', value: 'dg==' } }],
  });
  const txn = type('TxnResponse');
  const t = txn.encode(txn.fromObject({ responses: [{ response_put: { header: {} } }] })).finish();
  assert.deepEqual(decodeResponse(txn, t), { responses: [{ response_put: { header: {} } }] });
});

test('errors and routes as etcd 3.4 answers them', () => {
  assert.equal(errorBody({ code: 3, message: 'etcdserver: key is not provided' }), '{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}');
  assert.deepEqual([9, 11, 8, 12, 5, 14, 2].map(httpStatusOf), [412, 400, 429, 501, 404, 503, 500]);
  assert.equal(streamErrorChunk({ code: 5, message: 'gone' }), '{"error":{"grpc_code":5,"http_code":404,"message":"gone","http_status":"Not Found"}}');
  assert.deepEqual(routeOf('/v3/kv/lease/revoke'), { service: 'Lease', method: 'LeaseRevoke' });
  assert.deepEqual(routeOf('/v3beta/watch'), { service: 'Watch', method: 'Watch' });
  assert.deepEqual(routeOf('/v3/maintenance/hash'), { service: 'Maintenance', method: 'Hash' });
  assert.equal(routeOf('/v3/kv/nope'), null);
  assert.equal(routeOf('/v3alpha/kv/range'), null);
  assert.ok(ownsPath('/version') && ownsPath('/v3/anything') && !ownsPath('/metrics') && !ownsPath('/health'));
});

test('the metrics listener answers gateway paths with UNAVAILABLE until the proxy has started', async () => {
  const { startMetricsServer } = await import('../src/http/server.js');
  const server = await startMetricsServer('127.0.0.1:0', { ready: () => false, upstreams: async () => [] }, undefined, () => null);
  try {
    const res = await fetch(`http://${server.address}/v3/kv/range`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { error: 'etcd-metaproxy: the proxy has not started yet', message: 'etcd-metaproxy: the proxy has not started yet', code: 14 });
    const other = await fetch(`http://${server.address}/nothing`);
    assert.equal(other.status, 404);
    assert.equal(await other.text(), '404 page not found\n');
  } finally {
    await server.close();
  }
});

test('request size: etcd\'s request-too-large check runs on the decoded message; larger bodies are refused as by gRPC', async () => {
  const { startMetricsServer } = await import('../src/http/server.js');
  const { Gateway } = await import('../src/gateway/gateway.js');
  const { serviceDefinition } = await import('../src/server/service.js');
  const { unary } = await import('../src/server/unary.js');
  const pino = (await import('pino')).default;
  const logger = pino({ level: 'silent' });
  const opts = { logger, maxRequestBytes: 1000 };
  // A stand-in KV service: only the unary wrapper's own checks matter here.
  const kv = { Put: unary<object, object>('Put', async () => ({ header: { revision: '5' } }), opts, () => true) };
  const gateway = new Gateway({ definitions: { KV: serviceDefinition('KV') }, implementations: { KV: kv }, logger, maxRequestBytes: 1000, grpcOverheadBytes: 100, etcdVersion: '3.5.17' });
  const server = await startMetricsServer('127.0.0.1:0', { ready: () => true, upstreams: async () => [] }, undefined, () => gateway);
  const put = async (valueBytes: number) => {
    const res = await fetch(`http://${server.address}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: 'YQ==', value: Buffer.alloc(valueBytes).toString('base64') }) });
    return { status: res.status, body: (await res.json()) as { code?: number; message?: string; header?: object } };
  };
  try {
    assert.deepEqual(await put(10), { status: 200, body: { header: { revision: '5' } } });
    assert.deepEqual((await put(990)).body, { error: 'etcdserver: request is too large', message: 'etcdserver: request is too large', code: 3 });
    const over = await put(1200);
    assert.equal(over.status, 429);
    assert.match(over.body.message!, /^grpc: received message larger than max \(120[0-9] vs\. 1100\)$/);
    const huge = await put(100_000);
    assert.equal(huge.status, 429);
    assert.match(huge.body.message!, /^grpc: received message larger than max \([0-9]+ vs\. 1100\)$/);
  } finally {
    await server.close();
  }
});
