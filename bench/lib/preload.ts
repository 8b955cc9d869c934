/** Writes the keys the get and range workloads read (workloads.ts) and checks them. */
import { kvClient } from './kv-client.js';
import { GET_KEYS, GET_PREFIX, pad4, RANGE_KEYS, RANGE_PREFIX, VALUE_SIZE } from './workloads.js';

/** Puts bench/get/0000..0999 and bench/range/0000..0099 (256-byte values) and checks the range returns all 100. */
export async function preloadReadKeys(endpoint: string, label: string): Promise<void> {
  const keys: string[] = [];
  for (let i = 0; i < GET_KEYS; i++) keys.push(GET_PREFIX + pad4(i));
  for (let i = 0; i < RANGE_KEYS; i++) keys.push(RANGE_PREFIX + pad4(i));
  const value = Buffer.alloc(VALUE_SIZE, 'v');
  const clients = Array.from({ length: 4 }, (_, i) => kvClient(endpoint, 900 + i));
  try {
    let next = 0;
    await Promise.all(
      clients.map(async (c) => {
        while (next < keys.length) await c.put(Buffer.from(keys[next++]!), value);
      }),
    );
    await checkReadKeys(endpoint, label);
  } finally {
    for (const c of clients) c.close();
  }
}

/** Checks that the range workload's prefix holds its 100 keys (linearizable and serializable). */
export async function checkReadKeys(endpoint: string, label: string): Promise<void> {
  const c = kvClient(endpoint, 950);
  try {
    for (const serializable of [false, true]) {
      const r = await c.range({ key: Buffer.from(RANGE_PREFIX), range_end: Buffer.from('bench/range0'), serializable });
      if (r.kvs !== RANGE_KEYS) {
        throw new Error(`${label}: ${serializable ? 'serializable' : 'linearizable'} range over the preloaded keys holds ${r.kvs} keys, expected ${RANGE_KEYS}`);
      }
    }
    const g = await c.range({ key: Buffer.from(GET_PREFIX + pad4(0)) });
    if (g.kvs !== 1) throw new Error(`${label}: ${GET_PREFIX}${pad4(0)} not found`);
  } finally {
    c.close();
  }
}
