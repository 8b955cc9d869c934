/**
 * upstream/change-watch.ts against a real etcd: deletes are reported with the incarnation that
 * went (prev_kv's create revision), puts too; a watcher per range on one stream; after the
 * etcd restarts, the watch comes back and says so (changes made meanwhile are not replayed).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { ChangeWatch, type ChangeEvent } from '../src/upstream/change-watch.js';
import { Upstream } from '../src/upstream/upstream.js';
import { startEtcd, type EtcdProcess } from '../src/local/etcd-process.js';

let dir: string;
let etcd: EtcdProcess;
let up: Upstream;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metaproxy-change-watch-'));
  etcd = await startEtcd({ name: 'cw', dataDir: path.join(dir, 'data'), unsafeNoFsync: true });
  up = new Upstream({ name: 'coordinator', endpoints: [etcd.clientUrl], requestTimeoutMs: 3000 });
});

after(async () => {
  up?.close();
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const put = (key: string, value = 'v') => up.txn({ compare: [], success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value) } }], failure: [] }, false);
const del = (key: string) => up.txn({ compare: [], success: [{ request_delete_range: { key: Buffer.from(key) } }], failure: [] }, false);

test('change watch: puts and deletes in each range (with the incarnation that went), nothing outside; reconnects after a restart and says so', { timeout: 60_000 }, async () => {
  const seen: ChangeEvent[] = [];
  let reconnects = 0;
  const w = new ChangeWatch(
    up,
    [{ key: Buffer.from('a/'), range_end: Buffer.from('a0'), prevKv: true }, { key: Buffer.from('single') }],
    { onChanges: (evs) => seen.push(...evs), onReconnect: () => reconnects++ },
    pino({ level: 'silent' }),
    'test',
  );
  try {
    w.start();
    await until(() => w.live && reconnects === 1, 'the watch to be in place');
    const created = await put('a/1');
    await put('b/outside');
    await put('single');
    await del('a/1');
    await del('single');
    await until(() => seen.length === 4, 'four changes');
    assert.deepEqual(
      seen.map((e) => [e.key.toString(), e.deleted]),
      [
        ['a/1', false],
        ['single', false],
        ['a/1', true],
        ['single', true],
      ],
    );
    assert.equal(seen[2]!.prev?.create_revision, created.header?.revision, 'a delete carries the create revision of what went');
    assert.equal(seen[3]!.prev, null, 'no prev_kv where the range did not ask for it');

    await etcd.kill();
    await until(() => !w.live, 'the watch to notice the etcd is gone');
    await etcd.restart();
    await until(() => w.live && reconnects === 2, 'the watch to come back');
    seen.length = 0;
    await del('a/missing');
    await put('a/2');
    await until(() => seen.length === 1, 'a change after the restart');
    assert.equal(seen[0]!.key.toString(), 'a/2');
  } finally {
    w.close();
  }
  assert.equal(w.live, false);
});
