/**
 * A meta event: one change to one user key at one meta revision, already in wire form (built
 * once, shared by every watcher that receives it). Keys and values are copies, never slices of a
 * member's gRPC message, so events kept in the history do not pin those messages.
 */
import type { KeyValue } from '../etcd/types.js';

export const EventType = { PUT: 0, DELETE: 1 } as const;

export interface MetaEvent {
  type: number;
  rev: bigint;
  /** Index of the shard the key lives on. */
  shard: number;
  /** The meta key (namespace stripped). */
  key: Buffer;
  kv: KeyValue;
  /** The key's state before this event (null when it did not exist). */
  prevKv: KeyValue | null;
  /**
   * Read from a member watch opened without prev_kv: prevKv is not known yet. The merged
   * stream fills it from the read cache when the event is released (cache/prev-fill.ts).
   */
  prevUnknown?: true;
  /** Rough encoded size, for buffer limits and fragments. */
  size: number;
  wire?: WireEvent;
  wirePrev?: WireEvent;
}

/** Events of consecutive revisions, in revision order; `rev` is the highest revision covered. */
export interface EventBatch {
  events: MetaEvent[];
  rev: bigint;
}

export function eventSize(kv: KeyValue, prev: KeyValue | null): number {
  return 48 + kv.key.length * 2 + kv.value.length + (prev ? prev.value.length + 40 : 0);
}

/** The event as a wire mvccpb.Event, with or without prev_kv (built once per variant). */
export interface WireEvent {
  type: number;
  kv: KeyValue;
  prev_kv: KeyValue | null;
}

export function wireEvent(e: MetaEvent, withPrev: boolean): WireEvent {
  if (withPrev) return (e.wirePrev ??= { type: e.type, kv: e.kv, prev_kv: e.prevKv });
  return (e.wire ??= { type: e.type, kv: e.kv, prev_kv: null });
}
