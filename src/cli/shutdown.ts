/**
 * SIGTERM/SIGINT handling for the long-running commands: the first signal starts an orderly
 * shutdown; a second one exits at once (the etcd reaper still kills local etcds on exit). An
 * orderly shutdown that has not finished after `exitDeadlineMs` (clients that do not read,
 * a coordinator that does not answer) exits anyway, so a supervisor's SIGTERM is obeyed
 * within its grace period (Kubernetes: 30 s; the default here, 8 s, stays within 10 s).
 */
export const EXIT_DEADLINE_MS = 8_000;

export class Shutdown {
  private signalled: NodeJS.Signals | undefined;
  private resolveDone!: (signal: NodeJS.Signals) => void;
  readonly done: Promise<NodeJS.Signals> = new Promise((resolve) => (this.resolveDone = resolve));
  private readonly handler = (signal: NodeJS.Signals): void => {
    if (this.signalled !== undefined) process.exit(1);
    this.signalled = signal;
    const hard = setTimeout(() => {
      process.stderr.write(`etcd-metaproxy: shutdown took longer than ${this.exitDeadlineMs} ms; exiting\n`);
      process.exit(1);
    }, this.exitDeadlineMs);
    hard.unref();
    this.resolveDone(signal);
  };

  constructor(
    private readonly signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
    private readonly exitDeadlineMs = EXIT_DEADLINE_MS,
  ) {
    for (const s of signals) process.on(s, this.handler);
  }

  get requested(): boolean {
    return this.signalled !== undefined;
  }

  dispose(): void {
    for (const s of this.signals) process.off(s, this.handler);
  }
}
