/**
 * CPU quotas for benchmark processes through the kernel's cpu controller, so that every etcd of a
 * scale-out comparison (the baseline and every member) gets the same, small share of a core.
 *
 * - cgroup v1: a hierarchy mounted with the `cpu` controller (e.g. /sys/fs/cgroup/cpu); each
 *   capped process gets a child group with `cpu.cfs_period_us` and `cpu.cfs_quota_us` (-1 lifts
 *   the cap).
 * - cgroup v2: the unified hierarchy, when `cpu` is among its `cgroup.controllers`; each process
 *   gets a leaf with `cpu.max` = "<quota> <period>" ("max <period>" lifts the cap).
 *
 * All groups live under one parent named after this process (`etcd-metaproxy-bench-<pid>`),
 * removed by runCleanups(); parents left behind by a benchmark that was killed (its pid gone)
 * are removed when the next one opens.
 */
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { onCleanup } from './cleanup.js';

const PREFIX = 'etcd-metaproxy-bench-';

export interface CpuStat {
  /** Enforcement periods that have elapsed while the group had runnable tasks. */
  periods: number;
  /** Periods in which the group used up its quota and was throttled. */
  throttled: number;
  /** Total time the group's tasks were throttled, in seconds. */
  throttledSec: number;
}

export interface CpuCap {
  name: string;
  pid: number;
  dir: string;
  stat(): CpuStat;
}

export interface CpuCgroups {
  kind: 'cgroup v1' | 'cgroup v2';
  /** The parent group of every cap. */
  dir: string;
  periodUs: number;
  /**
   * Creates a group for `pid` with `quotaUs` per period (undefined: no quota, only the parent's
   * weight, for the process under test) and moves the process into it.
   */
  cap(name: string, pid: number, quotaUs: number | undefined): CpuCap;
  /**
   * Sets the quota of every group (undefined: no limit). While capped, the parent group gets the
   * highest weight (cpu.shares / cpu.weight), so that on a busy machine each etcd still gets its
   * whole quota (a group otherwise weighs as much as one task against every other runnable
   * task); the caps bound what that takes from the machine (quota x etcds). Uncapped, the
   * weight is the default again.
   */
  setQuota(quotaUs: number | undefined): void;
  /** Moves what is left in the groups back and removes them (also run by runCleanups()). */
  remove(): Promise<void>;
}

export type OpenResult = { ok: true; cgroups: CpuCgroups } | { ok: false; why: string };

interface Mount {
  dir: string;
  type: string;
  options: string[];
}

function mounts(): Mount[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      return { dir: f[1]!.replace(/\\040/g, ' '), type: f[2]!, options: (f[3] ?? '').split(',') };
    });
}

/** This process's group in a hierarchy, from /proc/self/cgroup (v1: the line listing `cpu`; v2: `0::`). */
function ownGroup(kind: CpuCgroups['kind']): string {
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [id, controllers, p] = line.split(':');
    if (p === undefined) continue;
    if (kind === 'cgroup v2' ? id === '0' && controllers === '' : controllers!.split(',').includes('cpu')) return p;
  }
  return '/';
}

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : String(e?.message ?? err);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function procsOf(dir: string): number[] {
  try {
    return readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** rmdir, retrying while the group still holds exiting tasks (EBUSY). */
async function rmdirGroup(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Removes the parents (and their leaves) of benchmarks that died without cleaning up. */
async function removeStale(base: string): Promise<void> {
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.startsWith(PREFIX)) continue;
    const owner = Number(e.slice(PREFIX.length));
    if (!Number.isInteger(owner) || pidAlive(owner)) continue;
    const parent = path.join(base, e);
    try {
      for (const leaf of readdirSync(parent, { withFileTypes: true })) {
        if (leaf.isDirectory()) await rmdirGroup(path.join(parent, leaf.name));
      }
      await rmdirGroup(parent);
    } catch {
      /* still in use by something: leave it */
    }
  }
}

interface Flavour {
  kind: CpuCgroups['kind'];
  base: string;
  /** Prepares a freshly made group so that its children can be capped (v2: enable +cpu). */
  prepareParent(dir: string): void;
  writeQuota(dir: string, quotaUs: number | undefined, periodUs: number): void;
  /** The parent's weight against the rest of the machine: high while the caps hold. */
  writePriority(dir: string, high: boolean): void;
  readStat(dir: string): CpuStat;
}

function parseStat(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v !== undefined) out[k] = Number(v);
  }
  return out;
}

const v1 = (base: string): Flavour => ({
  kind: 'cgroup v1',
  base,
  prepareParent: () => {},
  writeQuota: (dir, quotaUs, periodUs) => {
    writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(periodUs));
    writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), quotaUs === undefined ? '-1' : String(quotaUs));
  },
  writePriority: (dir, high) => writeFileSync(path.join(dir, 'cpu.shares'), high ? '262144' : '1024'),
  readStat: (dir) => {
    const s = parseStat(readFileSync(path.join(dir, 'cpu.stat'), 'utf8'));
    return { periods: s['nr_periods'] ?? 0, throttled: s['nr_throttled'] ?? 0, throttledSec: (s['throttled_time'] ?? 0) / 1e9 };
  },
});

