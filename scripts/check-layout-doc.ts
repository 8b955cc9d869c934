/**
 * Fails when a file under src/ is missing from docs/ARCHITECTURE.md's layout table: each file
 * is named in its folder's row (a nested folder, such as `index/`, covers its files).
 *
 *   node --import tsx scripts/check-layout-doc.ts
 */
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const doc = fs.readFileSync(path.join(root, 'docs/ARCHITECTURE.md'), 'utf8');
const table = doc.slice(doc.indexOf('## Layout'), doc.indexOf('\n## ', doc.indexOf('## Layout') + 1));
const rows = new Map<string, string>();
for (const line of table.split('\n')) {
  const m = /^\| (?:`([^`]+)\/`|\(top\)) \| (.*) \|$/.exec(line);
  if (m) rows.set(m[1] ?? '.', m[2]);
}

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

const missing: string[] = [];
for (const abs of files(path.join(root, 'src'))) {
  const parts = path.relative(path.join(root, 'src'), abs).split(path.sep);
  const folder = parts.length > 1 ? parts[0] : '.';
  const row = rows.get(folder);
  const name = parts.slice(parts.length > 1 ? 1 : 0).join('/');
  const named = row !== undefined && (row.includes(`\`${name}\``) || row.includes(`\`${parts[parts.length - 1]}\``) || (parts.length > 2 && row.includes(`\`${parts[1]}/\``)));
  if (!named) missing.push(parts.join('/'));
}
if (missing.length) {
  console.error(`docs/ARCHITECTURE.md's layout table does not name: ${missing.join(', ')}`);
  process.exit(1);
}
console.log(`check-layout-doc: every file under src/ is in docs/ARCHITECTURE.md's layout table`);
