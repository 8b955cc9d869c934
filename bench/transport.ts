/**
 * The serving ceiling of a Node process on this machine, for comparison with the proxy's
 * cached gets: servers that answer every Range with the same fixed, pre-encoded RangeResponse
 * (one 256-byte KeyValue), one on bare `node:http2`, one on grpc-js, one on grpc-js with a
 * no-op server interceptor (grpc-js's ServerInterceptingCall), and one on grpc-js with the
 * proxy's own interceptor (budget/release-on-send.ts), loaded by etcd's Go benchmark tool
 * exactly like bench/run.ts's get-s workload; each server's CPU per call is printed beside its
 * rate. Then the client side: the CPU of one grpc-js unary call (a Range to a plain etcd, 8 in
 * flight), with grpc-js's caller-stack capture and without it (upstream/caller-stack.ts).
 * With --rates, each server is also loaded at those fixed rates (the tool's --rate) and its CPU
 * per call printed for each: what a call costs a Node process that is not saturated, as the
 * proxy is in bench/scaleout.ts a, where the capped members set the pace.
 *
 *   node --import tsx bench/transport.ts [--duration 8] [--clients 64] [--conns 8] [--calls 20000]
 *     [--servers http2,grpc-js,grpc-js+interceptor,grpc-js+release-on-send] [--rates 200,800,3200]
 *
 * Two more servers run only when named: grpc-js+tick answers in the event loop's next turn,
 * grpc-js+delay 2 ms later, as the proxy answers once its member answered.
 *
 * Each server runs in a child process of its own (this file, with --serve), on a free loopback
 * port, and is stopped at the end.
 */
import { fork } from 'node:child_process';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { releaseOnSend } from '../src/budget/release-on-send.js';
import { etcdService } from '../src/etcd/proto.js';
import { withoutCallerStack } from '../src/upstream/caller-stack.js';
import { encodeKeyValue, encodeRangeResponse } from '../src/wire/encoded-kv.js';
import { freePort } from '../src/local/ports.js';
import { intArg, listArg } from './lib/args.js';
import { startEtcds } from './lib/bench-etcds.js';
import { installSignalHandlers, onCleanup, runCleanups, stopChild } from './lib/cleanup.js';
import { cpuSeconds } from './lib/cpu.js';
import { goArgs, goBenchmarkAvailable, GO_BENCHMARK_BIN, runGo, runGoArgs, type GoRunOptions } from './lib/go-bench.js';
import type { Workload } from './lib/workloads.js';
import { workloadsFor } from './lib/workloads.js';

const SERVERS_DEFAULT = 'http2,grpc-js,grpc-js+interceptor,grpc-js+release-on-send';
/** Also known: grpc-js answering in a later event-loop turn (tick) or 2 ms later (delay), as the proxy answers after its upstream calls. */
const SERVERS_KNOWN = `${SERVERS_DEFAULT},grpc-js+tick,grpc-js+delay`;
const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    port: { type: 'string' },
    duration: { type: 'string', default: '8' },
    clients: { type: 'string', default: '64' },
    conns: { type: 'string', default: '8' },
    calls: { type: 'string', default: '20000' },
    servers: { type: 'string', default: SERVERS_DEFAULT },
    rates: { type: 'string', default: '' },
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

/** An interceptor that changes nothing, built the way grpc-js documents. */
const noopInterceptor: grpc.ServerInterceptor = (_method, call) =>
  new grpc.ServerInterceptingCall(call, {
    start: (next) => next({ onCancel: () => undefined }),
    sendMessage: (message, next) => next(message),
    sendStatus: (status, next) => next(status),
  });

type Reply = (call: unknown, cb: (err: null, res: Buffer) => void) => void;

function serveGrpcJs(port: number, kind: string): void {
  const msg = fixedResponse();
  const now: Reply = (_call, cb) => cb(null, msg);
  const later: Record<string, Reply> = {
    'grpc-js+tick': (_call, cb) => setImmediate(() => cb(null, msg)),
    'grpc-js+delay': (_call, cb) => setTimeout(() => cb(null, msg), 2),
  };
  const interceptors = kind === 'grpc-js+interceptor' ? [noopInterceptor] : kind === 'grpc-js+release-on-send' ? [releaseOnSend] : [];
  const server = new grpc.Server({ interceptors });
  const raw = (b: Buffer) => b;
  server.addService(
    { Range: { path: '/etcdserverpb.KV/Range', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
    { Range: later[kind] ?? now },
  );
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), () => process.send?.('ready'));
}

