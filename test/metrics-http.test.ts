import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startMetricsServer } from '../src/metrics/http.js';
import { clockBatchSize, grpcDuration, grpcRequests, registry, upstreamRequests } from '../src/metrics/registry.js';

async function get(base: string, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://${base}${path}`, { headers: { connection: 'close' } });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

test('metrics, health, readyz and livez endpoints', async () => {
  let healthy = true;
  let ready = false;
  const server = await startMetricsServer('127.0.0.1:0', {
    healthy: async () => healthy,
    ready: () => ready,
  });
  try {
    assert.match(server.address, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(server.address, '127.0.0.1:0');

    grpcRequests.inc({ method: 'Range', code: 'OK' });
    grpcDuration.observe({ method: 'Range' }, 0.0002);
    upstreamRequests.inc({ cluster: 's1', method: 'Txn', code: 'OK' });
    clockBatchSize.observe(7);
    const m = await get(server.address, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.type, /text\/plain/);
    assert.match(m.body, /etcd_metaproxy_grpc_requests_total\{method="Range",code="OK"\} 1/);
    assert.match(m.body, /etcd_metaproxy_grpc_request_duration_seconds_bucket\{le="0.00025",method="Range"\} 1/);
    assert.match(m.body, /etcd_metaproxy_upstream_requests_total\{cluster="s1",method="Txn",code="OK"\} 1/);
    assert.match(m.body, /etcd_metaproxy_clock_batch_size_bucket\{le="8"\} 1/);
    assert.match(m.body, /etcd_metaproxy_process_cpu_user_seconds_total/);
    assert.match(m.body, /etcd_metaproxy_write_retries_total/);

    assert.deepEqual(await get(server.address, '/livez'), { status: 200, type: 'text/plain', body: 'ok\n' });
    assert.equal((await get(server.address, '/readyz')).status, 503);
    let h = await get(server.address, '/health');
    assert.equal(h.status, 503);
    assert.deepEqual(JSON.parse(h.body), { health: 'false', reason: 'not ready' });

    ready = true;
    assert.equal((await get(server.address, '/readyz')).status, 200);
    h = await get(server.address, '/health');
    assert.equal(h.status, 200);
    assert.equal(h.type, 'application/json');
    assert.deepEqual(JSON.parse(h.body), { health: 'true', reason: '' });

    healthy = false;
    h = await get(server.address, '/health');
    assert.equal(h.status, 503);
    assert.equal(JSON.parse(h.body).health, 'false');

    assert.equal((await get(server.address, '/nope')).status, 404);
  } finally {
    await server.close();
  }
});

test('a failing health probe is reported, not thrown', async () => {
  const server = await startMetricsServer('127.0.0.1:0', {
    healthy: () => Promise.reject(new Error('boom')),
    ready: () => true,
  });
  try {
    const h = await get(server.address, '/health');
    assert.equal(h.status, 503);
    assert.deepEqual(JSON.parse(h.body), { health: 'false', reason: 'health check failed: boom' });
  } finally {
    await server.close();
  }
});

test('bad listen address and every metric is registered under its name', async () => {
  await assert.rejects(startMetricsServer('nonsense', { healthy: async () => true, ready: () => true }), /host:port/);
  const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
  for (const n of [
    'etcd_metaproxy_grpc_requests_total',
    'etcd_metaproxy_grpc_request_duration_seconds',
    'etcd_metaproxy_upstream_requests_total',
    'etcd_metaproxy_upstream_request_duration_seconds',
    'etcd_metaproxy_clock_allocations_total',
    'etcd_metaproxy_clock_revisions_allocated_total',
    'etcd_metaproxy_clock_batch_size',
    'etcd_metaproxy_write_retries_total',
    'etcd_metaproxy_fence_writes_total',
    'etcd_metaproxy_member_writes_total',
    'etcd_metaproxy_client_writes_total',
    'etcd_metaproxy_lease_keys_deleted_total',
    'etcd_metaproxy_lease_reaps_total',
  ]) {
    assert.ok(names.includes(n), `${n} registered`);
  }
});
