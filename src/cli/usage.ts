import fs from 'node:fs';
import { CONFIG_KEYS, envName, flagName } from '../config/schema.js';

/** Version from package.json (two levels up from both src/cli and dist/cli). */
export function version(): string {
  try {
    const pkg: unknown = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    const v = (pkg as { version?: unknown }).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function usage(): string {
  const flags = CONFIG_KEYS.map((k) => `    --${flagName(k.path).padEnd(26)} ${envName(k.path).padEnd(40)} ${k.doc}`);
  return [
    'Usage: etcd-metaproxy <command> [options]',
    '',
    'One etcd v3 endpoint in front of several etcd clusters.',
    '',
    'Commands:',
    '  serve [--config FILE] [flags]   run the proxy for the clusters in the configuration',
    '  local [options]                 start a local meta-cluster (coordinator + shards) and the proxy',
    '  status [options]                shards, coordinator, clock and registered proxies of a meta-cluster',
    '  restore --file SNAPSHOT --config FILE [--reset-versions]',
    '                                  load a snapshot (etcdctl snapshot save through the proxy) into the',
    '                                  EMPTY clusters of the configuration (docs/SNAPSHOT.md)',
    '  import --from ENDPOINTS --config FILE [--follow]',
    '                                  copy a plain etcd into the EMPTY clusters of the configuration,',
    '                                  keeping every revision; --follow goes on with its writes until stopped',
    '',
    'serve: configuration from FILE (YAML or JSON), then environment, then flags:',
    '    flag                       environment variable                     meaning',
    ...flags,
    '',
    'local options:',
    '    --shards N          number of member clusters s1..sN (default 3)',
    '    --listen ADDR       client address (default 127.0.0.1:2379)',
    '    --data-dir DIR      data of all local etcds, reused on restart (default ./.data/local)',
    '    --metrics ADDR      /metrics and /health address, "" disables (default 127.0.0.1:9379)',
    '    --log-level LEVEL   fatal|error|warn|info|debug|trace|silent (default info)',
    '',
    'status options:',
    '    --endpoints URLS    the coordinator\'s endpoints, or a proxy\'s (it names its clusters); comma-separated',
    '    --config FILE       the proxy configuration: coordinator and shard endpoints (and TLS files), namespace',
    '                        (without it, shard endpoints come from a registered proxy)',
    '    -w, --write-out F   table (default) or json; exit status 1 unless everything is healthy',
    '',
    'restore options:',
    '    --file SNAPSHOT     the snapshot file; it is checked whole before anything is written',
    '    --config FILE       the configuration the proxy will serve the clusters with',
    '    --reset-versions    put every key once (version 1) instead of rebuilding its version',
    '                        with one member write per version step',
    '',
    'import options:',
    '    --from ENDPOINTS    the source etcd\'s client endpoints, comma-separated (host:port or URLs)',
    '    --config FILE       the configuration the proxy will serve the clusters with',
    '    --follow            after the copy, apply the source\'s writes with their revisions until',
    '                        SIGINT/SIGTERM; then the clock is the last revision applied',
    '    --cacert FILE       CA bundle of the source\'s server certificates (https)',
    '    --cert FILE, --key FILE   client certificate for the source (--client-cert-auth; its',
    '                        common name is the etcd user); --user is not supported',
    '    Running it again on the same clusters goes on where it stopped (docs/ARCHITECTURE.md "Import").',
    '',
    'Other:',
    '  --help, -h       this text',
    '  --version, -v    print the version',
    '',
    'Once serving, one line "etcd-metaproxy ready on <host:port>" is printed to stdout;',
    'logs go to stderr as JSON. SIGTERM or SIGINT stops everything.',
    '',
  ].join('\n');
}
