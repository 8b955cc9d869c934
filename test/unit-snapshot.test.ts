import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SnapshotEncoder } from '../src/backup/encoder.js';
import { ALIGN, DIGEST_BYTES, MAGIC, type SnapshotHeader, type SnapshotKey } from '../src/backup/format.js';
import { SnapshotError, readSnapshot, verifySnapshot } from '../src/backup/reader.js';
import { Crc32c } from '../src/maintenance/crc32c.js';
import { parsePartitionMap, defaultPartitionMap } from '../src/partition/map.js';
import { rng } from './helpers/rng.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-metaproxy-unit-snapshot-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const header: SnapshotHeader = {
  format: 1,
  revision: '9007199254740993',
  compactRevision: '-1',
  partitionMap: defaultPartitionMap(8, 0, ['a', 'b']),
  leases: 0,
  createdAt: '2024-01-01T00:00:00.000Z',
  createdBy: 'test',
};

function randomKeys(n: number, seed: number): SnapshotKey[] {
  const r = rng(seed);
  const out: SnapshotKey[] = [];
  for (let i = 0; i < n; i++) {
    const key = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 20) }, () => Math.floor(r() * 255)));
    const value = Buffer.from(Array.from({ length: Math.floor(r() * 3000) }, () => Math.floor(r() * 256)));
    out.push({ key, value, create: BigInt(i + 2), mod: (1n << 60n) + BigInt(i), version: BigInt(1 + Math.floor(r() * 9)), lease: -BigInt(i) });
  }
  return out;
}

function write(name: string, keys: SnapshotKey[]): string {
  const enc = new SnapshotEncoder();
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([enc.start(header), ...keys.map((k) => enc.key(k)), enc.finish()]));
  return file;
}

async function records(file: string) {
  const out = [];
  for await (const r of readSnapshot(file)) out.push(r);
  return out;
}

describe('snapshot file', () => {
  test('round trip: header, every key exact and in order, end counts', async () => {
    for (const n of [0, 1, 37, 400]) {
      const keys = randomKeys(n, n + 1);
      const file = write(`rt-${n}`, keys);
      const got = await records(file);
      assert.deepEqual(got[0], { type: 'header', header });
      assert.deepEqual(got.slice(1, -1), keys.map((kv) => ({ type: 'key', kv })));
      assert.deepEqual(got.at(-1), { type: 'end', end: { keys: BigInt(n), leases: 0n } });
      // etcdctl snapshot save accepts only 512·n + 32 bytes (a whole-page file plus its SHA-256).
      assert.equal(fs.statSync(file).size % ALIGN, DIGEST_BYTES);
      assert.equal((await verifySnapshot(file)).end.keys, BigInt(n));
    }
  });

  test('a truncated file is refused wherever it is cut', async () => {
    const file = write('whole', randomKeys(50, 7));
    const whole = fs.readFileSync(file);
    const r = rng(3);
    const cuts = [0, 10, MAGIC.length, MAGIC.length + 3, whole.length - 1, whole.length - DIGEST_BYTES, whole.length - DIGEST_BYTES - 1, whole.length - 600];
    for (let i = 0; i < 30; i++) cuts.push(Math.floor(r() * whole.length));
    for (const cut of cuts) {
      const t = path.join(dir, `cut-${cut}`);
      fs.writeFileSync(t, whole.subarray(0, cut));
      await assert.rejects(verifySnapshot(t), SnapshotError, `cut at ${cut}`);
    }
  });

  test('a changed byte anywhere is refused; so is a foreign file', async () => {
    const file = write('flip', randomKeys(20, 9));
    const whole = fs.readFileSync(file);
    const r = rng(5);
    for (let i = 0; i < 30; i++) {
      const at = Math.floor(r() * whole.length);
      const bad = Buffer.from(whole);
      bad[at] ^= 1 + Math.floor(r() * 255);
      const t = path.join(dir, `flip-${i}`);
      fs.writeFileSync(t, bad);
      await assert.rejects(verifySnapshot(t), SnapshotError, `byte ${at}`);
    }
    const foreign = path.join(dir, 'foreign');
    fs.writeFileSync(foreign, Buffer.alloc(4096 + 32, 1));
    await assert.rejects(verifySnapshot(foreign), /not an etcd-metaproxy snapshot/);
    await assert.rejects(verifySnapshot(path.join(dir, 'missing')), /cannot read it: ENOENT/);
  });
});

describe('crc32c', () => {
  test('the standard check value, incrementally', () => {
    assert.equal(new Crc32c().update(Buffer.from('123456789')).digest(), 0xe3069283);
    assert.equal(new Crc32c().update(Buffer.from('1234')).update(Buffer.from('56789')).digest(), 0xe3069283);
    assert.equal(new Crc32c().digest(), 0);
  });
});

describe('restore marker', () => {
  test('a proxy refuses a partition map that is an unfinished restore', () => {
    const marker = Buffer.from(JSON.stringify({ restoring: true, revision: '5' }));
    assert.throws(() => parsePartitionMap(marker), /restore into these clusters .* has not finished/);
  });
});
