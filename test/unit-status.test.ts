/**
 * `status` reports without any cluster to reach: what it says when the coordinator endpoints
 * (given, or named by a proxy) do not answer. (e2e/status.test.ts runs it against real clusters.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectStatus } from '../src/status/collect.js';
import { formatTable } from '../src/status/format.js';
import { allHealthy } from '../src/status/report.js';
import { freePort } from '../src/local/ports.js';

test('coordinator unreachable: unhealthy, and when a proxy named it, the hint says where it resolves', async () => {
  const nowhere = `http://127.0.0.1:${await freePort()}`;
  const direct = await collectStatus({ coordinatorEndpoints: [nowhere], timeoutMs: 1000 });
  assert.equal(direct.coordinator.health, 'unhealthy');
  assert.deepEqual(direct.notes, ['coordinator unreachable: shards and proxies unknown']);
  assert.equal(allHealthy(direct), false);

  const via = { endpoint: 'http://127.0.0.1:2379', name: 'etcd-metaproxy-127.0.0.1:2379', version: '0.1.0' };
  const viaProxy = await collectStatus({ coordinatorEndpoints: [nowhere], proxyShards: { s1: [nowhere] }, timeoutMs: 1000, via });
  assert.deepEqual(viaProxy.via, via);
  assert.match(viaProxy.notes[0]!, new RegExp(`^coordinator unreachable: shards and proxies unknown \\(${nowhere}, as http://127.0.0.1:2379 is configured`));
  // The shards the proxy named are still listed (and checked).
  assert.deepEqual(viaProxy.shards.map((s) => [s.name, s.endpointsFrom, s.health]), [['s1', 'proxy', 'unhealthy']]);
  const table = formatTable(viaProxy);
  assert.match(table.split('\n')[0]!, /^VIA PROXY http:\/\/127\.0\.0\.1:2379 \(etcd-metaproxy-127\.0\.0\.1:2379, version 0\.1\.0\)/);
  assert.equal(allHealthy(viaProxy), false);
});
