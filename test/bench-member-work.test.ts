// The scale-out benchmark's readings of etcd and proxy /metrics (bench/lib/member-work.ts) and its
// member flags (bench/lib/bench-etcds.ts): pure functions, no processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withFlag } from '../bench/lib/bench-etcds.js';
import { deltas, etcdPer, parseEtcdCounters, parseProxyCounters, type Observed, type Sample } from '../bench/lib/member-work.js';

const etcdText = (puts: number, txns: number) => `# HELP etcd_mvcc_put_total Total number of puts seen by this member.
# TYPE etcd_mvcc_put_total counter
etcd_mvcc_put_total ${puts}
etcd_debugging_mvcc_put_total 999
etcd_mvcc_range_total ${2 * txns}
etcd_debugging_mvcc_events_total ${puts}
etcd_debugging_mvcc_watcher_total 1
etcd_server_proposals_committed_total ${10 + txns}
etcd_mvcc_db_total_size_in_bytes 20480
grpc_server_handled_total{grpc_code="OK",grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} ${txns}
grpc_server_handled_total{grpc_code="Aborted",grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 0
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 3
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="other.Service",grpc_type="unary"} 100
`;

test('etcd counters: the non-debugging name wins, requests are counted on the KV service only', () => {
  const c = parseEtcdCounters(etcdText(5, 4));
  assert.equal(c.figures.mvccPuts, 5);
  assert.equal(c.figures.mvccRanges, 8);
  assert.equal(c.figures.proposals, 14);
  assert.equal(c.figures.txnRpcs, 4);
  assert.equal(c.figures.rangeRpcs, 3);
  assert.equal(c.figures.putRpcs, undefined);
  assert.equal(c.watchers, 1);
  assert.equal(c.dbBytes, 20480);
});

test('proxy counters: retries summed by reason', () => {
  const p = parseProxyCounters(`etcd_metaproxy_client_writes_total 10
etcd_metaproxy_fence_writes_total{shard="s1"} 2
etcd_metaproxy_fence_writes_total{shard="s2"} 3
etcd_metaproxy_write_retries_total{reason="pin"} 4
etcd_metaproxy_write_retries_total{reason="fence"} 1
`);
  assert.equal(p.clientWrites, 10);
  assert.equal(p.fenceWrites, 5);
  assert.deepEqual(p.retries, { pin: 4, fence: 1 });
});

test('proxy latency sums: member Txn calls apart from coordinator Range calls, and the waits for arrival proofs', () => {
  const p = parseProxyCounters(`etcd_metaproxy_upstream_request_duration_seconds_sum{cluster="s1",method="Txn"} 0.5
etcd_metaproxy_upstream_request_duration_seconds_count{cluster="s1",method="Txn"} 100
etcd_metaproxy_upstream_request_duration_seconds_sum{cluster="s2",method="Txn"} 0.25
etcd_metaproxy_upstream_request_duration_seconds_count{cluster="s2",method="Txn"} 50
etcd_metaproxy_upstream_request_duration_seconds_sum{cluster="coordinator",method="Txn"} 9
etcd_metaproxy_upstream_request_duration_seconds_count{cluster="coordinator",method="Txn"} 9
etcd_metaproxy_upstream_request_duration_seconds_sum{cluster="coordinator",method="Range"} 0.3
etcd_metaproxy_upstream_request_duration_seconds_count{cluster="coordinator",method="Range"} 200
etcd_metaproxy_upstream_request_duration_seconds_sum{cluster="s1",method="Range"} 7
etcd_metaproxy_upstream_request_duration_seconds_count{cluster="s1",method="Range"} 7
etcd_metaproxy_owner_answer_proof_wait_seconds_sum 0.1
etcd_metaproxy_owner_answer_proof_wait_seconds_count 150
etcd_metaproxy_grpc_request_duration_seconds_sum{method="Put"} 2
etcd_metaproxy_grpc_request_duration_seconds_count{method="Put"} 400
etcd_metaproxy_grpc_request_duration_seconds_sum{method="Range"} 1
etcd_metaproxy_grpc_request_duration_seconds_count{method="Range"} 100
`);
  assert.deepEqual(
    [p.memberTxnSec, p.memberTxnCount, p.coordinatorReadSec, p.coordinatorReadCount, p.proofWaitSec, p.proofWaitCount, p.requestSec, p.requestCount],
    [0.75, 150, 0.3, 200, 0.1, 150, 3, 500],
  );
});

test('deltas per role, divided by user requests, and the throttled share', () => {
  const obs: Observed[] = [
    { label: 'coordinator', role: 'coordinator', metricsUrl: '', pid: undefined },
    { label: 's1', role: 'shard', metricsUrl: '', pid: undefined },
    { label: 's2', role: 'shard', metricsUrl: '', pid: undefined },
  ];
  const sample = (at: number, k: number): Sample => ({
    at,
    of: new Map([
      ['coordinator', { etcd: parseEtcdCounters(etcdText(k, k)), cgroup: { periods: 100 * k, throttled: 50 * k, throttledSec: k } }],
      ['s1', { etcd: parseEtcdCounters(etcdText(10 * k, k)) }],
      ['s2', { etcd: parseEtcdCounters(etcdText(20 * k, 0)) }],
    ]),
  });
  const ds = deltas(obs, sample(0, 1), sample(1000, 3));
  assert.equal(ds[0]!.throttledShare, 0.5);
  assert.equal(ds[0]!.throttledSec, 2);
  // puts: coordinator 2, s1 20, s2 40 over 20 user requests
  assert.equal(etcdPer(ds, ['shard'], 'mvccPuts', 20), 3);
  assert.equal(etcdPer(ds, ['shard', 'coordinator'], 'mvccPuts', 20), 3.1);
  assert.equal(etcdPer(ds, ['proxy'], 'mvccPuts', 20), NaN);
});

test('withFlag replaces a flag value or appends the flag', () => {
  assert.deepEqual(withFlag(['--a', '1', '--quota-backend-bytes', '4'], '--quota-backend-bytes', '16'), ['--a', '1', '--quota-backend-bytes', '16']);
  assert.deepEqual(withFlag(['--a', '1'], '--quota-backend-bytes', '16'), ['--a', '1', '--quota-backend-bytes', '16']);
});
