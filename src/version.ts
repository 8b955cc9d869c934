/** The proxy's own version, as package.json states it (--version, the topology service, the proxy record). */
import fs from 'node:fs';

/** Version from package.json (one level up from both src/ and dist/). */
export function version(): string {
  try {
    const pkg: unknown = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const v = (pkg as { version?: unknown }).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}