async function serverRows(): Promise<string[]> {
  const [getS] = workloadsFor(['get-s'], 1);
  const rows: string[] = [];
  // Repeating a name runs that server again (alternate two to compare them on a drifting machine).
  for (const kind of listArg('servers', values.servers, SERVERS_KNOWN.split(','))) {
    const port = await freePort();
    const child = fork(fileURLToPath(import.meta.url), ['--serve', kind, '--port', String(port)], { execArgv: ['--import', 'tsx'] });
    const unregister = onCleanup(`${kind} server`, () => stopChild(child, 2000));
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`${kind} server exited (${code})`)));
    });
    let cpu0 = 0;
    let cpu = NaN;
    const o: GoRunOptions = {
      endpoint: `127.0.0.1:${port}`,
      clients: intArg('clients', values.clients),
      conns: intArg('conns', values.conns),
      durationSec: intArg('duration', values.duration),
    };
    const m = await runGo(getS, kind, {
      ...o,
      onMeasureStart: () => (cpu0 = cpuSeconds(child.pid ?? -1) ?? NaN),
      onMeasureEnd: () => (cpu = (cpuSeconds(child.pid ?? -1) ?? NaN) - cpu0),
    });
    const perCall = ((cpu / m.ops) * 1e6).toFixed(0);
    rows.push(`${kind.padEnd(24)} ${m.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms  server CPU ${perCall} us/call`);
    const atRates = await fixedRates(getS, o, child.pid ?? -1);
    if (atRates.length) rows.push(`${''.padEnd(24)} at fixed rates: ${atRates.join(', ')}`);
    await stopChild(child, 2000);
    unregister();
  }
  return rows;
}

/** `rate calls/s: CPU µs per call` of the server `pid` at each of --rates, for about --duration each. */
async function fixedRates(w: Workload, o: GoRunOptions, pid: number): Promise<string[]> {
  const out: string[] = [];
  for (const rate of values.rates!.split(',').filter(Boolean).map(Number)) {
    if (!(rate > 0)) throw new Error(`--rates: ${rate} is not a rate`);
    const total = Math.round(rate * o.durationSec);
    const cpu0 = cpuSeconds(pid) ?? NaN;
    const r = await runGoArgs([...goArgs(w, o, total), `--rate=${rate}`], Math.max(60_000, o.durationSec * 10_000));
    const cpu = (cpuSeconds(pid) ?? NaN) - cpu0;
    out.push(`${r.opsPerSec.toFixed(0)} calls/s: ${((cpu / total) * 1e6).toFixed(0)} us/call`);
  }
  return out;
}

/** CPU µs per grpc-js unary call (Range of one missing key) to a plain etcd, `inFlight` at a time. */
async function clientCallCpu(endpoint: string, calls: number, inFlight: number, captureStack: boolean): Promise<number> {
  const KV = etcdService('KV');
  const client = new KV(endpoint, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Range: UnaryCall };
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const start = () => client.Range({ key: Buffer.from('transport') }, new grpc.Metadata(), { deadline: new Date(Date.now() + 10_000) }, (err) => (err ? reject(err) : resolve()));
      if (captureStack) start();
      else withoutCallerStack(start);
    });
  try {
    for (let i = 0; i < 500; i++) await one(); // warm-up
    let left = calls;
    const cpu0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (left-- > 0) await one();
      }),
    );
    const used = process.cpuUsage(cpu0);
    return (used.user + used.system) / calls;
  } finally {
    client.close();
  }
}
type UnaryCall = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void;

async function clientRows(): Promise<string[]> {
  const group = await startEtcds(['transport'], { noFsync: true, dirTag: 'transport' });
  try {
    const calls = intArg('calls', values.calls);
    const rows: string[] = [];
    // Alternated, three times each: this machine's speed drifts within seconds.
    const per: Record<'with' | 'without', number[]> = { with: [], without: [] };
    for (let round = 0; round < 3; round++) {
      per.with.push(await clientCallCpu(group.etcds[0]!.endpoint, calls, 8, true));
      per.without.push(await clientCallCpu(group.etcds[0]!.endpoint, calls, 8, false));
    }
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
    rows.push(`with grpc-js's caller-stack capture     ${fmt(per.with)} us/call`);
    rows.push(`without it (upstream/caller-stack.ts)   ${fmt(per.without)} us/call`);
    return rows;
  } finally {
    await group.stop();
  }
}

async function main(): Promise<void> {
  if (!goBenchmarkAvailable()) throw new Error(`${GO_BENCHMARK_BIN} missing: run bench/setup-benchmark-tool.sh`);
  installSignalHandlers();
  const servers = await serverRows();
  process.stdout.write(`fixed-answer Range servers, Go benchmark tool (${values.clients} clients, ${values.conns} conns):\n${servers.join('\n')}\n`);
  const clients = await clientRows();
  process.stdout.write(`grpc-js client, CPU per unary Range to a plain etcd (${values.calls} calls, 8 in flight, 3 alternated rounds):\n${clients.join('\n')}\n`);
}

if (values.serve) {
  const port = Number(values.port);
  if (values.serve === 'http2') serveHttp2(port);
  else serveGrpcJs(port, values.serve);
} else {
  main()
    .catch((err: unknown) => {
      process.stderr.write(`[transport] error: ${String(err)}\n`);
      process.exitCode = 1;
    })
    .finally(() => void runCleanups());
}
