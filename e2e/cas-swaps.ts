/**
 * Compare-and-swap increments of one counter, as kube-apiserver updates an object
 * (`If MOD(k)==r Then Put(k) Else Range(k)`, retried on what the failure branch read), and what
 * a linearizable store must show of them.
 */
import assert from 'node:assert/strict';
import type { RawClient } from './grpc-raw.js';
import { b } from './grpc-raw.js';

export interface Swap {
  start: number;
  end: number;
  /** A success: the value it wrote; a lost swap: the value its failure branch read. */
  value: number;
  /** The success's revision, or the mod revision the failure branch read. */
  rev: bigint;
  won: boolean;
}

interface CounterKv {
  value: Buffer;
  mod_revision: string;
}

/**
 * One client incrementing the counter at `key` while `more(wins)`; a swap that fails with an
 * error (its outcome unknown) is retried on a fresh read.
 */
export async function incrementLoop(client: RawClient, key: string, swaps: Swap[], more: (wins: number) => boolean): Promise<void> {
  const k = b(key);
  let cur: CounterKv | null = null;
  for (let wins = 0; more(wins); ) {
    if (!cur) {
      const r = await client.kv('Range', { key: k }, { deadlineMs: 8_000 });
      cur = r.ok ? ((r.res as { kvs: CounterKv[] }).kvs[0] ?? null) : null;
      if (!cur) await new Promise((res) => setTimeout(res, 20));
      continue;
    }
    const value: number = Number(cur.value.toString());
    const start = performance.now();
    const r = await client.kv(
      'Txn',
      { compare: [{ key: k, target: 'MOD', result: 'EQUAL', mod_revision: cur.mod_revision }], success: [{ request_put: { key: k, value: b(String(value + 1)) } }], failure: [{ request_range: { key: k } }] },
      { deadlineMs: 8_000 },
    );
    const end = performance.now();
    if (!r.ok) {
      cur = null;
      await new Promise((res) => setTimeout(res, 20));
      continue;
    }
    const res = r.res as { succeeded: boolean; header: { revision: string }; responses: Array<{ response_range: { kvs: CounterKv[] } }> };
    if (res.succeeded) {
      wins++;
      cur = { value: b(String(value + 1)), mod_revision: res.header.revision };
      swaps.push({ start, end, value: value + 1, rev: BigInt(res.header.revision), won: true });
    } else {
      cur = res.responses[0].response_range.kvs[0];
      swaps.push({ start, end, value: Number(cur.value.toString()), rev: BigInt(cur.mod_revision), won: false });
    }
  }
}

/**
 * Each acknowledged increment wrote a value of its own; a lost swap read a value at the
 * revision it was written (when that write was acknowledged: `initRev` for 0), and never after
 * the write that replaced it had been acknowledged (a stale read). Returns the won swaps by value.
 */
export function checkSwaps(swaps: Swap[], initRev: bigint): Swap[] {
  const won = swaps.filter((s) => s.won).sort((x, y) => x.value - y.value);
  const byValue = new Map<number, Swap>();
  for (const s of won) {
    assert.ok(!byValue.has(s.value), `value ${s.value} written by one acknowledged swap only`);
    byValue.set(s.value, s);
  }
  const lost = swaps.filter((s) => !s.won);
  assert.ok(lost.length > 0, 'some swaps lost');
  for (const s of lost) {
    const wrote = s.value === 0 ? { rev: initRev } : byValue.get(s.value);
    if (wrote) assert.equal(s.rev, wrote.rev, `a lost swap read value ${s.value} at the revision it was written`);
    const next = byValue.get(s.value + 1);
    if (next) assert.ok(next.end >= s.start, `a lost swap started after value ${s.value + 1} was acknowledged, yet read ${s.value}`);
  }
  return won;
}

/** A serializable read of the counter in a read-only Txn, as etcd's STM reads (benchmark stm). */
export interface StmRead {
  value: number;
  mod: bigint;
  header: bigint;
  /** The revision of this client's own last won swap before the read (0: none). */
  ownWin: bigint;
}

/**
 * etcd's software transactional memory with repeatable reads (clientv3/concurrency, `benchmark
 * stm`): read the counter in a Txn with one serializable Range, then
 * Txn{If MOD(k)==r Then Put(k)} with no else branch; a lost swap reads again.
 */
export async function stmLoop(client: RawClient, key: string, swaps: Swap[], reads: StmRead[], more: (wins: number) => boolean): Promise<void> {
  const k = b(key);
  let ownWin = 0n;
  for (let wins = 0; more(wins); ) {
    const r = await client.kv('Txn', { success: [{ request_range: { key: k, serializable: true } }] }, { deadlineMs: 8_000 });
    if (!r.ok) {
      await new Promise((res) => setTimeout(res, 20));
      continue;
    }
    const read = r.res as { header: { revision: string }; responses: Array<{ response_range: { kvs: CounterKv[] } }> };
    const kv = read.responses[0].response_range.kvs[0];
    assert.ok(kv, 'the counter exists');
    const value = Number(kv.value.toString());
    reads.push({ value, mod: BigInt(kv.mod_revision), header: BigInt(read.header.revision), ownWin });
    const start = performance.now();
    const w = await client.kv('Txn', { compare: [{ key: k, target: 'MOD', result: 'EQUAL', mod_revision: kv.mod_revision }], success: [{ request_put: { key: k, value: b(String(value + 1)) } }] }, { deadlineMs: 8_000 });
    const end = performance.now();
    if (!w.ok) continue;
    const res = w.res as { succeeded: boolean; header: { revision: string } };
    if (!res.succeeded) continue;
    wins++;
    ownWin = BigInt(res.header.revision);
    swaps.push({ start, end, value: value + 1, rev: ownWin, won: true });
  }
}

/**
 * Each increment landed once; every serializable read is one state of the counter (the value
 * at the revision it was written, under a header at or past it and before the next increment's) and sees its client's own last
 * increment (read-your-writes, as on one etcd member).
 */
export function checkStm(swaps: Swap[], reads: StmRead[], initRev: bigint, label: string): void {
  const won = swaps.filter((s) => s.won).sort((x, y) => x.value - y.value);
  assert.deepEqual(won.map((s) => s.value), won.map((_, i) => i + 1), `${label}: each increment landed once`);
  const revOf = new Map<number, bigint>([[0, initRev], ...won.map((s): [number, bigint] => [s.value, s.rev])]);
  for (const r of reads) {
    assert.equal(r.mod, revOf.get(r.value), `${label}: a read of value ${r.value} has the revision that wrote it`);
    assert.ok(r.header >= r.mod, `${label}: header ${r.header} at or past mod ${r.mod}`);
    const next = revOf.get(r.value + 1);
    if (next !== undefined) assert.ok(next > r.header, `${label}: value ${r.value} read under header ${r.header}, but ${r.value + 1} was written at ${next}`);
    assert.ok(r.mod >= r.ownWin, `${label}: a read after the client's own increment at ${r.ownWin} sees it (read ${r.value} at ${r.mod})`);
  }
}
