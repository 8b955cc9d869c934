/**
 * xxhash64 of raw key bytes. xxhash-wasm's string helpers hash UTF-8, which would route a
 * non-UTF-8 key differently from its bytes, so only the Raw (byte) entry point is used.
 */
import xxhash from 'xxhash-wasm';

type Hash64 = (input: Uint8Array, seed?: bigint) => bigint;

let h64: Hash64 | undefined;

/** Must be awaited once before hash64 is used (the wasm module loads asynchronously). */
export async function initHash(): Promise<void> {
  if (!h64) h64 = (await xxhash()).h64Raw;
}

export function hash64(bytes: Uint8Array): bigint {
  if (!h64) throw new Error('partition/hash: initHash() was not awaited');
  return h64(bytes, 0n);
}
