/**
 * PostgreSQL restores and verifies that treat their inputs as untrusted, against a
 * real PostgreSQL 15 scratch cluster:
 *  - a restore target holding $(…), backquotes, quotes, spaces and %p goes into
 *    restore_command quoted: the restored server is started (PostgreSQL itself runs
 *    restore_command with `sh -c`), replays the WAL archived after the backup, and
 *    none of the injected commands ran; a target with a line break is refused before
 *    anything is written;
 *  - `pg verify` of a backup whose postgresql.auto.conf preloads a missing library and
 *    sets a recovery_end_command succeeds, and that command never runs;
 *  - `pg backup --remote` and `pg stream` never use a pre-created /tmp/lifeboat-… spool
 *    (a symlink or a directory someone planted there).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, promises as fs, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers.js';
import { archivedCluster, lifeboatAsPostgres, PG_BIN, restoredPort, ScratchCluster } from '../pg-cluster.js';
import { switchAndArchive } from '../pg-load.js';
import { processes, waitUntil } from '../pg-streamer.js';

let base: string;
let repo: string;
let pw: string;
let cluster: ScratchCluster;
let recoveryEndMarker: string;
const cleanup: string[] = [];

const lb = (args: string[]) => lifeboatAsPostgres([...args, '--repo', repo, '--password-file', pw]);

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-pgu-'));
  await cluster.query('create table t (id int primary key)');
  await cluster.query('insert into t select generate_series(1, 100)');
  // What anyone who could write the server's files could leave for the restorer. The
  // running server does not reread these settings; the backup carries them.
  recoveryEndMarker = path.join(base, 'recovery-end-command-ran');
  await fs.appendFile(
    path.join(cluster.data, 'postgresql.auto.conf'),
    `shared_preload_libraries = 'lifeboat_no_such_library'\nrecovery_end_command = 'touch ${recoveryEndMarker}'\n`,
  );
  const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
  expect(b.code, b.stderr).toBe(0);
  // Rows only WAL replay (restore_command) can bring back.
  await cluster.query('insert into t select generate_series(101, 200)');
  await switchAndArchive(cluster);
}, 180_000);

afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
  for (const p of cleanup) rmSync(p, { recursive: true, force: true });
});

/** Starts postgres on DATA directly (pg_ctl would hand -D to sh in double quotes itself). */
async function startPostgres(data: string, port: number): Promise<{ stop(): Promise<void> }> {
  const logFile = path.join(base, `copy-${randomBytes(3).toString('hex')}.log`);
  const log = openSync(logFile, 'a');
  const child = spawn('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'postgres'), '-D', data], { stdio: ['ignore', log, log] });
  closeSync(log);
  let exited = false;
  const closed = new Promise((r) => child.once('close', () => r((exited = true))));
  const copy = cluster.copy(data, port);
  await waitUntil('the restored copy to promote', async () => {
    if (exited) throw new Error(`the restored server exited:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    try {
      const [r] = await copy.query<{ rec: boolean }>('select pg_is_in_recovery() as rec');
      return r?.rec === false;
    } catch {
      return false;
    }
  }, 150_000, 200);
  return {
    async stop() {
      const pid = Number((await fs.readFile(path.join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
      process.kill(pid, 'SIGINT'); // fast shutdown; runuser does not forward signals
      await closed;
    },
  };
}

describe('a PostgreSQL restore target that looks like shell', () => {
  const injected = ['pwned-dollar', 'pwned-backquote', 'pwned-single', 'pwned-double'];
  const nasty = `it's a "target" $(touch pwned-dollar) \`touch pwned-backquote\` '; touch pwned-single; ' "; touch pwned-double; " %p %f %%`;

  it('is quoted in restore_command: the restored server replays the archive and no injected command runs', async () => {
    const target = path.join(base, nasty);
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', target, '--latest']);
    expect(r.code, r.stderr).toBe(0);
    // The restored copy keeps its cluster's own settings; take out the two this file planted for the verify test below.
    const auto = path.join(target, 'postgresql.auto.conf');
    await fs.writeFile(auto, (await fs.readFile(auto, 'utf8')).replace(/^(shared_preload_libraries|recovery_end_command) = .*$/gm, ''));
    const server = await startPostgres(target, await restoredPort(target));
    const copy = cluster.copy(target, await restoredPort(target));
    try {
      // 200 rows: the 100 after the backup came through restore_command.
      expect(await copy.query('select count(*)::int as n from t')).toEqual([{ n: 200 }]);
    } finally {
      await server.stop();
    }
    for (const dir of [target, base, cluster.dir, process.cwd(), '/var/lib/postgresql']) {
      for (const m of injected) expect(existsSync(path.join(dir, m)), `${m} in ${dir}`).toBe(false);
    }
    const conf = await fs.readFile(path.join(target, 'postgresql.auto.conf'), 'utf8');
    expect(conf).toMatch(/^restore_command = '.*%%p %%f %%%%.*'$/m);
  }, 240_000);

  it('with --start is refused before anything is written: pg_ctl would hand it to a shell in double quotes', async () => {
    const target = path.join(base, 'start $(touch pwned-start)');
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', target, '--latest', '--start']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/pg_ctl would pass "\$" to a shell/);
    expect(existsSync(target)).toBe(false);
    for (const dir of [base, process.cwd(), '/var/lib/postgresql']) expect(existsSync(path.join(dir, 'pwned-start'))).toBe(false);
  });

  it('with a line break is refused before anything is written', async () => {
    const target = path.join(base, 'two\nlines');
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', target, '--latest']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/cannot write restore_command: .*line break/);
    expect(existsSync(target)).toBe(false);
  });
});

describe('pg verify of a backup with a hostile configuration', () => {
  it("succeeds without loading the backup's preload libraries or running its recovery_end_command", async () => {
    const r = await lb(['pg', 'verify', '--name', 'main', '--latest', '--json', '--query', 'select count(*) = 200 from t']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean };
    expect(report.ok).toBe(true);
    expect(existsSync(recoveryEndMarker), 'recovery_end_command ran').toBe(false);
  }, 300_000);
});

describe('spools', () => {
  it('pg backup --remote and pg stream never use a pre-created /tmp/lifeboat-… path', async () => {
    const name = `spool${randomBytes(4).toString('hex')}`;
    const decoy = mkdtempSync(path.join(os.tmpdir(), 'lb-decoy-'));
    cleanup.push(decoy);
    const planted = { basebackup: path.join(os.tmpdir(), `lifeboat-basebackup-${name}`), stream: path.join(os.tmpdir(), `lifeboat-stream-${name}`) };
    symlinkSync(decoy, planted.basebackup);
    mkdirSync(planted.stream, { mode: 0o777 });
    cleanup.push(planted.basebackup, planted.stream);

    const b = await lb(['pg', 'backup', '--name', name, '--dsn', cluster.dsn, '--remote', '--bin-dir', PG_BIN]);
    expect(b.code, b.stderr).toBe(0);

    const streamer = spawn('runuser', ['-u', 'postgres', '--', process.execPath, CLI, '--json', 'pg', 'stream', '--name', name, '--dsn', cluster.dsn, '--repo', repo, '--password-file', pw, '--bin-dir', PG_BIN, '--interval', '500ms'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    streamer.stdout.on('data', (d: Buffer) => (out += d.toString()));
    streamer.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise((r) => streamer.once('close', r));
    try {
      await waitUntil(`a healthy status from pg stream (${out.slice(-500)})`, () => /"healthy":true/.test(out), 90_000);
      // A switch on an idle server is a no-op: write something, switch, until a whole segment was shipped.
      await cluster.query('create table if not exists spool_probe (x int)');
      await waitUntil(`a shipped segment (${out.slice(-500)})`, async () => {
        if (/"kind":"segment"/.test(out)) return true;
        await cluster.query('insert into spool_probe values (1)');
        await cluster.query('select pg_switch_wal()');
        return false;
      }, 90_000, 1000);
    } finally {
      // runuser does not forward signals: stop the streamer itself (it stops its receiver).
      const pid = processes('node', name)[0];
      if (pid) process.kill(pid, 'SIGTERM');
      else streamer.kill('SIGKILL');
      await closed;
      await cluster.query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1', [`lifeboat_${name}`]).catch(() => {});
    }
    expect(readdirSync(decoy), 'nothing written through the planted symlink').toEqual([]);
    expect((await fs.lstat(planted.basebackup)).isSymbolicLink(), 'the planted symlink was left alone').toBe(true);
    expect(readdirSync(planted.stream), 'nothing written into the planted directory').toEqual([]);
  }, 300_000);
});
