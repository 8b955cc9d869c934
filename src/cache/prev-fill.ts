/**
 * Previous values of released events, from the read cache instead of the members. A member
 * watch with prev_kv costs the member one read per event per watch (etcd 3.4 also copies its
 * write buffer for each); the cache already holds every key's state just before each released
 * batch, so the merged stream's member watches do without (watch/merged-stream.ts fillPrevWith).
 */
import { wire64 } from '../etcd/types.js';
import type { KeyValue } from '../etcd/types.js';
import type { EventBatch } from '../watch/event.js';
import { EventType, eventSize } from '../watch/event.js';
import type { ShardStore } from './key-tree.js';
import { decodeKeyValue } from '../wire/encoded-kv.js';

/**
 * Fills prevKv of the batch's events read without prev_kv. `stores` hold the state just before
 * the batch; an earlier event of the batch on the same key is its previous state.
 */
export function fillPrev(b: EventBatch, stores: readonly ShardStore[]): void {
  // Same-key events in one batch only matter when it holds more than one event.
  const track = b.events.length > 1;
  let earlier: Map<string, KeyValue | null> | null = null;
  for (const e of b.events) {
    if (!e.prevUnknown && !track) continue;
    const key = e.key.toString('latin1');
    if (e.prevUnknown) {
      const inBatch = earlier?.get(key);
      const prev = inBatch !== undefined ? inBatch : fromCache(stores[e.shard]?.live.get(key), e.key);
      e.prevKv = prev;
      e.size = eventSize(e.kv, prev);
      delete e.prevUnknown;
    }
    if (track) (earlier ??= new Map()).set(key, e.type === EventType.PUT ? e.kv : null);
  }
}

/** The cached KeyValue, with its value in memory of its own (events live on in the history). */
function fromCache(enc: string | undefined, key: Buffer): KeyValue | null {
  if (enc === undefined) return null;
  const f = decodeKeyValue(enc);
  const value = Buffer.allocUnsafeSlow(f.value.length);
  f.value.copy(value);
  return { key, create_revision: wire64(f.create), mod_revision: wire64(f.mod), version: wire64(f.version), value, lease: wire64(f.lease) };
}
