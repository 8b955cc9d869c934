/**
 * Turns per key on a shard's owner: a write waits until the earlier writes to any of its keys
 * were answered, then reads its state and plans. The owner is the shard's only writer, so the
 * state it then finds (hints updated by the acknowledged writes) is exact and its pins hold: a
 * hot key's writes go out one after another instead of failing each other's pins and retrying.
 * Writes to different keys never wait for each other.
 */
export class KeyTurns {
  private readonly tails = new Map<string, Promise<void>>();

  /** Waits for the turn on `keys` (latin1 member keys); call the result once answered. */
  async take(wanted: string[]): Promise<() => void> {
    const keys = [...new Set(wanted)];
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const before: Array<Promise<void>> = [];
    for (const k of keys) {
      const prev = this.tails.get(k);
      if (prev) before.push(prev);
      this.tails.set(k, mine);
    }
    if (before.length) await Promise.all(before);
    return () => {
      release();
      for (const k of keys) if (this.tails.get(k) === mine) this.tails.delete(k);
    };
  }
}
