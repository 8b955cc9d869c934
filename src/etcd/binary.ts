/**
 * The protobuf wire reader and writer the generated codecs (etcd/gen/) run on, in place of
 * ts-proto's default runtime (@bufbuild/protobuf/wire), which parses every int64 through a
 * BigInt and a DataView and copies each encoded message twice; bench/codec.ts measured it slower
 * than proto-loader on the proxy's encodes. Here int64s are decimal strings (or numbers, see
 * etcd/types.ts wire64) on both sides, with BigInt only past 2^53; bytes decode as Buffer views
 * of the received message (as protobufjs did); one encode fills a shared scratch buffer and
 * finish() copies the result out once.
 */
const TWO32 = 4294967296;
/** Decimal strings below 10^15 are exact as numbers: no BigInt needed. */
const SMALL_DECIMAL = /^[0-9]{1,15}$/;
/** hi words below this make a 64-bit value under 2^53. */
const SAFE_HI = 0x200000;

let scratch: Buffer = Buffer.allocUnsafe(64 * 1024);
let scratchInUse = false;
/** A scratch buffer that grew past this is not kept. */
const SCRATCH_KEEP = 4 * 1024 * 1024;

export class BinaryWriter {
  private buf: Buffer;
  private pos = 0;
  private readonly forks: number[] = [];
  private readonly ownsScratch: boolean;

  /** A writer lives within one synchronous encode: the first of them at a time gets the scratch buffer. */
  constructor() {
    this.ownsScratch = !scratchInUse;
    if (this.ownsScratch) {
      scratchInUse = true;
      this.buf = scratch;
    } else {
      this.buf = Buffer.allocUnsafe(1024);
    }
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  uint32(v: number): this {
    this.ensure(5);
    let n = v >>> 0;
    while (n > 127) {
      this.buf[this.pos++] = (n & 127) | 128;
      n >>>= 7;
    }
    this.buf[this.pos++] = n;
    return this;
  }

  /** Negative int32s are sign-extended to 64 bits (10 bytes), as protobuf encodes them. */
  int32(v: number): this {
    return v >= 0 ? this.uint32(v) : this.varint64(v | 0, -1);
  }

  bool(v: boolean): this {
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
    return this;
  }

  int64(v: string | number | bigint): this {
    if (typeof v === 'number' ? v >= 0 && Number.isSafeInteger(v) : typeof v === 'string' && SMALL_DECIMAL.test(v)) {
      const n = Number(v);
      return this.varint64(n % TWO32 | 0, (n / TWO32) | 0);
    }
    const b = BigInt.asUintN(64, BigInt(v));
    return this.varint64(Number(b & 0xffffffffn) | 0, Number(b >> 32n) | 0);
  }

  uint64(v: string | number | bigint): this {
    return this.int64(v);
  }

  bytes(v: Uint8Array): this {
    this.uint32(v.length);
    this.ensure(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
    return this;
  }

  string(v: string): this {
    const len = Buffer.byteLength(v);
    this.uint32(len);
    this.ensure(len);
    this.pos += this.buf.write(v, this.pos, len, 'utf8');
    return this;
  }

  /** Starts a length-delimited field (a sub-message or a packed list); join() writes its length. */
  fork(): this {
    this.ensure(1);
    this.forks.push(this.pos);
    this.pos += 1;
    return this;
  }

  join(): this {
    const start = this.forks.pop();
    if (start === undefined) throw new Error('join() without fork()');
    const len = this.pos - start - 1;
    let size = 1;
    for (let n = len >>> 7; n > 0; n >>>= 7) size++;
    if (size > 1) {
      this.ensure(size - 1);
      this.buf.copyWithin(start + size, start + 1, this.pos);
      this.pos += size - 1;
    }
    const end = this.pos;
    this.pos = start;
    this.uint32(len);
    this.pos = end;
    return this;
  }

  /** The encoded message (its own Buffer); the writer is done. */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    if (this.ownsScratch) {
      if (this.buf.length <= SCRATCH_KEEP) scratch = this.buf;
      scratchInUse = false;
    }
    this.pos = 0;
    return out;
  }

  private varint64(lo: number, hi: number): this {
    this.ensure(10);
    let l = lo >>> 0;
    let h = hi >>> 0;
    while (h > 0 || l > 127) {
      this.buf[this.pos++] = (l & 127) | 128;
      l = ((l >>> 7) | (h << 25)) >>> 0;
      h >>>= 7;
    }
    this.buf[this.pos++] = l;
    return this;
  }
}

export class BinaryReader {
  pos = 0;
  readonly len: number;
  private readonly buf: Buffer;
  /** Nesting depth of the message being decoded (checked against PROTOBUF_DEPTH_LIMIT). */
  depth = 0;
  private lo = 0;
  private hi = 0;

