/**
 * Ending a revision block another process holds (clock/block-end.ts), against real etcd: a
 * coordinator and one member. The holder hands out revisions from its block with no coordinator
 * call; another replica that moves the clock past the block first fences the shard to the
 * block's end, so the holder's next write from the block fails its shard fence, is re-sent
 * above, and lands above the other replica's revision (the order agrees with real time).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClockAllocator } from '../src/clock/allocator.js';
import { startEtcd, type EtcdProcess } from '../src/local/etcd-process.js';
import { clockAllocations, clockConfirmations } from '../src/metrics/registry.js';
import { epochKey } from '../src/shard/epoch.js';
import { Keyspace } from '../src/shard/keyspace.js';
import { Shard } from '../src/shard/shard.js';
import { ShardWriter, type WriteJob, type WriteResult } from '../src/shard/writer.js';
import { putOp } from '../src/upstream/ops.js';
import { Upstream } from '../src/upstream/upstream.js';

let dir: string;
let coordinatorEtcd: EtcdProcess;
let memberEtcd: EtcdProcess;
const upstreams: Upstream[] = [];
const ks = new Keyspace();
const limits = { maxTxnOps: 128, maxRequestBytes: 1 << 20 };

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metaproxy-block-end-'));
  [coordinatorEtcd, memberEtcd] = await Promise.all([
    startEtcd({ name: 'coordinator', dataDir: path.join(dir, 'coordinator'), unsafeNoFsync: true }),
    startEtcd({ name: 's1', dataDir: path.join(dir, 's1'), unsafeNoFsync: true }),
  ]);
});

after(async () => {
  for (const u of upstreams) u.close();
  await Promise.all([coordinatorEtcd?.stop(), memberEtcd?.stop()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

function upstream(name: string, etcd: EtcdProcess): Upstream {
  const u = new Upstream({ name, endpoints: [etcd.clientUrl], requestTimeoutMs: 3000 });
  upstreams.push(u);
  return u;
}

/** One replica: its clock on the coordinator and its writer on the member, wired as proxy.ts does. */
async function replica(self: string, exclusive: () => boolean): Promise<{ clock: ClockAllocator; shard: Shard }> {
  const clock = new ClockAllocator(upstream('coordinator', coordinatorEtcd));
  const member = upstream('s1', memberEtcd);
  const writer = new ShardWriter('s1', member, (n) => clock.next(n), limits, epochKey(ks), (r) => clock.skipPast(r), (n) => clock.takeFenced(n));
  const shard = new Shard(0, 's1', member, ks, writer);
  await shard.init();
  clock.useShardFence(async (target) => void (await shard.fenceAndRead(target, [])));
  clock.useBlocks({ exclusive, self, askHolder: async () => null });
  await clock.init(async () => [(await shard.currentClock()).clock]);
  return { clock, shard };
}

function put(shard: Shard, key: string): Promise<WriteResult> {
  const ops = (rev: bigint) => [putOp(Buffer.from(key), Buffer.from(rev.toString()))];
  const job: WriteJob = { ops, pins: [], elseOps: [], keys: [key], deletes: false, bytes: 64 };
  return shard.writer.submit(job, ops(0n));
}

const revOf = (r: WriteResult): bigint => {
  assert.ok(r.applied, 'applied');
  return r.rev;
};

const total = async (metric: typeof clockAllocations): Promise<number> => (await metric.get()).values.reduce((n, v) => n + v.value, 0);

test('a holder writes from its block with no coordinator call; after another replica allocated past it, its next write lands above', async () => {
  const a = await replica('http://a', () => true);
  const first = revOf(await put(a.shard, 'k1')); // reserves the block
  const allocs = await total(clockAllocations);
  const confirmations = await total(clockConfirmations);
  const second = revOf(await put(a.shard, 'k2'));
  assert.equal(second, first + 1n);
  assert.equal((await total(clockAllocations)) - allocs, 0, 'no compare-and-swap');
  assert.equal((await total(clockConfirmations)) - confirmations, 0, 'no clock read');

  // Another replica (it took a shard over, say) allocates past the block: it fences first.
  const b = await replica('http://b', () => false);
  const theirs = await b.clock.next();
  assert.ok(theirs > second + 1000n, `allocated past the block's end (${theirs})`);
  assert.ok((await a.shard.currentClock()).clock >= theirs - 1n, 'the shard clock stands at the block end');

  // The holder still believes its block is good: its write fails the shard fence and is re-sent.
  const third = revOf(await put(a.shard, 'k3'));
  assert.ok(third > theirs, `the holder's next write lands above the other replica's revision (${third} > ${theirs})`);
});
