/** Option parsing shared by the benchmark scripts: errors name the flag. */

export function intArg(name: string, v: string, min = 1): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
}

export function listArg<T extends string>(name: string, v: string, allowed: readonly T[]): T[] {
  const items = v.split(',').map((s) => s.trim()).filter(Boolean) as T[];
  for (const i of items) if (!allowed.includes(i)) throw new Error(`--${name}: unknown ${i} (known: ${allowed.join(', ')})`);
  if (items.length === 0) throw new Error(`--${name} is empty`);
  return items;
}
