// kv/owner-reads.ts: when a serializable read is answered from the shard owner's exact state,
// at which header, and every case where it is left to the read cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RequestOp, TxnRequest } from '../src/etcd/types.js';
import { CompareResult, CompareTarget } from '../src/etcd/types.js';
import { rangeRequest } from '../src/etcd/defaults.js';
import { StateHints } from '../src/kv/hints.js';
import { KeyTurns } from '../src/kv/key-turns.js';
import { ownerSerializableRead, type OwnerState } from '../src/kv/owner-reads.js';
import { Keyspace, RESERVED } from '../src/shard/keyspace.js';
import type { MetaKV } from '../src/shard/meta-kv.js';
import type { Router } from '../src/partition/router.js';
import type { Shard } from '../src/shard/shard.js';

const B = (s: string) => Buffer.from(s);
const ks = new Keyspace();
const GEN = 7;
/** A key in the members' reserved area (system keys). */
const SYS = Buffer.concat([RESERVED, B('clock')]);

const kv = (key: string, mod: bigint): MetaKV => ({ key: B(key), create: 2n, mod, version: 3n, lease: 0n, value: B(`v${mod}`), memberMod: mod + 1000n });

/** Keys starting with "o" live on shard 1, the rest on shard 0. */
const router = { shardOf: (key: Buffer) => (key[0] === 'o'.charCodeAt(0) ? 1 : 0) } as unknown as Router;

function owner(o: { epoch?: bigint | null; applied?: bigint; unturned?: boolean; acked?: bigint } = {}) {
  const writer = { ownerEpoch: o.epoch === undefined ? 5n : o.epoch, generation: GEN, applied: o.applied ?? 100n };
  const shard = { writer, keyspace: ks, unturnedWrites: o.unturned ?? false } as unknown as Shard;
  const hints = new StateHints();
  const state: OwnerState = { ks, router, shards: [shard, shard], keyTurns: [new KeyTurns(), new KeyTurns()], hints, acked: o.acked ?? 90n };
  return { state, hints };
}

const read = (...keys: string[]): TxnRequest => ({ compare: [], success: keys.map((k) => ({ request_range: { ...rangeRequest(B(k), B('')), serializable: true } })), failure: [] });

test("a serializable read of keys the owner's own writes left is answered at the last batch the member applied, or a newer key's mod", () => {
  const { state, hints } = owner();
  hints.set('k', kv('k', 40n), undefined, GEN);
  hints.set('gone', null, undefined, GEN);
  const out = ownerSerializableRead(state, read('k', 'gone'));
  assert.ok(out);
  assert.equal(out.revision, 100n);
  assert.equal(out.succeeded, true);
  assert.equal(out.wrote, false);
  const [k, gone] = out.responses.map((r) => r.response_range);
  assert.equal(String(k?.header?.revision), '100');
  assert.equal(k?.kvs[0]?.value.toString(), 'v40');
  assert.equal(String(k?.kvs[0]?.mod_revision), '40');
  assert.equal(String(k?.count), '1');
  assert.equal(gone?.kvs.length, 0, 'a key the owner deleted is absent');
  assert.equal(String(gone?.count), '0');

  hints.set('k', kv('k', 120n), undefined, GEN);
  assert.equal(ownerSerializableRead(state, read('k'))?.revision, 120n, 'a key written above the applied batch');
});

test('the range options apply as on any read: keys_only, count_only', () => {
  const { state, hints } = owner();
  hints.set('k', kv('k', 40n), undefined, GEN);
  const t = read('k');
  const only = (opts: object): TxnRequest => ({ ...t, success: [{ request_range: { ...t.success[0].request_range!, ...opts } }] });
  const keysOnly = ownerSerializableRead(state, only({ keys_only: true }))?.responses[0].response_range;
  assert.equal(keysOnly?.kvs[0]?.key.toString(), 'k');
  assert.equal(keysOnly?.kvs[0]?.value.length, 0);
  const countOnly = ownerSerializableRead(state, only({ count_only: true }))?.responses[0].response_range;
  assert.equal(countOnly?.kvs.length, 0);
  assert.equal(String(countOnly?.count), '1');
});

test('left to the read cache: anything but a compare-free txn of serializable single-key reads at the current revision', () => {
  const { state, hints } = owner();
  hints.set('k', kv('k', 40n), undefined, GEN);
  const range = (opts: object): RequestOp => ({ request_range: { ...rangeRequest(B('k'), B('')), serializable: true, ...opts } });
  const cases: Array<[string, TxnRequest]> = [
    ['a compare', { ...read('k'), compare: [{ target: CompareTarget.MOD, result: CompareResult.EQUAL, key: B('k'), range_end: B(''), mod_revision: '40' }] }],
    ['a linearizable read', { compare: [], success: [range({ serializable: false })], failure: [] }],
    ['a range', { compare: [], success: [range({ range_end: B('l') })], failure: [] }],
    ['a past revision', { compare: [], success: [range({ revision: '30' })], failure: [] }],
    ['a write', { compare: [], success: [{ request_put: { key: B('k'), value: B('x'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } }], failure: [] }],
    ['no op', { compare: [], success: [], failure: [] }],
    ['keys on two shards', read('k', 'other')],
    ['a reserved key (even one with an exact hint)', { compare: [], success: [{ request_range: { ...rangeRequest(SYS, B('')), serializable: true } }], failure: [] }],
  ];
  hints.set('other', kv('other', 41n), undefined, GEN);
  hints.set(SYS.toString('latin1'), kv('sys', 42n), undefined, GEN);
  for (const [what, t] of cases) assert.equal(ownerSerializableRead(state, t), null, what);
});

test("left to the read cache: keys the owner does not know exactly, a write in flight, another owner's shard, or a header below this replica's acknowledged writes", () => {
  const exact = () => {
    const o = owner();
    o.hints.set('k', kv('k', 40n), undefined, GEN);
    return o;
  };
  assert.ok(ownerSerializableRead(exact().state, read('k')), 'the baseline is answered');

  const unknown = owner();
  assert.equal(ownerSerializableRead(unknown.state, read('k')), null, 'no hint');
  const guessed = owner();
  guessed.hints.set('k', kv('k', 40n));
  assert.equal(ownerSerializableRead(guessed.state, read('k')), null, "a read's hint (a guess)");
  const older = owner();
  older.hints.set('k', kv('k', 40n), undefined, GEN - 1);
  assert.equal(ownerSerializableRead(older.state, read('k')), null, 'a hint of an earlier writer generation');

  const turn = exact();
  void turn.state.keyTurns[0].take(['k']);
  assert.equal(ownerSerializableRead(turn.state, read('k')), null, 'a write holds the key turn');

  const unturned = owner({ unturned: true });
  unturned.hints.set('k', kv('k', 40n), undefined, GEN);
  assert.equal(ownerSerializableRead(unturned.state, read('k')), null, 'a write without turns runs on the shard');

  const notOwner = owner({ epoch: null });
  notOwner.hints.set('k', kv('k', 40n), undefined, GEN);
  assert.equal(ownerSerializableRead(notOwner.state, read('k')), null, 'this replica does not own the shard');

  const behind = owner({ acked: 101n });
  behind.hints.set('k', kv('k', 40n), undefined, GEN);
  assert.equal(ownerSerializableRead(behind.state, read('k')), null, 'the header would be below an acknowledged write');
});