const v2 = (base: string): Flavour => ({
  kind: 'cgroup v2',
  base,
  prepareParent: (dir) => writeFileSync(path.join(dir, 'cgroup.subtree_control'), '+cpu'),
  writeQuota: (dir, quotaUs, periodUs) => {
    writeFileSync(path.join(dir, 'cpu.max'), `${quotaUs === undefined ? 'max' : quotaUs} ${periodUs}`);
  },
  writePriority: (dir, high) => writeFileSync(path.join(dir, 'cpu.weight'), high ? '10000' : '100'),
  readStat: (dir) => {
    const s = parseStat(readFileSync(path.join(dir, 'cpu.stat'), 'utf8'));
    return { periods: s['nr_periods'] ?? 0, throttled: s['nr_throttled'] ?? 0, throttledSec: (s['throttled_usec'] ?? 0) / 1e6 };
  },
});

/** Makes our parent group under `f.base` and checks that a leaf can be capped; throws why not. */
function makeParent(f: Flavour, periodUs: number): string {
  const parent = path.join(f.base, PREFIX + process.pid);
  mkdirSync(parent);
  try {
    f.prepareParent(parent);
    // A trial leaf, capped and removed again: proves the files are writable before any etcd starts.
    const probe = path.join(parent, 'probe');
    mkdirSync(probe);
    try {
      f.writeQuota(probe, 1000, periodUs);
    } finally {
      rmdirSync(probe);
    }
  } catch (err) {
    rmdirSync(parent);
    throw err;
  }
  return parent;
}

/**
 * Finds a writable cpu controller (v1 first, then v2) and makes the parent group. Resolves to
 * `{ ok: false, why }` when neither can be used (not root, read-only /sys/fs/cgroup, no cpu
 * controller delegated to this container...).
 */
export async function openCpuCgroups(periodUs: number): Promise<OpenResult> {
  const why: string[] = [];
  const all = mounts();
  const flavours: Flavour[] = [];
  const m1 = all.find((m) => m.type === 'cgroup' && m.options.includes('cpu'));
  if (m1) flavours.push(v1(m1.dir));
  else why.push('no cgroup v1 hierarchy with the cpu controller is mounted');
  const m2 = all.find((m) => m.type === 'cgroup2');
  if (m2) {
    let controllers = '';
    try {
      controllers = readFileSync(path.join(m2.dir, 'cgroup.controllers'), 'utf8').trim();
    } catch (err) {
      why.push(`cgroup v2 at ${m2.dir}: cannot read cgroup.controllers (${errText(err)})`);
    }
    if (controllers.split(/\s+/).includes('cpu')) flavours.push(v2(m2.dir));
    else if (controllers !== '' || !m1) {
      why.push(`cgroup v2 at ${m2.dir} does not offer the cpu controller (controllers: ${controllers || 'none'})`);
    }
  } else why.push('no cgroup v2 hierarchy is mounted');

  for (const f of flavours) {
    await removeStale(f.base);
    let parent: string;
    try {
      parent = makeParent(f, periodUs);
    } catch (err) {
      why.push(`${f.kind} at ${f.base}: cannot create and cap a group (${errText(err)})`);
      continue;
    }
    return { ok: true, cgroups: build(f, parent, periodUs) };
  }
  return { ok: false, why: why.join('; ') };
}

function build(f: Flavour, parent: string, periodUs: number): CpuCgroups {
  const caps: CpuCap[] = [];
  const limited = new Set<CpuCap>();
  const home = path.join(f.base, ownGroup(f.kind));
  let removed: Promise<void> | undefined;
  const remove = () =>
    (removed ??= (async () => {
      for (const c of caps) {
        // Whatever still runs in a group goes back to the benchmark's own group first.
        for (const pid of procsOf(c.dir)) {
          try {
            writeFileSync(path.join(home, 'cgroup.procs'), String(pid));
          } catch {
            /* exited meanwhile */
          }
        }
        await rmdirGroup(c.dir);
      }
      await rmdirGroup(parent);
    })());
  const unregister = onCleanup(`${f.kind} groups under ${parent}`, remove);
  return {
    kind: f.kind,
    dir: parent,
    periodUs,
    cap(name, pid, quotaUs) {
      const dir = path.join(parent, name.replace(/[^A-Za-z0-9_.-]/g, '_'));
      // A group of the same name may be back (a process started again for the next round): reuse it.
      mkdirSync(dir, { recursive: true });
      const cap: CpuCap = { name, pid, dir, stat: () => f.readStat(dir) };
      caps.push(cap);
      if (quotaUs !== undefined) limited.add(cap);
      f.writeQuota(dir, quotaUs, periodUs);
      f.writePriority(parent, true);
      writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
      return cap;
    },
    setQuota(quotaUs) {
      for (const c of limited) f.writeQuota(c.dir, quotaUs, periodUs);
      f.writePriority(parent, quotaUs !== undefined);
    },
    remove: async () => {
      unregister();
      await remove();
    },
  };
}
