/**
 * How many watchers read history from the members at once. Thousands of slow watchers can be
 * resynced together; each replay opens a member watch per shard, so without a bound they would
 * swamp the members (and time out). The others wait their turn, in order.
 */
export class ReplaySlots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(slots: number) {
    this.free = slots;
  }

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}
