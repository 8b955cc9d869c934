/**
 * Many clients writing one key at once (a hot key: a counter, a leader record). etcd serialises
 * such puts and never fails them; the proxy's pins make a put planned on a stale state retry,
 * and retries keep their place in line, so every put succeeds and none is lost.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, metaPerFile } from './harness.js';
import { b } from './grpc-raw.js';

let client: RawClient;

const suite = metaPerFile({ tag: 'hotkey', shards: 2 });
before(async () => {
  client = (await suite.started()).clients[0]!;
}, { timeout: 120_000 });

test('16 concurrent writers on one key: every put succeeds, versions add up', { timeout: 180_000 }, async () => {
  const WRITERS = 16;
  const PUTS = 25;
  const failures: string[] = [];
  const revs = new Set<string>();
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; i < PUTS; i++) {
        const r = await client.kv('Put', { key: b('hot/key'), value: b(`${w}-${i}`) });
        if (!r.ok) failures.push(`${r.code}: ${r.details}`);
        else revs.add(r.res.header.revision);
      }
    }),
  );
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} puts failed`);
  assert.equal(revs.size, WRITERS * PUTS, 'every put got its own revision');
  const got = await client.callOrThrow('KV', 'Range', { key: b('hot/key') });
  assert.equal(got.kvs[0].version, String(WRITERS * PUTS));
});
