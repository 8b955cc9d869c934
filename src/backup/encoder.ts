/** Writes the snapshot format (format.ts) record by record, keeping its checksum and counts. */
import { createHash, type Hash } from 'node:crypto';
import { MAGIC, RecordType, encodeEnd, encodeKey, record, type SnapshotHeader, type SnapshotKey } from './format.js';

export class SnapshotEncoder {
  private readonly sha: Hash = createHash('sha256');
  private total = 0;
  private keys = 0n;

  /** The magic and the header record. */
  start(header: SnapshotHeader): Buffer {
    return this.out(Buffer.concat([MAGIC, record(RecordType.HEADER, Buffer.from(JSON.stringify(header), 'utf8'))]));
  }

  key(kv: SnapshotKey): Buffer {
    this.keys++;
    return this.out(record(RecordType.KEY, encodeKey(kv)));
  }

  /** The end record (padded, see format.ts) and the SHA-256 trailer. */
  finish(): Buffer {
    const end = this.out(record(RecordType.END, encodeEnd({ keys: this.keys, leases: 0n }, this.total)));
    return Buffer.concat([end, this.sha.digest()]);
  }

  private out(b: Buffer): Buffer {
    this.sha.update(b);
    this.total += b.length;
    return b;
  }
}
