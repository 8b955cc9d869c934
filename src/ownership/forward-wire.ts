/**
 * The records of `etcdmetaproxy.Peer/ShardTxns` (forward-stream.ts, forward-serve.ts): one
 * gRPC message carries any number of records, back to back, so that the writes a replica
 * forwards in one turn of its event loop cost the owner one message, not one call each.
 *
 *   forwarded write: u32 id, u8 hops, u16 shard name length, shard name (UTF-8),
 *                    u32 length, TxnRequest as etcd encodes it
 *   answer:          u32 id, u8 kind, then
 *                    kind 0 (outcome): u8 wrote, u32 length, TxnResponse (header.revision is
 *                                      the outcome's revision)
 *                    kind 1 (error):   u8 gRPC code, u32 length, message (UTF-8), exactly as
 *                                      the owner would have answered the client
 */
import { generatedService } from '../etcd/services.js';
import type { TxnRequest, TxnResponse } from '../etcd/types.js';
import type { TxnOutcome } from '../kv/txn-outcome.js';

export interface ForwardedTxn {
  id: number;
  hops: number;
  shard: string;
  txn: TxnRequest;
}

export type ForwardAnswer = { id: number; outcome: TxnOutcome } | { id: number; code: number; message: string };

const codec = () => generatedService('KV').Txn;

/** The record of one forwarded write (`txn` already encoded). */
export function encodeForwarded(id: number, hops: number, shard: string, txn: Buffer): Buffer {
  const name = Buffer.from(shard);
  const out = Buffer.allocUnsafe(4 + 1 + 2 + name.length + 4 + txn.length);
  let at = out.writeUInt32BE(id, 0);
  at = out.writeUInt8(hops, at);
  at = out.writeUInt16BE(name.length, at);
  at += name.copy(out, at);
  at = out.writeUInt32BE(txn.length, at);
  txn.copy(out, at);
  return out;
}

export function encodeTxn(txn: TxnRequest): Buffer {
  return codec().requestSerialize(txn);
}

/** The forwarded writes of one message; throws on a malformed one (nothing of it is run). */
export function decodeForwarded(msg: Buffer): ForwardedTxn[] {
  const out: ForwardedTxn[] = [];
  const r = new Cursor(msg);
  while (!r.done()) {
    const id = r.u32();
    const hops = r.u8();
    const shard = r.bytes(r.u16()).toString();
    out.push({ id, hops, shard, txn: codec().requestDeserialize(r.bytes(r.u32())) });
  }
  return out;
}

export function encodeOutcome(id: number, out: TxnOutcome): Buffer {
  const res = {
    header: { cluster_id: '0', member_id: '0', revision: out.revision.toString(), raft_term: '0' },
    succeeded: out.succeeded,
    responses: out.responses,
  } as TxnResponse;
  return answerRecord(id, 0, out.wrote ? 1 : 0, codec().responseSerialize(res));
}

export function encodeError(id: number, code: number, message: string): Buffer {
  return answerRecord(id, 1, code, Buffer.from(message));
}

function answerRecord(id: number, kind: number, flag: number, body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(10);
  head.writeUInt32BE(id, 0);
  head[4] = kind;
  head[5] = flag;
  head.writeUInt32BE(body.length, 6);
  return Buffer.concat([head, body]);
}

/** The answers of one message; throws on a malformed one. */
export function decodeAnswers(msg: Buffer): ForwardAnswer[] {
  const out: ForwardAnswer[] = [];
  const r = new Cursor(msg);
  while (!r.done()) {
    const id = r.u32();
    const kind = r.u8();
    const flag = r.u8();
    const body = r.bytes(r.u32());
    if (kind === 1) {
      out.push({ id, code: flag, message: body.toString() });
      continue;
    }
    if (kind !== 0) throw new Error(`unknown answer kind ${kind}`);
    const res = codec().responseDeserialize(body);
    out.push({ id, outcome: { wrote: flag === 1, revision: BigInt(res.header?.revision ?? '0'), succeeded: res.succeeded, responses: res.responses } });
  }
  return out;
}

/** Reads fields off a message, refusing to run past its end. */
class Cursor {
  private at = 0;

  constructor(private readonly buf: Buffer) {}

  done(): boolean {
    return this.at >= this.buf.length;
  }

  u8(): number {
    this.need(1);
    return this.buf[this.at++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new Error(`record cut short at byte ${this.at} of ${this.buf.length}`);
  }
}
