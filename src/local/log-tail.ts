import fs from 'node:fs';

/** The last `lines` lines written to `file` after byte `fromOffset` (for start-up errors). */
export function readLogTail(file: string, fromOffset: number, lines: number): string {
  try {
    const size = fs.statSync(file).size;
    const start = Math.max(fromOffset, size - 64 * 1024);
    const fd = fs.openSync(file, 'r');
    try {
      const buf = Buffer.alloc(Math.max(0, size - start));
      fs.readSync(fd, buf, 0, buf.length, start);
      const all = buf.toString('utf8').split('\n');
      return all.slice(-lines - 1).join('\n').trimEnd() || '(empty log)';
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    return `(cannot read log: ${(err as Error).message})`;
  }
}
