/**
 * The daemon with a PostgreSQL source on a scratch cluster whose WAL the daemon
 * streams (`stream: true`: it keeps `lifeboat pg stream` running) and whose
 * `bin_dir` is set, as in the docs' example: a base backup started through the API,
 * whose snapshot carries both of the source's tags, then a point-in-time restore started through the API, which starts the result,
 * waits for its promotion and records the measured RTO; the recovered server
 * confirms it (the row deleted after the target time is back). Then the runbook's
 * command for the source, run exactly as printed, brings the cluster back in place
 * of the primary.
 */
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { runbook } from '../../src/daemon/runbook.js';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, initRepo, snapshotsJson } from '../helpers.js';
import { PG_BIN, postgresDir, restoredPort, ScratchCluster } from '../pg-cluster.js';
import { CLI } from '../helpers.js';
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
    await initRepo(repo, 'pg-daemon');
    const text = [
      'repositories:',
      '  main:',
      `    stores: [${repo}]`,
      `    password_file: ${pw}`,
      'sources:',
      '  main:',
      '    kind: postgres',
      `    dsn: ${cluster.dsn}`,
      `    pgdata: ${cluster.data}`,
      `    bin_dir: ${PG_BIN}`,
      '    stream: true',
      '    checks: ["select count(*) >= 1 from orders"]',
      '    targets: { rpo: 1h, rto: 15min }',
      // Two tags: the daemon passed only a postgres source's first (issue 15).
      '    tags: [nightly, offsite]',
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
    let stopped = false;
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
      // Every tag of the source reaches the snapshot, beside the postgres:NAME every base backup gets.
      expect(d.catalog.log(backup.id)[0]?.line).toContain('--tag nightly --tag offsite');
      const snaps = await snapshotsJson(repo, 'pg-daemon');
      expect(snaps).toHaveLength(1);
      expect(snaps[0]?.source).toEqual({ kind: 'postgres', name: 'main' });
      expect([...(snaps[0]?.tags ?? [])].sort()).toEqual(['nightly', 'offsite', 'postgres:main']);

      await new Promise((r) => setTimeout(r, 1100));
      const [{ now }] = (await cluster.query<{ now: Date }>('SELECT now() AS now')) as [{ now: Date }];
      const target = new Date(now.getTime() + 500).toISOString();
      await new Promise((r) => setTimeout(r, 1100));
      await cluster.query('DELETE FROM orders WHERE id = 2');
      await cluster.query('SELECT pg_switch_wal()');
      await waitArchived(Date.now() + 1000);

      // The restored server's restore_command runs `lifeboat pg archive-get` as the
      // postgres user, which must read the configuration, the password file and the
      // repository: in production the daemon runs as that user (docs/daemon.md); this
      // test runs as root, so hand them over. The daemon's streamer (root here) would
      // go on writing partial segments postgres cannot read, and archive-get stops
      // recovery (exit 128) on a WAL file it cannot read: it is paused meanwhile.
      const streamer = (d.supervisor as unknown as { children: Map<string, ChildProcess> }).children.get('main')!;
      streamer.kill('SIGSTOP');
      execFileSync('chown', ['-R', 'postgres:postgres', base]);
      const restoreDir = path.join(base, 'restored');
      const r = await d.app.inject({ method: 'POST', url: '/api/v1/restores', headers: auth, payload: { source: 'main', target: restoreDir, time: target } });
      expect(r.statusCode, r.body).toBe(202);
      const restore = (await d.runner.wait((r.json() as JobRow).id)) as JobRow;
      streamer.kill('SIGCONT');
      expect(restore.status, `${restore.error ?? ''}\n${d.catalog.log(restore.id).map((l) => l.line).join('\n')}`).toBe('succeeded');
      expect(d.catalog.log(restore.id)[0]?.line).toBe(`lifeboat --repo main pg restore --name main --target-dir ${restoreDir} --time ${target} --bin-dir ${PG_BIN} --start --check select count(*) >= 1 from orders`);
      // The job started the result, saw it promote, and recorded the RTO of that recovery.
      const result = restore.result as { rto_seconds: number; started: { ok: boolean; running: boolean; checks: Array<{ name: string; ok: boolean }> } };
      expect(result.started).toMatchObject({ ok: true, running: false });
      expect(result.started.checks).toContainEqual(expect.objectContaining({ name: 'query select count(*) >= 1 from orders', ok: true }));
      expect(result.rto_seconds).toBeGreaterThan(0);
      expect(d.catalog.log(restore.id).some((l) => l.line === `measured RTO ${result.rto_seconds} s (restore, start, recovery and promotion)`)).toBe(true);

      // The same target again: refused, and the restored directory is untouched.
      const again = await d.app.inject({ method: 'POST', url: '/api/v1/restores', headers: auth, payload: { source: 'main', target: restoreDir, time: target } });
      expect(again.statusCode).toBe(409);
      expect(again.json().error.code).toBe('TARGET_EXISTS');

      // Start the restored (already promoted) cluster beside the original, on the port
      // of its own the restore chose, and look.
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

      // The disaster: the primary is gone. The runbook's command, run as printed (with
      // lifeboat installed as docs/daemon.md says), brings it back where clients look.
      await cluster.query('SELECT pg_switch_wal()');
      await waitArchived(Date.now() + 1000);
      stopped = true;
      await d.stop();
      await cluster.stop();
      const book = runbook(d.config, { newestBackup: () => undefined, lastDrill: () => undefined });
      const line = /^ {3}(lifeboat --config .* pg restore .*)$/m.exec(book)?.[1] as string;
      expect(line).toBe(`lifeboat --config ${file} -r main pg restore --name main --target-dir ${cluster.data}.restored --bin-dir ${PG_BIN} --port ${cluster.port} --start --keep-running --check 'select count(*) >= 1 from orders'`);
      execFileSync('chown', ['-R', 'postgres:postgres', base]);
      const bin = path.join(base, 'bin');
      mkdirSync(bin);
      symlinkSync(CLI, path.join(bin, 'lifeboat'));
      const ran = spawnSync('sh', ['-c', line], { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` }, encoding: 'utf8' });
      expect(ran.status, ran.stderr).toBe(0);
      expect(ran.stdout).toMatch(/^RTO [\d.]+s \(restore/m);
      const back = cluster.copy(`${cluster.data}.restored`, cluster.port);
      try {
        expect(await back.query('SELECT id, item FROM orders ORDER BY id')).toEqual([{ id: 1, item: 'anchor' }]);
      } finally {
        await back.stop();
        rmSync(`${cluster.data}.restored`, { recursive: true, force: true });
      }
    } finally {
      if (!stopped) await d.stop();
    }
  });
});
