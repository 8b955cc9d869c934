/**
 * Turns per key on a shard's owner: a write waits until the earlier writes to any of its keys
 * were answered, then reads its state and plans. The owner is the shard's only writer, so the
 * state it then finds (hints updated by the acknowledged writes) is exact and its pins hold: a
 * hot key's writes go out one after another instead of failing each other's pins and retrying.
 * Writes to different keys never wait for each other.
 *
 * A txn that turns out to write nothing (a compare-and-swap that lost) is answered from the
 * owner's exact state when it can be (owner-answer.ts, decided while it holds the turn), else
 * it leaves its turn before its member read: that read is pinned, so it needs no turn, and the
 * txns queued behind it plan at once instead of waiting one member round trip each. If its pin
 * fails and the new plan writes, it takes a turn again, behind whoever queued meanwhile.
 */
export interface Turn {
  /** False between leave() and retake(). */
  readonly held: boolean;
  /** Lets the next write to these keys go; idempotent. */
  leave(): void;
  /** Takes the turn again after leave() (a no-op while held). */
  retake(): Promise<void>;
}

export class KeyTurns {
  private readonly tails = new Map<string, Promise<void>>();

  /** Waits for the turn on `wanted` (latin1 member keys); leave it once answered. */
  async take(wanted: string[]): Promise<Turn> {
    const keys = [...new Set(wanted)];
    let leave = await this.queue(keys);
    let held = true;
    return {
      get held() {
        return held;
      },
      leave: () => {
        if (!held) return;
        held = false;
        leave();
      },
      retake: async () => {
        if (held) return;
        held = true;
        leave = await this.queue(keys);
      },
    };
  }

  /** True when no write holds or waits for a turn on any of `keys` (latin1 member keys). */
  idle(keys: string[]): boolean {
    return keys.every((k) => !this.tails.has(k));
  }

  private async queue(keys: string[]): Promise<() => void> {
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
