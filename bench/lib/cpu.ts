/** CPU time of a process from /proc (Linux), to show how busy a target's process is during a run. */
import { readFileSync } from 'node:fs';

const TICKS_PER_SEC = 100; // USER_HZ on Linux

/** utime + stime of `pid` (and its reaped children) in seconds, or undefined if unreadable. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state); utime is field 14, stime 15, cutime 16, cstime 17.
    const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    return ticks / TICKS_PER_SEC;
  } catch {
    return undefined;
  }
}

/** Measures a process's CPU use between start() and end(), as % of one core. */
export function cpuProbe(pid: number | undefined) {
  let cpu0: number | undefined;
  let t0 = 0;
  let pct: number | undefined;
  return {
    start() {
      if (pid === undefined) return;
      cpu0 = cpuSeconds(pid);
      t0 = performance.now();
    },
    end() {
      if (pid === undefined || cpu0 === undefined) return;
      const cpu1 = cpuSeconds(pid);
      const wall = (performance.now() - t0) / 1000;
      if (cpu1 !== undefined && wall > 0) pct = ((cpu1 - cpu0) / wall) * 100;
    },
    get pct() {
      return pct;
    },
  };
}
