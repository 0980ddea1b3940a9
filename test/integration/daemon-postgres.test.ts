/**
 * The daemon with a PostgreSQL source on a scratch cluster whose WAL the daemon
 * streams (`stream: true`: it keeps `lifeboat pg stream` running): a base backup
 * started through the API, then a point-in-time restore started through the API,
 * which the recovered server confirms (the row deleted after the target time is back).
 */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, runCli } from '../helpers.js';
import { postgresDir, restoredPort, ScratchCluster } from '../pg-cluster.js';
import { parseConfig } from '../../src/config/config.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { createToken } from '../../src/daemon/auth.js';
import type { JobRow } from '../../src/daemon/catalog.js';

let cluster: ScratchCluster | undefined;
let base: string | undefined;
afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
  cleanupTmp();
});

describe('daemon with a PostgreSQL source', () => {
  it('backs up through the API and restores to a time through the API', async () => {
    cluster = await ScratchCluster.create();
    await cluster.start();
    base = await postgresDir('lb-dpg-');
    const repo = path.join(base, 'repo');
    const pw = path.join(base, 'pass');
    writeFileSync(pw, 'pg-daemon\n');
    expect((await runCli(['init', '-r', repo, '--password-file', pw])).code).toBe(0);
    const text = [
      'repositories:',
      '  main:',
      `    stores: [${repo}]`,
      `    password_file: ${pw}`,
      'sources:',
      '  main:',
      '    kind: postgres',
      `    dsn: ${cluster.dsn}`,
      '    stream: true',
      '    targets: { rpo: 1h, rto: 15m }',
      'server:',
      '  listen: 127.0.0.1:0',
      '  state_dir: state',
      `  restore_roots: [${base}]`,
    ].join('\n');
    const file = path.join(base, 'lifeboat.yaml');
    writeFileSync(file, text);
    const d = await Daemon.create(parseConfig(text, file), { log: () => {} });
    const auth = { authorization: `Bearer ${createToken(d.catalog, 'operator', 'dba').token}` };
    const archived = () => d.supervisor.states.get('main')?.archivedThrough ?? 0;
    const waitArchived = async (after: number) => {
      for (let i = 0; i < 600 && archived() <= after; i++) await new Promise((r) => setTimeout(r, 100));
      expect(archived(), 'the streamed WAL reached the repository').toBeGreaterThan(after);
    };
    try {
      d.start();
      await waitArchived(0);
      await cluster.query('CREATE TABLE orders (id int PRIMARY KEY, item text)');
      await cluster.query("INSERT INTO orders VALUES (1, 'anchor'), (2, 'rope')");
      const b = await d.app.inject({ method: 'POST', url: '/api/v1/sources/main/backup', headers: auth });
      expect(b.statusCode, b.body).toBe(202);
      const backup = (await d.runner.wait((b.json() as JobRow).id)) as JobRow;
      expect(backup.status, backup.error ?? '').toBe('succeeded');
      const source = (await d.app.inject({ method: 'GET', url: '/api/v1/sources/main', headers: auth })).json() as { last_backup: { size_bytes: number } };
      expect(source.last_backup.size_bytes).toBeGreaterThan(1_000_000);

      await new Promise((r) => setTimeout(r, 1100));
      const [{ now }] = (await cluster.query<{ now: Date }>('SELECT now() AS now')) as [{ now: Date }];
      const target = new Date(now.getTime() + 500).toISOString();
      await new Promise((r) => setTimeout(r, 1100));
      await cluster.query('DELETE FROM orders WHERE id = 2');
      await cluster.query('SELECT pg_switch_wal()');
      await waitArchived(Date.now() + 1000);

      const restoreDir = path.join(base, 'restored');
      const r = await d.app.inject({ method: 'POST', url: '/api/v1/restores', headers: auth, payload: { source: 'main', target: restoreDir, time: target } });
      expect(r.statusCode, r.body).toBe(202);
      const restore = (await d.runner.wait((r.json() as JobRow).id)) as JobRow;
      expect(restore.status, restore.error ?? '').toBe('succeeded');
      expect(d.catalog.log(restore.id)[0]?.line).toBe(`lifeboat --repo main pg restore --name main --target-dir ${restoreDir} --time ${target}`);

      // The same target again: refused, and the restored directory is untouched.
      const again = await d.app.inject({ method: 'POST', url: '/api/v1/restores', headers: auth, payload: { source: 'main', target: restoreDir, time: target } });
      expect(again.statusCode).toBe(409);
      expect(again.json().error.code).toBe('TARGET_EXISTS');

      // Start the restored cluster beside the original (on the port of its own the
      // restore chose) and look. Its restore_command runs `lifeboat pg archive-get` as
      // the postgres user, which must read the configuration, the password file and the
      // repository: in production the daemon runs as that user (docs/daemon.md); this
      // test runs as root, so hand them over.
      execFileSync('chown', ['-R', 'postgres:postgres', base, restoreDir]);
      execFileSync('chmod', ['700', restoreDir]);
      const copy = cluster.copy(restoreDir, await restoredPort(restoreDir));
      expect(copy.port).not.toBe(cluster.port);
      await copy.start();
      await copy.waitPromoted();
      expect(await copy.query('SELECT id, item FROM orders ORDER BY id')).toEqual([
        { id: 1, item: 'anchor' },
        { id: 2, item: 'rope' },
      ]);
      await copy.stop();
    } finally {
      await d.stop();
    }
  });
});
