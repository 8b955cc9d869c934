import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startMetricsServer } from '../src/http/server.js';
import { clockBatchSize, grpcDuration, grpcRequests, registry, upstreamRequests } from '../src/metrics/registry.js';

async function get(base: string, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://${base}${path}`, { headers: { connection: 'close' } });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

async function request(base: string, path: string, method: string): Promise<{ status: number; allow: string | null; body: string }> {
  const res = await fetch(`http://${base}${path}`, { method, headers: { connection: 'close' } });
  return { status: res.status, allow: res.headers.get('allow'), body: await res.text() };
}

/** Probes whose answers the test sets; counts which clusters were asked. */
function fakeProbes() {
  const state = { ready: false, cache: null as string | null, coordinator: null as string | null, shards: { s1: null, s2: null } as Record<string, string | null>, asked: [] as string[] };
  const probes = {
    ready: () => state.ready,
    cacheNotReady: () => state.cache,
    upstreams: async (which: 'coordinator' | 'shards') => {
      state.asked.push(which);
      return which === 'coordinator'
        ? [{ name: 'coordinator', error: state.coordinator }]
        : Object.entries(state.shards).map(([n, error]) => ({ name: `shard ${n}`, error }));
    },
  };
  return { state, probes };
}

test('metrics, and etcd-shaped health, readyz and livez endpoints', async () => {
  const { state, probes } = fakeProbes();
  const server = await startMetricsServer('127.0.0.1:0', probes);
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

    // Liveness never depends on readiness or on the clusters.
    const TEXT = 'text/plain; charset=utf-8';
    assert.deepEqual(await get(server.address, '/livez'), { status: 200, type: TEXT, body: 'ok\n' });
    assert.deepEqual(await get(server.address, '/livez?verbose'), { status: 200, type: TEXT, body: '[+]ping ok\nok\n' });

    // Not started: readyz lists every check, the failing one with its reason.
    let r = await get(server.address, '/readyz');
    assert.equal(r.status, 503);
    assert.equal(r.body, '[-]started failed: the proxy has not finished starting (or is shutting down)\n[+]coordinator ok\n[+]cache ok\n\n');
    let h = await get(server.address, '/health');
    assert.equal(h.status, 503);
    assert.equal(h.type, 'application/json');
    assert.deepEqual(JSON.parse(h.body), { health: 'false', reason: 'NOT READY' });

    state.ready = true;
    assert.deepEqual(await get(server.address, '/readyz'), { status: 200, type: TEXT, body: 'ok\n' });
    assert.equal((await get(server.address, '/readyz?verbose')).body, '[+]started ok\n[+]coordinator ok\n[+]cache ok\nok\n');
    h = await get(server.address, '/health');
    assert.equal(h.status, 200);
    assert.equal(h.type, 'application/json');
    assert.equal(h.body, '{"health":"true","reason":""}', 'byte for byte what etcd sends');

    // A shard down: /health fails naming it; readiness does not (other shards still serve).
    state.shards.s2 = 'etcd-metaproxy: shard s2 unavailable: connect ECONNREFUSED';
    h = await get(server.address, '/health');
    assert.equal(h.status, 503);
    assert.deepEqual(JSON.parse(h.body), { health: 'false', reason: 'UPSTREAM UNAVAILABLE:shard s2: etcd-metaproxy: shard s2 unavailable: connect ECONNREFUSED' });
    assert.equal((await get(server.address, '/readyz')).status, 200);
    state.shards.s2 = null;

    // The coordinator down: not ready, unhealthy; ?serializable=true leaves it out, as etcd's flag does.
    state.coordinator = 'down';
    r = await get(server.address, '/readyz');
    assert.equal(r.status, 503);
    assert.equal(r.body, '[+]started ok\n[-]coordinator failed: coordinator: down\n[+]cache ok\n\n');
    assert.equal((await get(server.address, '/readyz?exclude=coordinator')).status, 200);
    assert.equal((await get(server.address, '/readyz/started')).status, 200);
    assert.equal((await get(server.address, '/readyz/coordinator')).status, 503);
    assert.equal((await get(server.address, '/readyz/nope')).status, 404);
    state.coordinator = null;

    // Caches still loading: not ready (reads would go to the members meanwhile).
    state.cache = 'loading 2 of 3 shards';
    r = await get(server.address, '/readyz');
    assert.equal(r.status, 503);
    assert.equal(r.body, '[+]started ok\n[+]coordinator ok\n[-]cache failed: loading 2 of 3 shards\n\n');
    assert.equal((await get(server.address, '/readyz/cache')).status, 503);
    state.cache = null;
    assert.equal((await get(server.address, '/readyz/cache')).body, 'ok\n');
    state.coordinator = 'down';
    assert.equal((await get(server.address, '/health')).status, 503);
    state.asked = [];
    h = await get(server.address, '/health?serializable=true');
    assert.equal(h.status, 200);
    assert.deepEqual(state.asked, ['shards']);

    // Only GET, as etcd: 405 with Allow: GET.
    for (const path of ['/health', '/livez', '/readyz']) {
      assert.deepEqual(await request(server.address, path, 'POST'), { status: 405, allow: 'GET', body: 'Method Not Allowed\n' });
    }
    assert.equal((await get(server.address, '/nope')).status, 404);
  } finally {
    await server.close();
  }
});

test('a failing health probe is reported, not thrown', async () => {
  const server = await startMetricsServer('127.0.0.1:0', {
    upstreams: () => Promise.reject(new Error('boom')),
    ready: () => true,
  });
  try {
    const h = await get(server.address, '/health');
    assert.equal(h.status, 503);
    assert.deepEqual(JSON.parse(h.body), { health: 'false', reason: 'HEALTH CHECK ERROR:boom' });
    const r = await get(server.address, '/readyz');
    assert.equal(r.status, 503);
    assert.match(r.body, /\[-\]coordinator failed: boom/);
  } finally {
    await server.close();
  }
});

test("every metric the proxy registers is named in the README's metrics section", async () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('### Health endpoints and metrics');
  const section = readme.slice(start, readme.indexOf('\n## ', start));
  const named = new Set([...section.matchAll(/`(etcd_metaproxy_[a-z_]+)(?:\{[^}]*\})?`/g)].map((m) => m[1]));
  // prom-client's default process and Node metrics are named by their prefixes.
  const missing = (await registry.getMetricsAsJSON())
    .map((m) => m.name)
    .filter((n) => !named.has(n) && !n.startsWith('etcd_metaproxy_process_') && !n.startsWith('etcd_metaproxy_nodejs_'));
  assert.deepEqual(missing, []);
});

test('bad listen address and every metric is registered under its name', async () => {
  await assert.rejects(startMetricsServer('nonsense', { upstreams: async () => [], ready: () => true }), /host:port/);
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
