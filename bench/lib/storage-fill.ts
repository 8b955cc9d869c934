/**
 * Storage capacity: writes new keys (never overwrites) of `valueSize` bytes until the target
 * refuses every write, and counts the acknowledged ones. A single etcd refuses everything once
 * its backend reaches --quota-backend-bytes (NOSPACE alarm: "etcdserver: mvcc: database space
 * exceeded"); a meta-cluster should refuse only the writes for a full shard's keys while the
 * other shards go on. Keys are spread over the shards by the proxy's hash, so once `fullAfter`
 * writes in a row have failed, no shard is taking writes any more (with 3 shards and one still
 * open, 256 failures in a row happen with probability (2/3)^256).
 */
import { kvClient, prefixEnd } from './kv-client.js';

export const STORAGE_PREFIX = 'bench/storage/';

export interface FillOptions {
  valueSize: number;
  concurrency: number;
  conns: number;
  /** Stop once this many writes in a row failed. */
  fullAfter: number;
  maxSeconds: number;
  log: (msg: string) => void;
}

export interface FillResult {
  /** Writes acknowledged. */
  acked: number;
  /** Writes acknowledged before the first NOSPACE error was seen. */
  ackedBeforeFirstNospace: number;
  attempts: number;
  nospaceErrors: number;
  otherErrors: number;
  firstOtherError?: string;
  seconds: number;
  stopped: 'full' | 'time limit';
  /** Keys under the prefix counted afterwards (count_only Range), a cross-check of `acked`. */
  counted?: number;
  /** The count came from a serializable Range (the linearizable one failed with countError). */
  countedSerializable?: boolean;
  countError?: string;
}

function isNospace(err: unknown): boolean {
  const e = err as { details?: string; message?: string };
  return /database space exceeded|NOSPACE/i.test(`${e?.details ?? ''} ${e?.message ?? ''}`);
}

/** Keys under `prefix` on `endpoint` (a linearizable count_only Range). */
export async function countPrefix(endpoint: string, prefix: string): Promise<number> {
  const c = kvClient(endpoint, 2999);
  try {
    const p = Buffer.from(prefix, 'latin1');
    return (await c.range({ key: p, range_end: prefixEnd(p), count_only: true })).count;
  } finally {
    c.close();
  }
}

export async function fillUntilFull(endpoint: string, o: FillOptions): Promise<FillResult> {
  const clients = Array.from({ length: o.conns }, (_, i) => kvClient(endpoint, 2000 + i));
  const value = Buffer.alloc(o.valueSize, 'x');
  const started = performance.now();
  const deadline = started + o.maxSeconds * 1000;
  const r: FillResult = { acked: 0, ackedBeforeFirstNospace: 0, attempts: 0, nospaceErrors: 0, otherErrors: 0, seconds: 0, stopped: 'full' };
  let next = 0;
  let failuresInARow = 0;
  let sawNospace = false;
  let lastLog = started;
  const done = () => failuresInARow >= o.fullAfter || performance.now() > deadline;
  try {
    await Promise.all(
      Array.from({ length: o.concurrency }, async (_, w) => {
        const c = clients[w % clients.length]!;
        while (!done()) {
          const key = Buffer.from(STORAGE_PREFIX + String(next++).padStart(9, '0'), 'latin1');
          r.attempts++;
          try {
            await c.put(key, value);
            r.acked++;
            if (!sawNospace) r.ackedBeforeFirstNospace++;
            failuresInARow = 0;
          } catch (err) {
            failuresInARow++;
            if (isNospace(err)) {
              if (!sawNospace) o.log(`    first NOSPACE after ${r.acked} acknowledged writes`);
              sawNospace = true;
              r.nospaceErrors++;
            } else {
              r.otherErrors++;
              r.firstOtherError ??= String((err as { details?: string })?.details ?? err);
            }
          }
          if (performance.now() - lastLog > 5000) {
            lastLog = performance.now();
            o.log(`    ${r.acked} acknowledged, ${r.nospaceErrors} NOSPACE, ${r.otherErrors} other errors`);
          }
        }
      }),
    );
    r.seconds = (performance.now() - started) / 1000;
    if (failuresInARow < o.fullAfter) r.stopped = 'time limit';
    // Linearizable first; a target that cannot serve that once full gets a serializable count.
    const prefix = Buffer.from(STORAGE_PREFIX, 'latin1');
    for (const serializable of [false, true]) {
      try {
        const res = await clients[0]!.range({ key: prefix, range_end: prefixEnd(prefix), count_only: true, serializable });
        r.counted = res.count;
        if (serializable) r.countedSerializable = true;
        break;
      } catch (err) {
        r.countError ??= String((err as { details?: string })?.details ?? err);
      }
    }
  } finally {
    for (const c of clients) c.close();
  }
  return r;
}
