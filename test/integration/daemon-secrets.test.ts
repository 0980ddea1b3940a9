/**
 * A PostgreSQL password never leaves the environment or its 0600 file. A scratch
 * cluster asks a role for its password (scram-sha-256); the daemon backs it up with
 * the password in the DSN (source `indsn`), streams its WAL with the password in a
 * password_file (source `infile`), and fails a job against a closed port with the
 * password in the DSN (source `down`). While they run, every process's argv in
 * /proc is searched for the password (`ps` shows it to every local user); after,
 * the job logs and records as a viewer token reads them, the catalog file and the
 * runbook. Before, the password was in the first line of every job log, on the
 * child's argv and on pg_basebackup's and pg_receivewal's.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, initRepo, runCli } from '../helpers.js';
import { PG_BIN, postgresDir, ScratchCluster } from '../pg-cluster.js';
import { waitUntil } from '../pg-streamer.js';
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

const PASSWORD = `Sekr3t-${randomBytes(6).toString('hex')}`;

/** Watches every process's argv until stopped; returns the command lines that held the password. */
function watchArgv(): { stop(): string[]; seen(): number; programs: Set<string> } {
  const leaks = new Set<string>();
  /** Programs seen connecting as the role (so the watch saw them run). */
  const programs = new Set<string>();
  let scans = 0;
  let running = true;
  const scan = () => {
    if (!running) return;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (argv.includes(PASSWORD)) leaks.add(argv.replaceAll('\0', ' '));
        if (argv.includes('lbsecret')) programs.add(path.basename(argv.split('\0')[0] ?? ''));
      } catch {
        // gone already
      }
    }
    scans++;
    setTimeout(scan, 5);
  };
  scan();
  return {
    stop: () => ((running = false), [...leaks]),
    seen: () => scans,
    programs,
  };
}

