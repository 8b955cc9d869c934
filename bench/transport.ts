/**
 * The serving ceiling of a Node process on this machine, for comparison with the proxy's
 * cached gets: two servers that answer every Range with the same fixed, pre-encoded
 * RangeResponse (one 256-byte KeyValue), one on bare `node:http2`, one on grpc-js, loaded by
 * etcd's Go benchmark tool exactly like bench/run.ts's get-s workload.
 *
 *   node --import tsx bench/transport.ts [--duration 8] [--clients 64] [--conns 8]
 *
 * Each server runs in a child process of its own (this file, with --serve), on a free loopback
 * port, and is stopped at the end.
 */
import { fork } from 'node:child_process';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { encodeKeyValue, encodeRangeResponse } from '../src/wire/encoded-kv.js';
import { freePort } from '../src/local/ports.js';
import { intArg } from './lib/args.js';
import { installSignalHandlers, onCleanup, runCleanups, stopChild } from './lib/cleanup.js';
import { goBenchmarkAvailable, GO_BENCHMARK_BIN, runGo } from './lib/go-bench.js';
import { workloadsFor } from './lib/workloads.js';

const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    port: { type: 'string' },
    duration: { type: 'string', default: '8' },
    clients: { type: 'string', default: '64' },
    conns: { type: 'string', default: '8' },
  },
});

/** The answer of every call: what the proxy sends for a cached single-key get. */
function fixedResponse(): Buffer {
  const kv = encodeKeyValue({ key: Buffer.from('bench/get/0000'), create: 5n, mod: 5n, version: 1n, lease: 0n, value: Buffer.alloc(256, 0x61) });
  return encodeRangeResponse({ cluster_id: '1', member_id: '2', revision: '5', raft_term: '3' }, [kv], false, 1n);
}

function serveHttp2(port: number): void {
  const msg = fixedResponse();
  const frame = Buffer.allocUnsafe(5 + msg.length);
  frame[0] = 0;
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
  });
  server.listen(port, '127.0.0.1', () => process.send?.('ready'));
}

function serveGrpcJs(port: number): void {
  const msg = fixedResponse();
  const server = new grpc.Server();
  const raw = (b: Buffer) => b;
  server.addService(
    { Range: { path: '/etcdserverpb.KV/Range', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
    { Range: (_call: unknown, cb: (err: null, res: Buffer) => void) => cb(null, msg) },
  );
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), () => process.send?.('ready'));
}

async function main(): Promise<void> {
  if (!goBenchmarkAvailable()) throw new Error(`${GO_BENCHMARK_BIN} missing: run bench/setup-benchmark-tool.sh`);
  installSignalHandlers();
  const [getS] = workloadsFor(['get-s'], 1);
  const rows: string[] = [];
  for (const kind of ['http2', 'grpc-js']) {
    const port = await freePort();
    const child = fork(fileURLToPath(import.meta.url), ['--serve', kind, '--port', String(port)], { execArgv: ['--import', 'tsx'] });
    const unregister = onCleanup(`${kind} server`, () => stopChild(child, 2000));
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`${kind} server exited (${code})`)));
    });
    const m = await runGo(getS, kind, {
      endpoint: `127.0.0.1:${port}`,
      clients: intArg('clients', values.clients),
      conns: intArg('conns', values.conns),
      durationSec: intArg('duration', values.duration),
    });
    rows.push(`${kind.padEnd(8)} ${m.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms`);
    await stopChild(child, 2000);
    unregister();
  }
  process.stdout.write(`fixed-answer Range servers, Go benchmark tool (${values.clients} clients, ${values.conns} conns):\n${rows.join('\n')}\n`);
}

if (values.serve) {
  const port = Number(values.port);
  if (values.serve === 'http2') serveHttp2(port);
  else serveGrpcJs(port);
} else {
  main()
    .catch((err: unknown) => {
      process.stderr.write(`[transport] error: ${String(err)}\n`);
      process.exitCode = 1;
    })
    .finally(() => void runCleanups());
}
