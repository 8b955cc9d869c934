/** CRC-32C (Castagnoli), the checksum etcd's HashKV uses; incremental so a scan can feed it page by page. */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export class Crc32c {
  private crc = 0xffffffff;

  update(bytes: Uint8Array): this {
    let c = this.crc;
    for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    this.crc = c;
    return this;
  }

  /** The checksum of everything fed so far (an unsigned 32-bit number). */
  digest(): number {
    return (this.crc ^ 0xffffffff) >>> 0;
  }
}
