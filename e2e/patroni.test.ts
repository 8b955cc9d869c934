/**
 * A real Patroni (PostgreSQL HA, Debian's package) with its DCS on the proxy's JSON gateway
 * (`etcd3:` section, hosts = the gateway's address): it bootstraps a PostgreSQL cluster (run as
 * the postgres user, data in a temp dir, free ports), takes the leader key, and `patronictl
 * list` shows it as Leader; killed with SIGKILL (so it cannot delete its key), its leader key
 * expires through the proxy's leases, seen as a DELETE on a watch through the gateway.
 *
 * scripts/setup-patroni.sh installs patroni, python3-etcd and postgresql; where they cannot be
 * installed the test is skipped with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startMetricsServer } from '../src/http/server.js';
import { freePort } from '../src/local/ports.js';
import { metaPerFile, tempDir, waitFor } from './harness.js';

const run = promisify(execFile);
const here = path.dirname(new URL(import.meta.url).pathname);
/** Why the test cannot run here, or false. PostgreSQL runs as the postgres user: root starts it. */
function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'Patroni runs PostgreSQL as the postgres user, which needs root (run the tests as root, as CI does)';
  const install = spawnSync('bash', [path.join(here, '..', 'scripts', 'setup-patroni.sh')], { encoding: 'utf8', timeout: 900_000 });
  return install.status === 0 ? false : `Patroni and PostgreSQL cannot be installed here: ${(install.stderr || install.error?.message || '').trim()}`;
}
const SKIP = skipReason();

/** Patroni's leader key lease (its dcs ttl, in seconds): the key must vanish within about this after the kill. */
const TTL_SEC = 10;
const setup = SKIP ? null : metaPerFile({ shards: 2, tag: 'patroni' });

const b64 = (s: string) => Buffer.from(s).toString('base64');

function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')));
  versions.sort((a, b) => Number(b) - Number(a));
  assert.ok(versions.length > 0, 'no PostgreSQL server under /usr/lib/postgresql');
  return path.join(root, versions[0]!, 'bin');
}

function patroniConfig(o: { scope: string; gateway: string; restPort: number; pgPort: number; dir: string; binDir: string }): string {
  return `scope: ${o.scope}
namespace: /service/
name: node1
restapi:
  listen: 127.0.0.1:${o.restPort}
  connect_address: 127.0.0.1:${o.restPort}
etcd3:
  hosts: ${o.gateway}
  # The member list names the proxies' gRPC URLs; the gateway is served on another port.
  use_proxies: true
bootstrap:
  dcs:
    ttl: ${TTL_SEC}
    loop_wait: 1
    retry_timeout: 3
  initdb:
    - encoding: UTF8
postgresql:
  listen: 127.0.0.1:${o.pgPort}
  connect_address: 127.0.0.1:${o.pgPort}
  data_dir: ${o.dir}/pgdata
  bin_dir: ${o.binDir}
  pgpass: ${o.dir}/pgpass
  authentication:
    superuser: {username: postgres, password: e2e-secret}
    replication: {username: replicator, password: e2e-secret}
  parameters:
    unix_socket_directories: ${o.dir}
    fsync: 'off'
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication replicator 127.0.0.1/32 trust
`;
}

