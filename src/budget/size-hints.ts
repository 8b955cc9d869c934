/**
 * The last answer size of recent member reads, by range: a member answer's size is known only
 * once it arrived, so a read asks the budget for what the same range took last time before it
 * asks the members; a range not seen yet asks for `unknown` (a quarter of the budget: at most
 * four such reads run at once). Bounded: the oldest hints go first.
 */
const MAX_HINTS = 1024;

export class SizeHints {
  private readonly sizes = new Map<string, number>();

  constructor(
    private readonly floor: number,
    private readonly unknown: number,
  ) {}

  /** The bytes to reserve before reading [key, end). */
  estimate(key: Buffer, end: Buffer): number {
    return Math.max(this.floor, this.sizes.get(hintKey(key, end)) ?? this.unknown);
  }

  record(key: Buffer, end: Buffer, bytes: number): void {
    const k = hintKey(key, end);
    this.sizes.delete(k);
    this.sizes.set(k, bytes);
    if (this.sizes.size > MAX_HINTS) this.sizes.delete(this.sizes.keys().next().value as string);
  }
}

function hintKey(key: Buffer, end: Buffer): string {
  return `${key.toString('latin1')}\u0100${end.toString('latin1')}`;
}
