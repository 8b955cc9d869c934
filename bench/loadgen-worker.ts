/**
 * One process of the Node load generator (forked by bench/lib/node-loadgen.ts). It opens its own
 * gRPC channels, runs `clients` closed loops for a warm-up and then for the measured duration,
 * and sends back its latencies (ms) as a Float64Array over IPC ('advanced' serialization).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { kvClient, type KvClient } from './lib/kv-client.js';
import { pad4, type Workload } from './lib/workloads.js';

export interface WorkerJob {
  endpoint: string;
  workload: Workload;
  clients: number;
  conns: number;
  warmupMs: number;
  durationMs: number;
  workerIndex: number;
}

export interface WorkerResult {
  ops: number;
  errors: number;
  firstError?: string;
  seconds: number;
  latenciesMs: Float64Array;
}

async function run(job: WorkerJob): Promise<WorkerResult> {
  const conns: KvClient[] = [];
  for (let i = 0; i < Math.max(1, job.conns); i++) conns.push(kvClient(job.endpoint, job.workerIndex * 1000 + i));
  const w = job.workload;
  const value = randomBytes(w.kind === 'put' ? w.valSize : 1);

  const op: (c: KvClient) => Promise<unknown> =
    w.kind === 'put'
      ? (c) => {
          // Same key shape as the Go tool: a varint of a random index, zero-padded to keySize.
          const k = Buffer.alloc(w.keySize);
          writeVarint(k, randomInt(w.keySpace));
          return c.put(k, value);
        }
      : w.rangeEnd
        ? (c) =>
            c
              .range({ key: Buffer.from(w.key), range_end: Buffer.from(w.rangeEnd!), serializable: w.serializable })
              .then((r) => {
                if (r.kvs !== w.expectKvs) throw new Error(`range returned ${r.kvs} keys, expected ${w.expectKvs}`);
              })
        : (c) =>
            c
              .range({ key: Buffer.from(w.key + pad4(randomInt(w.keyCount ?? 1))), serializable: w.serializable })
              .then((r) => {
                if (r.kvs !== 1) throw new Error(`get returned ${r.kvs} keys`);
              });

  let measuring = false;
  let stop = false;
  let cap = 1 << 16;
  let lats = new Float64Array(cap);
  let n = 0;
  let errors = 0;
  let firstError: string | undefined;

  const loop = async (c: KvClient) => {
    while (!stop) {
      const t0 = performance.now();
      try {
        await op(c);
        if (measuring) {
          if (n === cap) {
            cap *= 2;
            const next = new Float64Array(cap);
            next.set(lats);
            lats = next;
          }
          lats[n++] = performance.now() - t0;
        }
      } catch (err) {
        if (measuring) {
          errors++;
          firstError ??= String((err as Error).message ?? err);
        }
      }
    }
  };

  const loops = Array.from({ length: job.clients }, (_, i) => loop(conns[i % conns.length]!));
  await sleep(job.warmupMs);
  measuring = true;
  const start = performance.now();
  await sleep(job.durationMs);
  measuring = false;
  const seconds = (performance.now() - start) / 1000;
  stop = true;
  await Promise.all(loops);
  for (const c of conns) c.close();
  return { ops: n, errors, ...(firstError ? { firstError } : {}), seconds, latenciesMs: lats.slice(0, n) };
}

function writeVarint(buf: Buffer, v: number): void {
  // Go's binary.PutVarint: zig-zag, then base-128.
  let ux = v * 2;
  let i = 0;
  while (ux >= 0x80) {
    buf[i++] = (ux & 0x7f) | 0x80;
    ux = Math.floor(ux / 128);
  }
  buf[i] = ux;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

process.once('message', (job: WorkerJob) => {
  run(job).then(
    (res) => process.send!({ ok: true, res }, () => process.exit(0)),
    (err) => process.send!({ ok: false, error: String(err?.stack ?? err) }, () => process.exit(1)),
  );
});
process.on('disconnect', () => process.exit(0));