  constructor(buf: Uint8Array) {
    this.buf = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.len = buf.length;
  }

  private byte(): number {
    if (this.pos >= this.len) throw new RangeError(`index out of range: ${this.pos} + 1 > ${this.len}`);
    return this.buf[this.pos++]!;
  }

  /** A varint's low 32 bits, unsigned (longer varints are read whole, as protobuf does). */
  uint32(): number {
    let v = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      const b = this.byte();
      if (shift < 32) v |= (b & 127) << shift;
      if (b < 128) return v >>> 0;
    }
    throw new Error('invalid varint encoding');
  }

  int32(): number {
    return this.uint32() | 0;
  }

  bool(): boolean {
    this.varint64();
    return this.lo !== 0 || this.hi !== 0;
  }

  /** A signed int64 as a decimal string. */
  int64(): string {
    this.varint64();
    const { lo, hi } = this;
    if (hi >= 0 && hi < SAFE_HI) return String(hi * TWO32 + lo);
    return BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo)).toString();
  }

  /** An unsigned int64 as a decimal string. */
  uint64(): string {
    this.varint64();
    const { lo, hi } = this;
    if (hi >= 0 && hi < SAFE_HI) return String(hi * TWO32 + lo);
    return ((BigInt(hi >>> 0) << 32n) | BigInt(lo)).toString();
  }

  /** A view of the bytes inside the received message (no copy). */
  bytes(): Buffer {
    const len = this.uint32();
    const start = this.pos;
    if (start + len > this.len) throw new RangeError(`index out of range: ${start} + ${len} > ${this.len}`);
    this.pos += len;
    return this.buf.subarray(start, start + len);
  }

  string(): string {
    const len = this.uint32();
    const start = this.pos;
    if (start + len > this.len) throw new RangeError(`index out of range: ${start} + ${len} > ${this.len}`);
    this.pos += len;
    return this.buf.toString('utf8', start, start + len);
  }

  /** Skips a field of an unknown number (wire types 0, 1, 2, 3 (a group) and 5). */
  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint64();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.advance(this.uint32());
        return;
      case 3:
        for (;;) {
          const wt = this.uint32() & 7;
          if (wt === 4) return;
          this.skip(wt);
        }
      case 5:
        this.advance(4);
        return;
      default:
        throw new Error(`invalid wire type ${wireType} at offset ${this.pos}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.len) throw new RangeError(`index out of range: ${this.pos} + ${n} > ${this.len}`);
    this.pos += n;
  }

  /** Reads a varint into lo (unsigned) and hi (signed), the two 32-bit halves. */
  private varint64(): void {
    let lo = 0;
    let hi = 0;
    let b = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      b = this.byte();
      lo |= (b & 127) << shift;
      if (b < 128) {
        this.lo = lo >>> 0;
        this.hi = 0;
        return;
      }
    }
    b = this.byte();
    lo |= (b & 15) << 28;
    hi = (b & 127) >> 4;
    if (b >= 128) {
      for (let shift = 3; ; shift += 7) {
        if (shift > 31) throw new Error('invalid varint encoding');
        b = this.byte();
        hi |= (b & 127) << shift;
        if (b < 128) break;
      }
    }
    this.lo = lo >>> 0;
    this.hi = hi | 0;
  }
}
