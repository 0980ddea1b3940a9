/**
 * Restores that do what the operator meant, in one repository shared by a files
 * source, a SQLite source and a PostgreSQL source (issue 14): `restore latest` alone
 * is refused listing the sources, `restore latest --source X` restores X for each of
 * them, `snapshots --source` lists one source, and `pg restore --start` starts the
 * result, waits for promotion, checks it and reports a measured RTO. Every lifeboat
 * call runs as the postgres user, as archive_command does.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archivedCluster, asPostgres, lifeboatAsPostgres, PG_BIN, type ScratchCluster } from '../pg-cluster.js';
import { switchAndArchive } from '../pg-load.js';

let base: string;
let repo: string;
let pw: string;
let cluster: ScratchCluster;

const lb = (args: string[]) => lifeboatAsPostgres(['--repo', repo, '--password-file', pw, ...args]);

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-intent-'));
  const uploads = path.join(base, 'uploads');
  mkdirSync(uploads);
  writeFileSync(path.join(uploads, 'photo.txt'), 'a photo\n');
  const db = new Database(path.join(base, 'notes.db'));
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('remember')");
  db.close();
  execFileSync('chown', ['-R', 'postgres:postgres', base]);
  await cluster.query('CREATE TABLE orders (id int PRIMARY KEY, item text)');
  await cluster.query("INSERT INTO orders VALUES (1, 'anchor'), (2, 'rope')");
  // The order of the backups makes the PostgreSQL one the repository's newest.
  for (const args of [['backup', '--name', 'uploads', uploads], ['sqlite', 'backup', path.join(base, 'notes.db'), '--name', 'notes'], ['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]]) {
    const r = await lb(args);
    expect(r.code, r.stderr).toBe(0);
  }
  await switchAndArchive(cluster);
}, 300_000);

afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('restore latest in a shared repository', () => {
  it('refuses a bare "latest", listing the sources; nothing is written', async () => {
    const target = path.join(base, 'r-bare');
    const r = await lb(['restore', 'latest', '--target', target]);
    expect(r.code).toBe(35);
    expect(r.stderr).toMatch(/^lifeboat: "latest" is ambiguous: this repository holds 3 sources \(files:uploads, postgres:main, sqlite:notes\)$/m);
    expect(r.stderr).toMatch(/hint: name one: --source/);
    expect(existsSync(target)).toBe(false);
  });

  it('restores the source named, for each kind', async () => {
    const files = path.join(base, 'r-uploads');
    expect((await lb(['restore', 'latest', '--source', 'uploads', '--target', files])).code).toBe(0);
    expect(readFileSync(path.join(files, base, 'uploads', 'photo.txt'), 'utf8')).toBe('a photo\n');

    const notes = path.join(base, 'r-notes');
    expect((await lb(['restore', 'latest', '--source', 'sqlite:notes', '--target', notes])).code).toBe(0);
    const found = execFileSync('find', [notes, '-type', 'f']).toString().trim().split('\n');
    expect(found).toHaveLength(1);
    const copy = new Database(found[0] as string, { readonly: true });
    expect(copy.prepare('SELECT body FROM notes').all()).toEqual([{ body: 'remember' }]);
    copy.close();

    const pgdir = path.join(base, 'r-main');
    expect((await lb(['restore', 'latest', '--source', 'main', '--target', pgdir])).code).toBe(0);
    expect(execFileSync('find', [pgdir, '-name', 'PG_VERSION']).toString()).toContain('PG_VERSION');
    expect(execFileSync('find', [pgdir, '-name', 'photo.txt']).toString()).toBe('');

    // A time picks among that source's snapshots too; an id of another source is refused.
    expect((await lb(['restore', 'latest', '--source', 'uploads', '--time', '2001-01-01T00:00:00Z', '--target', path.join(base, 'r-old')])).code).toBe(15);
    const list = JSON.parse((await lb(['--json', 'snapshots', '--source', 'notes'])).stdout) as Array<{ id: string; source: { kind: string } }>;
    expect(list.map((s) => s.source.kind)).toEqual(['sqlite']);
    const wrong = await lb(['restore', (list[0] as { id: string }).id.slice(0, 8), '--source', 'uploads', '--target', path.join(base, 'r-wrong')]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/is of sqlite:notes, not of source "uploads"/);
  });
});

describe('pg restore --start', () => {
  it('starts the result, waits for promotion, runs the checks and reports the measured RTO, then stops it', async () => {
    const dir = path.join(base, 'started');
    const r = await lb(['--json', 'pg', 'restore', '--name', 'main', '--target-dir', dir, '--bin-dir', PG_BIN, '--start', '--check', "select count(*) = 2 from orders where item in ('anchor', 'rope')"]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { rto_seconds: number; started: { ok: boolean; recovery_seconds: number; restore_seconds: number; databases: string[]; checks: Array<{ name: string; ok: boolean }>; running: boolean } };
    expect(out.started.ok).toBe(true);
    expect(out.rto_seconds).toBeGreaterThan(0);
    expect(out.rto_seconds).toBeCloseTo(out.started.restore_seconds + out.started.recovery_seconds, 1);
    expect(out.started.databases).toContain('postgres');
    expect(out.started.checks.map((c) => [c.name, c.ok])).toEqual([['start', true], ['select 1', true], ['databases', true], ["query select count(*) = 2 from orders where item in ('anchor', 'rope')", true]]);
    expect(out.started.running).toBe(false);
    // Stopped, promoted (no recovery.signal left), and nothing of the private settings stayed in its configuration.
    expect((await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', dir, 'status'])).code).toBe(3);
    expect(existsSync(path.join(dir, 'recovery.signal'))).toBe(false);
    expect(readFileSync(path.join(dir, 'postgresql.auto.conf'), 'utf8')).not.toMatch(/hba_file|lifeboat-start/);

    // A failing check is exit 36 with the check named.
    const bad = await lb(['pg', 'restore', '--name', 'main', '--target-dir', path.join(base, 'started-2'), '--start', '--check', 'select count(*) = 3 from orders']);
    expect(bad.code).toBe(36);
    expect(bad.stderr).toMatch(/^lifeboat: the restored server failed check query select count\(\*\) = 3 from orders: first value: false$/m);

    // Tools are checked before anything is written.
    const nobin = path.join(base, 'started-3');
    const missing = await lb(['pg', 'restore', '--name', 'main', '--target-dir', nobin, '--bin-dir', path.join(base, 'nowhere'), '--start']);
    expect(missing.code).toBe(15);
    expect(missing.stderr).toMatch(/no pg_ctl in/);
    expect(existsSync(nobin)).toBe(false);
  });
});
