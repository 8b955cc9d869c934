/**
 * Fails when src/ has an import cycle, between files or between folders (each folder under src/
 * is one concept; a concept that imports another which imports it back is two halves of one).
 * Type-only imports count: they couple the concepts just the same. Run by `npm test`.
 *
 *   node --import tsx scripts/check-cycles.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * Edges (importer -> imported, paths under src/) left out of the check, each with its reason.
 * Only edges that cannot be cut yet belong here; remove an entry as soon as its cycle is gone.
 */
const ALLOWED: ReadonlyArray<readonly [string, string, string]> = [];

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const src = path.join(root, 'src');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** src-relative path of a relative import, or null for a package or a file outside src/. */
function resolve(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const abs = path.resolve(path.dirname(from), spec).replace(/\.js$/, '.ts');
  const cands = [abs, `${abs}.ts`, path.join(abs, 'index.ts')];
  const hit = cands.find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
  if (!hit || !hit.startsWith(src + path.sep)) return null;
  return path.relative(src, hit);
}

/** The concept a file belongs to: its top folder under src/ (a file at the top is its own). */
function folderOf(file: string): string {
  const parts = file.split(path.sep);
  return parts.length > 1 ? parts[0] : file;
}

/** Strongly connected components with more than one node (Tarjan), each sorted. */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

const allowed = new Set(ALLOWED.map(([a, b]) => `${a} -> ${b}`));
const used = new Set<string>();
const files = new Map<string, Set<string>>();
const folders = new Map<string, Set<string>>();
/** Folder edge -> the file edges behind it (to say which imports make a folder cycle). */
const because = new Map<string, string[]>();

for (const abs of sourceFiles(src)) {
  const file = path.relative(src, abs);
  const info = ts.preProcessFile(fs.readFileSync(abs, 'utf8'), true, true);
  const deps = new Set<string>();
  for (const ref of info.importedFiles) {
    const to = resolve(abs, ref.fileName);
    if (!to || to === file) continue;
    const edge = `${file} -> ${to}`;
    if (allowed.has(edge)) {
      used.add(edge);
      continue;
    }
    deps.add(to);
    const [fa, fb] = [folderOf(file), folderOf(to)];
    if (fa === fb) continue;
    if (!folders.has(fa)) folders.set(fa, new Set());
    folders.get(fa)!.add(fb);
    const key = `${fa} -> ${fb}`;
    if (!because.get(key)?.includes(edge)) because.set(key, [...(because.get(key) ?? []), edge]);
  }
  files.set(file, deps);
}

let failed = false;
for (const scc of cycles(folders)) {
  failed = true;
  console.error(`folder cycle: ${scc.join(', ')}`);
  for (const a of scc) for (const b of scc) for (const e of because.get(`${a} -> ${b}`) ?? []) console.error(`  ${e}`);
}
for (const scc of cycles(files)) {
  failed = true;
  console.error(`file cycle: ${scc.join(', ')}`);
  for (const a of scc) for (const b of files.get(a) ?? []) if (scc.includes(b)) console.error(`  ${a} -> ${b}`);
}
for (const [a, b] of ALLOWED) {
  if (!used.has(`${a} -> ${b}`)) {
    failed = true;
    console.error(`allow-listed edge no longer exists, remove it: ${a} -> ${b}`);
  }
}
if (failed) process.exit(1);
console.log(`check-cycles: ${files.size} files, ${folders.size} folders, no cycles (${ALLOWED.length} allow-listed edges)`);