async function gatewayPost(gateway: string, route: string, body: object): Promise<Record<string, unknown>> {
  const res = await fetch(`http://${gateway}${route}`, { method: 'POST', body: JSON.stringify(body) });
  const text = await res.text();
  assert.equal(res.status, 200, `${route}: ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

test('Patroni on the proxy: bootstraps, leads, and its leader key expires after a SIGKILL', { skip: SKIP, timeout: 120_000 }, async () => {
  const { meta } = await setup!.started();
  const proxy = meta.proxies[0]!;
  const server = await startMetricsServer('127.0.0.1:0', { ready: () => proxy.ready(), upstreams: (w) => proxy.probeUpstreams(w) }, undefined, () => proxy.gateway);
  setup!.cleanup.add('close gateway listener', () => server.close());
  const gateway = server.address;

  const dir = tempDir(setup!.cleanup, 'patroni');
  const postgres = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const [uid, gid] = [Number(postgres.stdout.trim()), Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim())];
  const scope = `e2e-${process.pid}`;
  const cfgFile = path.join(dir, 'patroni.yml');
  const binDir = postgresBinDir();
  fs.writeFileSync(cfgFile, patroniConfig({ scope, gateway, restPort: await freePort(), pgPort: await freePort(), dir, binDir }));
  fs.chownSync(dir, uid, gid);
  fs.chownSync(cfgFile, uid, gid);
  fs.chmodSync(dir, 0o700);

  // Patroni as the postgres user; its postmaster detaches, so it is stopped on its own below.
  const logFd = fs.openSync(path.join(dir, 'patroni.log'), 'a');
  const patroni = spawn('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '/usr/bin/patroni', cfgFile], {
    env: { PATH: '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8' },
    stdio: ['ignore', logFd, logFd],
  });
  fs.closeSync(logFd);
  let alive = true;
  patroni.on('exit', () => (alive = false));
  setup!.cleanup.add('stop postgres', () =>
    spawnSync('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', path.join(binDir, 'pg_ctl'), '-D', path.join(dir, 'pgdata'), 'stop', '-m', 'immediate'], { timeout: 30_000 }),
  );
  setup!.cleanup.add('kill patroni', () => alive && patroni.kill('SIGKILL'));
  const log = () => fs.readFileSync(path.join(dir, 'patroni.log'), 'utf8').split('\n').slice(-30).join('\n');

  // Bootstrapped and leading: patronictl, reading the DCS through the gateway, says so.
  type Row = { Member: string; Role: string; State: string };
  let rows: Row[] = [];
  await waitFor(
    async () => {
      assert.ok(alive, `patroni exited:\n${log()}`);
      const out = await run('patronictl', ['-c', cfgFile, 'list', '-f', 'json'], { timeout: 20_000 });
      rows = JSON.parse(out.stdout) as Row[];
      return rows.some((r) => r.Member === 'node1' && r.Role === 'Leader' && r.State === 'running');
    },
    60_000,
    'Patroni to bootstrap PostgreSQL and lead',
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nlast patronictl rows: ${JSON.stringify(rows)}\npatroni log:\n${log()}`);
  });
  const table = (await run('patronictl', ['-c', cfgFile, 'list'], { timeout: 20_000 })).stdout;
  assert.match(table, new RegExp(`Cluster: ${scope}`));
  assert.match(table, /\|\s*node1\s*\|.*\|\s*Leader\s*\|\s*running\s*\|/);

  // The leader key, read through the proxy: held by node1 under a lease of the dcs ttl.
  const leaderKey = `/service/${scope}/leader`;
  const range = await gatewayPost(gateway, '/v3/kv/range', { key: b64(leaderKey) });
  const kv = (range.kvs as Array<{ value: string; lease: string; mod_revision: string }>)[0]!;
  assert.equal(Buffer.from(kv.value, 'base64').toString(), 'node1');
  const ttl = await gatewayPost(gateway, '/v3/lease/timetolive', { ID: kv.lease });
  assert.equal(ttl.grantedTTL, String(TTL_SEC));

  // A watch on the leader key through the gateway, then the node dies without a word.
  const ac = new AbortController();
  const watch = await fetch(`http://${gateway}/v3/watch`, {
    method: 'POST',
    body: JSON.stringify({ create_request: { key: b64(leaderKey), start_revision: String(BigInt(range.header ? (range.header as { revision: string }).revision : '0') + 1n) } }),
    signal: ac.signal,
  });
  assert.equal(watch.status, 200);
  const reader = watch.body!.getReader();
  let text = '';
  const nextLine = async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        return JSON.parse(line) as Record<string, unknown>;
      }
      const { value, done } = await reader.read();
      assert.ok(!done, 'the watch stream ended');
      text += Buffer.from(value).toString('utf8');
    }
  };
  try {
    const created = (await nextLine()).result as { created?: boolean };
    assert.equal(created.created, true);
    patroni.kill('SIGKILL');
    await new Promise<void>((resolve) => (alive ? patroni.once('exit', () => resolve()) : resolve()));
    // Patroni's keepalives stop: the lease expires (ttl) and the proxy's reaper deletes the key.
    let deleted: { type?: string; kv: { key: string } } | undefined;
    while (!deleted) {
      const events = ((await nextLine()).result as { events?: Array<{ type?: string; kv: { key: string } }> }).events ?? [];
      // Puts are Patroni's last keepalive writes of the key, if any landed before the kill.
      deleted = events.find((e) => e.type === 'DELETE');
    }
    assert.equal(Buffer.from(deleted.kv.key, 'base64').toString(), leaderKey);
  } finally {
    ac.abort();
  }
  const after = await gatewayPost(gateway, '/v3/kv/range', { key: b64(leaderKey) });
  assert.equal(after.kvs, undefined);
  const gone = await gatewayPost(gateway, '/v3/lease/timetolive', { ID: kv.lease });
  assert.equal(gone.TTL, '-1');
});