describe('a PostgreSQL password in the daemon', () => {
  it('stays out of argv, job logs, job records, the catalog and the runbook', async () => {
    cluster = await ScratchCluster.create();
    // The role must give its password: scram lines before initdb's trust lines.
    const hba = path.join(cluster.data, 'pg_hba.conf');
    writeFileSync(hba, `host all lbsecret 127.0.0.1/32 scram-sha-256\nhost replication lbsecret 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
    await cluster.start();
    await cluster.query(`create role lbsecret login superuser replication password '${PASSWORD}'`);
    const noPassword = new pg.Client({ connectionString: `postgresql://lbsecret:wrong@127.0.0.1:${cluster.port}/postgres` });
    await expect(noPassword.connect()).rejects.toThrow(/password authentication failed/);

    base = await postgresDir('lb-dsec-');
    const repo = path.join(base, 'repo');
    const pw = path.join(base, 'pass');
    writeFileSync(pw, 'repo-pass\n');
    const pgpass = path.join(base, 'pg.pass');
    writeFileSync(pgpass, `${PASSWORD}\n`, { mode: 0o600 });
    await initRepo(repo, 'repo-pass');
    const text = [
      'repositories:',
      '  main:',
      `    stores: [${repo}]`,
      `    password_file: ${pw}`,
      'sources:',
      '  indsn:',
      '    kind: postgres',
      `    dsn: postgresql://lbsecret:${PASSWORD}@127.0.0.1:${cluster.port}/postgres`,
      `    bin_dir: ${PG_BIN}`,
      '  infile:',
      '    kind: postgres',
      `    dsn: postgresql://lbsecret@127.0.0.1:${cluster.port}/postgres`,
      '    password_file: pg.pass',
      `    bin_dir: ${PG_BIN}`,
      '    stream: true',
      '  kv:',
      '    kind: postgres',
      `    dsn: host=127.0.0.1 port=${cluster.port} user=lbsecret dbname=postgres`,
      '    password_file: pg.pass',
      '  down:',
      '    kind: postgres',
      `    dsn: host=127.0.0.1 port=1 user=lbsecret password=${PASSWORD} dbname=postgres`,
      'groups:',
      '  both:',
      '    members: [infile]',
      'server:',
      '  listen: 127.0.0.1:0',
      '  state_dir: state',
    ].join('\n');
    const file = path.join(base, 'lifeboat.yaml');
    writeFileSync(file, text);
    const argv = watchArgv();
    const d = await Daemon.create(parseConfig(text, file), { log: () => {} });
    const operator = { authorization: `Bearer ${createToken(d.catalog, 'operator', 'dba').token}` };
    const viewer = { authorization: `Bearer ${createToken(d.catalog, 'viewer', 'watcher').token}` };
    const jobs: JobRow[] = [];
    try {
      d.start();
      // pg stream of `infile` logs in with the password from its file (pg_receivewal too).
      await waitUntil('WAL streamed for infile', () => (d.supervisor.states.get('infile')?.archivedThrough ?? 0) > 0, 120_000);
      // A group records its restore point over a login with the same password_file (and the streamer archives it).
      const point = await runCli(['group', 'backup', 'both', '--config', file, '--json']);
      expect(point.code, point.stderr).toBe(0);
      expect(point.stdout + point.stderr).not.toContain(PASSWORD);
      for (const source of ['indsn', 'down']) {
        const r = await d.app.inject({ method: 'POST', url: `/api/v1/sources/${source}/backup`, headers: operator });
        expect(r.statusCode, r.body).toBe(202);
        jobs.push(await d.runner.wait((r.json() as JobRow).id));
      }
      expect(jobs[0]!.status, jobs[0]!.error ?? '').toBe('succeeded');
      expect(jobs[1]!.status).toBe('failed');
      expect(jobs[1]!.error).toMatch(/cannot reach PostgreSQL/);

      // What a viewer token reads: every job, its record and its log.
      const list = (await d.app.inject({ method: 'GET', url: '/api/v1/jobs', headers: viewer })).body;
      expect(list).not.toContain(PASSWORD);
      const all = (JSON.parse(list) as { jobs?: JobRow[] } | JobRow[]);
      const ids = (Array.isArray(all) ? all : (all.jobs ?? [])).map((j) => j.id);
      expect(ids.length).toBeGreaterThanOrEqual(3);
      for (const id of ids) {
        for (const url of [`/api/v1/jobs/${id}`, `/api/v1/jobs/${id}/log`]) {
          const body = (await d.app.inject({ method: 'GET', url, headers: viewer })).body;
          expect(body, url).not.toContain(PASSWORD);
        }
      }
      expect(d.catalog.log(jobs[1]!.id).map((l) => l.line).join('\n')).toMatch(/password=\*\*\*|cannot reach/);
    } finally {
      await d.stop();
    }
    expect(argv.seen()).toBeGreaterThan(10);
    // The watch saw the children that carry the DSN: the daemon's lifeboat children and pg_receivewal.
    expect([...argv.programs]).toEqual(expect.arrayContaining(['node', 'pg_receivewal']));
    expect(argv.stop(), 'command lines holding the password').toEqual([]);

    // The catalog file itself (and its WAL).
    for (const f of readdirSync(path.join(base, 'state')).filter((n) => n.startsWith('catalog.db'))) {
      expect(readFileSync(path.join(base, 'state', f)).includes(Buffer.from(PASSWORD)), f).toBe(false);
    }
    const runbook = await runCli(['runbook', '--config', file]);
    expect(runbook.code, runbook.stderr).toBe(0);
    expect(runbook.stdout).toContain('postgresql://lbsecret:***@127.0.0.1');
    expect(runbook.stdout).toContain('password=***');
    expect(runbook.stdout).not.toContain(PASSWORD);

    // config check logs in as the jobs do: `infile` and `kv` (a libpq key=value dsn) with their password_file, resolved against lifeboat.yaml (not the working directory).
    const check = async () => {
      const r = await runCli(['config', 'check', '--config', file, '--json']);
      expect(r.code, r.stderr).toBe(37);
      expect(r.stdout + r.stderr).not.toContain(PASSWORD);
      return (JSON.parse(r.stdout) as { problems: Array<{ subject: string; message: string }> }).problems;
    };
    const first = await check();
    expect(first.map((p) => p.subject), JSON.stringify(first)).toEqual(["source down"]);
    // A password file that is gone is named as such, not reported as a refused login.
    rmSync(pgpass);
    const gone = await check();
    expect(gone.map((p) => p.subject)).toEqual(['source infile', 'source kv', 'source down']);
    expect(gone[0]!.message).toBe(`password file ${pgpass} does not exist`);
  }, 300_000);
});
