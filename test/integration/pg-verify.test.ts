/**
 * `pg verify` and a base backup taken under concurrent pgbench load, against real
 * PostgreSQL 15 scratch clusters: the backup restores to exactly what was committed,
 * verify proves it (amcheck, queries, measured RTO), fails loudly on a bad query or
 * a damaged repository, and never touches the real cluster or its archive.
 */
import { existsSync, promises as fs, rmSync } from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { CLI, runCli } from '../helpers.js';
import { archivedCluster, freePort, lifeboatAsPostgres, ScratchCluster } from '../pg-cluster.js';
import { pgbench, pgbenchUntilStopped, switchAndArchive } from '../pg-load.js';
import type { PgVerifyReport } from '../../src/sources/postgres/verify.js';

type Report = PgVerifyReport;

let base: string;
let repo: string;
let pw: string;
let cluster: ScratchCluster;
/** What the load left committed, and an LSN after all of it. */
let count: string;
let sum: string;
let endLsn: string;
let startLsn: string;
let overlap: { before: number; after: number; stillRunning: boolean };

const lb = (args: string[]) => lifeboatAsPostgres([...args, '--repo', repo, '--password-file', pw]);

async function verify(args: string[], asCaller = false): Promise<{ code: number; stderr: string; report: Report }> {
  const full = ['pg', 'verify', '--name', 'main', ...args, '--json'];
  // As the caller (root here) verify must hand the cluster to the data directory's owner.
  const r = asCaller ? await runCli([...full, '--repo', repo, '--password-file', pw]) : await lb(full);
  let report: Report;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`no JSON report (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, stderr: r.stderr, report };
}

const historyCount = async () => Number((await cluster.query<{ n: string }>('select count(*)::text as n from pgbench_history'))[0]!.n);

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-pgv-'));

  const setup = await pgbench(cluster, ['-i', '-s', '5', '-q']).done;
  expect(setup.code, setup.stderr).toBe(0);
  // Rate-limited so the WAL to replay (and the test's time) stays bounded on two cores;
  // run until stopped, so the load lasts through the backup however slow the machine.
  const load = pgbenchUntilStopped(cluster, ['-c', '4', '-j', '2', '-R', '250', '-n']);
  while ((await historyCount()) === 0) await new Promise((r) => setTimeout(r, 100));
  const before = await historyCount();
  const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn, '--json']);
  expect(b.code, b.stderr).toBe(0);
  startLsn = String((JSON.parse(b.stdout) as { consistency: { startLsn: string } }).consistency.startLsn);
  overlap = { before, after: await historyCount(), stillRunning: load.running() };
  // Transactions after the backup, so the restore must replay WAL past its end.
  while (load.running() && (await historyCount()) <= overlap.after) await new Promise((r) => setTimeout(r, 100));
  const done = await load.stop();
  expect(done.code, done.stderr).toBe(0);

  const [r] = await cluster.query<{ n: string; s: string; lsn: string }>(
    'select (select count(*) from pgbench_history)::text as n, (select sum(abalance) from pgbench_accounts)::text as s, pg_current_wal_insert_lsn()::text as lsn',
  );
  ({ n: count, s: sum, lsn: endLsn } = r!);
  await switchAndArchive(cluster);
}, 120_000);

afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('a base backup under pgbench load', () => {
  it('was taken while the load ran, and pg verify --latest proves it (amcheck, a row-count query)', async () => {
    expect(overlap.before).toBeGreaterThan(0);
    expect(overlap.stillRunning).toBe(true);
    expect(Number(count)).toBeGreaterThan(overlap.after);

    const { code, stderr, report } = await verify(['--latest', '--query', `select count(*) = ${count} from pgbench_history`]);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(code, stderr).toBe(0);
    expect(report.ok).toBe(true);
    const names = report.checks.map((c) => c.name);
    expect(names.slice(0, 2)).toEqual(['restore', 'start']);
    expect(names).toEqual(expect.arrayContaining(['amcheck postgres', 'amcheck template1', `query select count(*) = ${count} from pgbench_history`]));
    expect(names).not.toContain('amcheck template0'); // datallowconn is false there
    const indexes = Number(/^(\d+) btree indexes/.exec(report.checks.find((c) => c.name === 'amcheck postgres')!.detail)?.[1]);
    expect(indexes).toBeGreaterThan(100); // the catalog's and pgbench's primary keys
    console.log(`pg verify --latest: RTO ${report.rto_seconds}s (restore ${report.restore_seconds}s, recovery ${report.recovery_seconds}s)`);
  });

  it('restores with pg restore --latest to exactly the committed rows and balances', async () => {
    const dir = path.join(base, 'restored');
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest']);
    expect(r.code, r.stderr).toBe(0);
    const port = await freePort();
    // The copy runs beside the original: its own port, and it must not archive into the real history.
    await fs.appendFile(path.join(dir, 'postgresql.auto.conf'), `\nport = ${port}\narchive_mode = off\n`);
    await cluster.start(dir);
    try {
      const client = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${port}/postgres` });
      const until = Date.now() + 60_000;
      for (;;) {
        const c = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${port}/postgres` });
        await c.connect();
        const [row] = (await c.query<{ rec: boolean }>('select pg_is_in_recovery() as rec')).rows;
        await c.end();
        if (row?.rec === false) break;
        if (Date.now() > until) throw new Error('the restored copy did not finish recovery');
        await new Promise((res) => setTimeout(res, 200));
      }
      await client.connect();
      const [got] = (await client.query<{ n: string; s: string }>('select (select count(*) from pgbench_history)::text as n, (select sum(abalance) from pgbench_accounts)::text as s')).rows;
      await client.end();
      expect(got).toEqual({ n: count, s: sum });
    } finally {
      await cluster.stop(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lifeboat drill of a PostgreSQL source', () => {
  it('restores, recovers and checks the cluster, with RTO and the RPO of its last replayed transaction', async () => {
    const r = await lb(['drill', '--source', 'main', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as { source: string; ok: boolean; rto_seconds: number; rpo_seconds: number; checks: Array<{ name: string; ok: boolean }> };
    expect(d).toMatchObject({ source: 'postgres:main', ok: true });
    expect(d.rto_seconds).toBeGreaterThan(0);
    expect(d.rpo_seconds).toBeGreaterThanOrEqual(0);
    expect(d.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['restore', 'start', 'amcheck postgres']));
  });
});

describe('pg verify', () => {
  it('reports the measured RTO and its JSON shape; run as root it hands the cluster to the owner; --keep leaves it stopped', async () => {
    const { code, stderr, report } = await verify(['--lsn', endLsn, '--keep', '--query', 'select sum(abalance) from pgbench_accounts'], true);
    try {
      expect(code, stderr).toBe(0);
      expect(Object.keys(report).sort()).toEqual(['checks', 'last_transaction', 'ok', 'recovery_seconds', 'replayed_lsn', 'restore_seconds', 'rto_seconds', 'scratch_dir', 'snapshot', 'target', 'timeline', 'warnings']);
      expect(report.target).toEqual({ kind: 'lsn', lsn: endLsn });
      expect(report.snapshot).toMatch(/^[0-9a-f]{64}$/);
      expect(report.rto_seconds).toBeGreaterThan(0);
      expect(report.restore_seconds).toBeGreaterThan(0);
      expect(report.recovery_seconds).toBeGreaterThan(0);
      expect(report.rto_seconds!).toBeGreaterThanOrEqual(report.restore_seconds! + report.recovery_seconds! - 0.002);
      for (const c of report.checks) expect(c).toEqual({ name: expect.any(String), ok: true, detail: expect.any(String) });
      expect(report.checks.at(-1)!.detail).toBe(`first value: ${sum}`);
      const data = path.join(report.scratch_dir!, 'data');
      await expect(fs.access(path.join(data, 'postmaster.pid'))).rejects.toThrow();
      // The scratch server ran on Lifeboat's own configuration only (the backup's files are replaced), as postgres.
      expect(await fs.readFile(path.join(data, 'postgresql.conf'), 'utf8')).toMatch(/archive_mode = off[^]*restore_command/);
      expect(await fs.readFile(path.join(data, 'postgresql.auto.conf'), 'utf8')).not.toMatch(/restore_command|archive_command/);
      expect((await fs.stat(data)).uid).toBe(Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim()));
    } finally {
      if (report.scratch_dir) rmSync(report.scratch_dir, { recursive: true, force: true });
    }
    // Nothing the root run wrote into the repository is left behind for postgres to trip over.
    const rootOwned: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await fs.readdir(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if ((await fs.lstat(p)).uid === 0) rootOwned.push(p);
        if (e.isDirectory()) await walk(p);
      }
    };
    if (process.getuid?.() === 0) await walk(repo);
    expect(rootOwned).toEqual([]);
  });

  it('interrupted with SIGINT, it stops and removes its scratch cluster', async () => {
    // This run's scratch directories go to a temporary directory of its own: other files'
    // verifies and drills make lifeboat-verify-* in /tmp at the same time.
    const tmp = await fs.mkdtemp('/tmp/lb-sigint-');
    await fs.chmod(tmp, 0o755); // the scratch cluster runs as postgres
    const child = spawn(process.execPath, [CLI, 'pg', 'verify', '--name', 'main', '--latest', '--repo', repo, '--password-file', pw], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, TMPDIR: tmp },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Interrupt once the scratch cluster is being started.
    while (!stderr.includes('recovery')) {
      if (child.exitCode !== null) throw new Error(`verify ended early: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const mine = (await fs.readdir(tmp)).filter((d) => d.startsWith('lifeboat-verify-')).map((d) => path.join(tmp, d));
    expect(mine.length).toBeGreaterThan(0);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(130);
    expect(mine.filter((d) => existsSync(d))).toEqual([]);
    for (const d of mine) expect(spawnSync('pgrep', ['-f', d]).stdout.toString().trim(), `processes of ${d}`).toBe('');
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('a failing --query gives ok:false naming it, and exit 13', async () => {
    const wrong = `select count(*) = ${Number(count) + 1} from pgbench_history`;
    const { code, stderr, report } = await verify(['--query', wrong, '--query', 'select 1']);
    expect(code).toBe(13);
    expect(stderr).toContain(`failed: query ${wrong}`);
    expect(report.ok).toBe(false);
    expect(report.checks.filter((c) => !c.ok)).toEqual([{ name: `query ${wrong}`, ok: false, detail: 'first value: false' }]);
    expect(report.checks.find((c) => c.name === 'query select 1')?.ok).toBe(true);
    expect(report.rto_seconds).toBeGreaterThan(0);
  });

  it('a cluster that does not come up fails the start check with the tail of its log', async () => {
    // A target past the end of the archive: PostgreSQL refuses to promote short of it.
    const { code, report } = await verify(['--lsn', 'FF/0']);
    expect(code).toBe(13);
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ['restore', true],
      ['start', false],
    ]);
    expect(report.checks[1]!.detail).toMatch(/recovery ended before configured recovery target was reached/);
    expect(report.rto_seconds).toBeNull();
  });

  it('an index that no longer matches its table fails amcheck, naming the index, in its own database', async () => {
    // An "immutable" function that changes its answer is the classic way to get an index amcheck rejects.
    await cluster.query('create database lying');
    const client = new pg.Client({ connectionString: cluster.dsn.replace(/\/postgres$/, '/lying') });
    await client.connect();
    try {
      await client.query("create function f(int) returns int immutable language sql as 'select $1'");
      await client.query('create table t (id int)');
      await client.query('create index t_f_idx on t (f(id))');
      await client.query('insert into t select generate_series(1, 1000)');
      await client.query("create or replace function f(int) returns int immutable language sql as 'select -$1'");
    } finally {
      await client.end();
    }
    await switchAndArchive(cluster);
    const { code, report } = await verify(['--latest']);
    expect(code).toBe(13);
    expect(report.ok).toBe(false);
    const bad = report.checks.filter((c) => !c.ok);
    expect(bad.map((c) => c.name)).toEqual(['amcheck lying']);
    expect(bad[0]!.detail).toMatch(/^1 of \d+ btree indexes failed: public\.t_f_idx: .*lacks matching index tuple/);
    expect(report.checks.find((c) => c.name === 'amcheck postgres')?.ok).toBe(true);
  });

  it('a damaged repository (a missing WAL segment, a flipped byte in a pack) gives ok:false and exit 13; the real cluster is untouched', async () => {
    const logs = path.join(repo, 'logs', 'postgres.main', '00000001');
    const [{ seg }] = (await cluster.query<{ seg: string }>('select pg_walfile_name($1::pg_lsn) as seg', [startLsn])) as [{ seg: string }];
    const saved = path.join(base, 'saved-segment');
    await fs.rename(path.join(logs, seg), saved);
    try {
      const { code, report } = await verify(['--latest']);
      expect(code).toBe(13);
      expect(report.ok).toBe(false);
      expect(report.checks).toHaveLength(1);
      expect(report.checks[0]).toMatchObject({ name: 'restore', ok: false });
      expect(report.checks[0]!.detail).toContain(seg);
      expect(report.rto_seconds).toBeNull();
    } finally {
      await fs.rename(saved, path.join(logs, seg));
    }

    const packs: Array<{ file: string; size: number }> = [];
    for (const d of await fs.readdir(path.join(repo, 'data'))) {
      for (const f of await fs.readdir(path.join(repo, 'data', d))) {
        const file = path.join(repo, 'data', d, f);
        packs.push({ file, size: (await fs.stat(file)).size });
      }
    }
    const victim = packs.sort((a, b) => b.size - a.size)[0]!;
    const fh = await fs.open(victim.file, 'r+');
    const at = Math.floor(victim.size / 2);
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, at);
    await fh.write(Buffer.from([byte[0]! ^ 0x5a]), 0, 1, at);
    try {
      const { code, report } = await verify(['--latest']);
      expect(code).toBe(13);
      expect(report.ok).toBe(false);
      expect(report.checks[0]).toMatchObject({ name: 'restore', ok: false });
      expect(report.checks[0]!.detail).toMatch(/failed authentication/);
      expect(report.checks[0]!.detail).toContain(path.basename(victim.file));
    } finally {
      await fh.write(byte, 0, 1, at);
      await fh.close();
    }

    // The original still runs with exactly its data, and no copy archived a timeline of its own.
    const [now] = await cluster.query<{ n: string; s: string }>('select (select count(*) from pgbench_history)::text as n, (select sum(abalance) from pgbench_accounts)::text as s');
    expect(now).toEqual({ n: count, s: sum });
    const timelines = (await fs.readdir(path.join(repo, 'logs', 'postgres.main'))).filter((f) => /^[0-9A-F]{8}$/.test(f));
    expect(timelines).toEqual(['00000001']);
  });
});
