import { loadConfig } from '../config/load.js';
import { collectStatus } from '../status/collect.js';
import { formatJson, formatTable } from '../status/format.js';
import { proxyTopology } from '../status/proxy-probe.js';
import { allHealthy } from '../status/report.js';
import type { Command } from './args.js';
import type { CliIO } from './io.js';

type StatusCommand = Extract<Command, { kind: 'status' }>;

/** Per-call deadline when no configuration gives one. */
const DEFAULT_TIMEOUT_MS = 3000;

/** `status`: prints the meta-cluster's state; exit 0 when everything is healthy, else 1. */
export async function runStatus(cmd: StatusCommand, io: CliIO): Promise<number> {
  const cfg = cmd.configFile !== undefined ? loadConfig({ file: cmd.configFile, env: process.env }) : undefined;
  const timeoutMs = cfg?.timeouts.requestMs ?? DEFAULT_TIMEOUT_MS;
  // --endpoints may name a proxy instead of the coordinator: it tells where its clusters are.
  const proxy = cmd.endpoints ? await proxyTopology(cmd.endpoints, timeoutMs) : null;
  const report = await collectStatus({
    coordinatorEndpoints: proxy?.coordinatorEndpoints ?? cmd.endpoints ?? cfg!.coordinator.endpoints,
    shards: cfg ? Object.fromEntries(cfg.shards.map((s) => [s.name, s.endpoints])) : undefined,
    proxyShards: proxy?.shards,
    namespace: cfg?.namespace ?? proxy?.namespace,
    timeoutMs,
    via: proxy ? { endpoint: proxy.endpoint, name: proxy.name, version: proxy.version } : undefined,
    tls: cfg ? (name) => (name === 'coordinator' ? cfg.coordinator.tls : cfg.shards.find((s) => s.name === name)?.tls) : undefined,
  });
  io.out(cmd.writeOut === 'json' ? formatJson(report) : formatTable(report));
  return allHealthy(report) ? 0 : 1;
}
