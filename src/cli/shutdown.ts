/**
 * SIGTERM/SIGINT handling for the long-running commands: the first signal starts an orderly
 * shutdown; a second one exits at once (the etcd reaper still kills local etcds on exit).
 */
export class Shutdown {
  private signalled: NodeJS.Signals | undefined;
  private resolveDone!: (signal: NodeJS.Signals) => void;
  readonly done: Promise<NodeJS.Signals> = new Promise((resolve) => (this.resolveDone = resolve));
  private readonly handler = (signal: NodeJS.Signals): void => {
    if (this.signalled !== undefined) process.exit(1);
    this.signalled = signal;
    this.resolveDone(signal);
  };

  constructor(private readonly signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']) {
    for (const s of signals) process.on(s, this.handler);
  }

  get requested(): boolean {
    return this.signalled !== undefined;
  }

  dispose(): void {
    for (const s of this.signals) process.off(s, this.handler);
  }
}
