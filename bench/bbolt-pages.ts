/**
 * What one small put in every multi-put txn costs a plain etcd's backend, the shape of the
 * proxy's member txns (a batch of user puts plus the shard's clock put): bench/scaleout.ts e
 * found the shards storing fewer keys per MiB than a plain etcd, and this isolates why.
 *
 * bbolt splits a leaf into nodes of at least two items each; values of about a page (4 KiB)
 * make every node exactly two items, three pages for two values. A node that pairs a value with
 * the small clock item takes two pages for the one value: about half a page lost per txn.
 *
 *   node --import tsx bench/bbolt-pages.ts [--value 4096] [--writes 6] [--quota-mb 16]
 *
 * For each placement of the small put (none, first in the txn, last) it fills a fresh plain
 * etcd (no fsync, 8 concurrent txns of `--writes` puts of new keys) until NOSPACE and prints
 * the backend bytes per user key.
 */
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { intArg } from './lib/args.js';
import { startEtcds } from './lib/bench-etcds.js';
import { installSignalHandlers, runCleanups } from './lib/cleanup.js';
import { parseEtcdCounters } from './lib/member-work.js';
import { scrape } from './lib/metrics.js';

const { values } = parseArgs({
  options: {
    value: { type: 'string', default: '4096' },
    writes: { type: 'string', default: '6' },
    'quota-mb': { type: 'string', default: '16' },
  },
});
const valueSize = intArg('value', values.value!);
const writes = intArg('writes', values.writes!);
const quotaBytes = intArg('quota-mb', values['quota-mb']!) * 1024 * 1024;
const SMALL_KEY = '\0clock';

type Placement = 'none' | 'first' | 'last';

/** Backend bytes per user key once the etcd refuses writes. */
async function fill(placement: Placement): Promise<{ users: number; dbSize: number }> {
  const g = await startEtcds([`etcd-bbolt-${placement}`], { noFsync: true, quotaBackendBytes: quotaBytes, dirTag: 'bbolt' });
  const etcd = g.etcds[0]!;
  const client = new Etcd3({ hosts: `http://${etcd.endpoint}` });
  const value = Buffer.alloc(valueSize, 'x');
  let next = 0;
  let users = 0;
  let full = false;
  try {
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (!full) {
          const puts = Array.from({ length: writes }, () => client.put(`storage/${String(next++).padStart(9, '0')}`).value(value));
          const small = client.put(SMALL_KEY).value('12345678');
          const ops = placement === 'none' ? puts : placement === 'first' ? [small, ...puts] : [...puts, small];
          try {
            // A compare that always holds: the member txns have one too.
            await client.if(SMALL_KEY, 'Version', '>', -1).then(...ops).commit();
            users += writes;
          } catch (err) {
            full = true; // the other loops stop too
            if (!String(err).includes('database space exceeded')) throw err;
          }
        }
      }),
    );
    const dbSize = parseEtcdCounters(await scrape(etcd.metricsUrl)).dbBytes;
    if (dbSize === undefined) throw new Error(`${etcd.metricsUrl} has no backend size`);
    return { users, dbSize };
  } finally {
    client.close();
    await g.stop();
  }
}

async function main(): Promise<void> {
  process.stdout.write(`plain etcd, ${quotaBytes / 1024 / 1024} MiB quota, txns of ${writes} puts of ${valueSize}-byte values:\n`);
  for (const placement of ['none', 'first', 'last'] as const) {
    const { users, dbSize } = await fill(placement);
    const label = placement === 'none' ? 'no small put' : `small put ${placement}`;
    process.stdout.write(`${label.padEnd(16)} ${String(users).padStart(6)} keys  ${(dbSize / users).toFixed(0).padStart(5)} backend bytes per key\n`);
  }
}

installSignalHandlers();
main()
  .catch((err: unknown) => {
    process.stderr.write(`[bbolt-pages] error: ${String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => void runCleanups());
