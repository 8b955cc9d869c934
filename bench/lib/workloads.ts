/** The workloads run against every target, and what a measurement of one looks like. */

export type WorkloadName = 'put' | 'get-l' | 'get-s' | 'range' | 'range-s';
/** What bench/run.ts runs by default. */
export const ALL_WORKLOADS: WorkloadName[] = ['put', 'get-l', 'get-s', 'range'];
/** Every workload (range-s: the range workload, serializable). */
export const KNOWN_WORKLOADS: WorkloadName[] = [...ALL_WORKLOADS, 'range-s'];

export interface PutWorkload {
  kind: 'put';
  name: WorkloadName;
  /** Keys are drawn uniformly from this many distinct keys. */
  keySpace: number;
  keySize: number;
  valSize: number;
}

export interface RangeWorkload {
  kind: 'range';
  name: WorkloadName;
  /** Key (or range start). */
  key: string;
  /** Exclusive range end; absent for single-key gets. */
  rangeEnd?: string;
  serializable: boolean;
  /**
   * For the Node load generator: pick the key uniformly from `${key}${i}` for i < keyCount
   * (zero-padded to 4 digits); the Go tool always reads `${key}0000`.
   */
  keyCount?: number;
  /** Keys each response is expected to hold (checked on the preloaded data). */
  expectKvs: number;
}

export type Workload = PutWorkload | RangeWorkload;

export interface Measurement {
  workload: WorkloadName;
  target: string;
  ops: number;
  errors: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU used by the target's front process (etcd, or the proxy) during the run, % of one core. */
  cpuPct?: number;
  /** Free-form note (e.g. first error text). */
  note?: string;
}

export const GET_PREFIX = 'bench/get/';
export const GET_KEYS = 1000;
export const RANGE_PREFIX = 'bench/range/';
export const RANGE_KEYS = 100;
export const VALUE_SIZE = 256;

export function pad4(i: number): string {
  return String(i).padStart(4, '0');
}

export function workloadsFor(names: WorkloadName[], keySpace: number): Workload[] {
  return names.map((name): Workload => {
    switch (name) {
      case 'put':
        return { kind: 'put', name, keySpace, keySize: 16, valSize: VALUE_SIZE };
      case 'get-l':
      case 'get-s':
        return {
          kind: 'range',
          name,
          key: GET_PREFIX,
          keyCount: GET_KEYS,
          serializable: name === 'get-s',
          expectKvs: 1,
        };
      case 'range':
      case 'range-s':
        return {
          kind: 'range',
          name,
          key: RANGE_PREFIX,
          rangeEnd: RANGE_PREFIX.slice(0, -1) + String.fromCharCode(RANGE_PREFIX.charCodeAt(RANGE_PREFIX.length - 1) + 1),
          serializable: name === 'range-s',
          expectKvs: RANGE_KEYS,
        };
    }
  });
}

export function describeWorkload(w: Workload, gen: 'go' | 'node'): string {
  if (w.kind === 'put') {
    return `put: random ${w.keySize}-byte keys over ${w.keySpace} keys, ${w.valSize}-byte values`;
  }
  if (w.rangeEnd) {
    return `${w.name}: ${w.serializable ? 'serializable' : 'linearizable'} range [${w.key}, ${w.rangeEnd}) returning ${w.expectKvs} keys of ${VALUE_SIZE} bytes`;
  }
  const keys = gen === 'go' ? `the single key ${w.key}0000` : `random keys of ${w.key}0000..${pad4((w.keyCount ?? 1) - 1)}`;
  return `${w.name}: ${w.serializable ? 'serializable' : 'linearizable'} get of ${keys} (${VALUE_SIZE}-byte values)`;
}
