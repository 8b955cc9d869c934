/** The proxy's Prometheus metrics (prom-client), all under the etcd_metaproxy_ prefix. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'etcd_metaproxy_' });

const latencyBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const grpcRequests = new Counter({
  name: 'etcd_metaproxy_grpc_requests_total',
  help: 'Client gRPC requests by method and status code.',
  labelNames: ['method', 'code'],
  registers: [registry],
});
export const grpcDuration = new Histogram({
  name: 'etcd_metaproxy_grpc_request_duration_seconds',
  help: 'Client gRPC request latency by method.',
  labelNames: ['method'],
  buckets: latencyBuckets,
  registers: [registry],
});
export const upstreamRequests = new Counter({
  name: 'etcd_metaproxy_upstream_requests_total',
  help: 'Requests to member clusters and the coordinator, by cluster, method and status code.',
  labelNames: ['cluster', 'method', 'code'],
  registers: [registry],
});
export const upstreamDuration = new Histogram({
  name: 'etcd_metaproxy_upstream_request_duration_seconds',
  help: 'Latency of requests to member clusters and the coordinator.',
  labelNames: ['cluster', 'method'],
  buckets: latencyBuckets,
  registers: [registry],
});
export const clockAllocations = new Counter({
  name: 'etcd_metaproxy_clock_allocations_total',
  help: 'Coordinator round trips made to allocate revisions (compare-and-swap attempts).',
  registers: [registry],
});
export const clockRevisions = new Counter({
  name: 'etcd_metaproxy_clock_revisions_allocated_total',
  help: 'Meta revisions allocated from the coordinator clock.',
  registers: [registry],
});
export const clockBatchSize = new Histogram({
  name: 'etcd_metaproxy_clock_batch_size',
  help: 'Revisions allocated per coordinator round trip (group commit).',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
  registers: [registry],
});
export const writeRetries = new Counter({
  name: 'etcd_metaproxy_write_retries_total',
  help: 'Member txns retried, by reason: fence (shard clock passed the revision), pin (the key changed), read_pin.',
  labelNames: ['reason'],
  registers: [registry],
});
export const fenceWrites = new Counter({
  name: 'etcd_metaproxy_fence_writes_total',
  help: 'Writes that only raise a shard clock so a consistent read or a lagging shard can proceed.',
  labelNames: ['shard'],
  registers: [registry],
});
export const memberWrites = new Counter({
  name: 'etcd_metaproxy_member_writes_total',
  help: 'Fenced member txns sent, by shard.',
  labelNames: ['shard'],
  registers: [registry],
});
export const clientWrites = new Counter({
  name: 'etcd_metaproxy_client_writes_total',
  help: 'Client write requests (Put, DeleteRange, Txn that wrote) acknowledged.',
  registers: [registry],
});
