/**
 * A restored copy started beside its primary, against real PostgreSQL 15 scratch
 * clusters: it archives nothing and listens on a port of its own, so restores of
 * production (to the latest WAL, a restore point, a time on production's timeline
 * past the copy's branch) give production's rows. Then an archive polluted on
 * purpose, as an older Lifeboat or an operator turning archiving back on would:
 * restores still follow production, check and pg restore name the copy's timeline,
 * pg timelines lists it, and moving it aside works and can be undone.
 */
import { promises as fs, rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archivedCluster, lifeboatAsPostgres, type ScratchCluster } from '../pg-cluster.js';
import { switchAndArchive } from '../pg-load.js';

let base: string;
let repo: string;
let pw: string;
let cluster: ScratchCluster;
let restores = 0;

const lb = (args: string[]) => lifeboatAsPostgres([...args, '--repo', repo, '--password-file', pw]);

interface RestoreJson {
  port: number;
  timeline: number;
  archiving: boolean;
  warnings: string[];
  recovery: string[];
}

/** Restores with FLAGS into a new directory (never on the primary's port); returns its JSON report and where it went. */
async function restore(flags: string[], expectWarnings = false): Promise<RestoreJson & { dir: string; stderr: string }> {
  const dir = path.join(base, `restore-${restores++}`);
  const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, ...flags, '--json']);
  expect(r.code, r.stderr).toBe(0);
  if (!expectWarnings) expect(r.stderr).toBe('');
  return { ...(JSON.parse(r.stdout) as RestoreJson), dir, stderr: r.stderr };
}

/** Starts a restored copy beside the running primary, lets it recover, runs fn on it, stops it. */
async function started<T>(r: { dir: string; port: number }, fn: (copy: ScratchCluster) => Promise<T>): Promise<T> {
  const copy = cluster.copy(r.dir, r.port);
  await copy.start();
  try {
    await copy.waitPromoted();
    return await fn(copy);
  } finally {
    await copy.stop();
  }
}

const ids = async (c: ScratchCluster): Promise<number[]> => (await c.query<{ id: number }>('select id from t order by id')).map((r) => r.id);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const insert = (c: ScratchCluster, from: number, to: number, origin: string) => c.query('insert into t select g, $3 from generate_series($1::int, $2::int) g', [from, to, origin]);

/** Restores with FLAGS, starts the copy and returns its ids. */
async function restoredIds(flags: string[], expectWarnings = false): Promise<number[]> {
  const r = await restore(flags, expectWarnings);
  expect(r.timeline).toBe(1);
  return started(r, ids);
}

/**
 * A moment strictly after every commit so far and strictly before any to come, in
 * whole milliseconds (what a target time can say): waits for the server's clock to
 * pass it, instead of sleeping for a guessed while.
 */
async function momentBetweenCommits(): Promise<Date> {
  const ms = async () => Number((await cluster.query<{ ms: string }>('select floor(extract(epoch from clock_timestamp()) * 1000)::text as ms'))[0]!.ms);
  const after = await ms();
  let target = await ms();
  while (target <= after + 1) target = await ms();
  while ((await ms()) <= target);
  return new Date(target);
}

/** The timeline directories in the archive and the streamed WAL, with how many files each holds. */
async function archiveDirs(source = 'postgres.main'): Promise<Record<string, number>> {
  const root = path.join(repo, 'logs', source);
  const out: Record<string, number> = {};
  for (const d of await fs.readdir(root).catch(() => [] as string[])) {
    const n = (await fs.readdir(path.join(root, d))).length;
    if (d !== 'identity' && n > 0) out[d] = n;
  }
  return out;
}

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-pgcopy-'));
  await cluster.query("create table t (id int primary key, origin text not null, at timestamptz not null default clock_timestamp())");
  await insert(cluster, 1, 100, 'production');
  const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
  expect(b.code, b.stderr).toBe(0);
  await switchAndArchive(cluster);
}, 180_000);

afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('a restored copy started beside its primary', () => {
  it('archives nothing and takes a port of its own; production restores to the latest WAL, a restore point and a time past its branch', async () => {
    await insert(cluster, 101, 110, 'production');
    const t1 = await momentBetweenCommits();
    await insert(cluster, 111, 120, 'production');
    await switchAndArchive(cluster);

    const r = await restore(['--time', t1.toISOString()]);
    expect(r).toMatchObject({ archiving: false, timeline: 1, warnings: [] });
    expect(r.port).not.toBe(cluster.port);
    expect(r.recovery).toContain("recovery_target_timeline = '1'");
    const auto = await fs.readFile(path.join(r.dir, 'postgresql.auto.conf'), 'utf8');
    expect(auto).toMatch(/^archive_mode = off$/m);
    expect(auto).toMatch(new RegExp(`^port = ${r.port}$`, 'm'));
    // Each word shell-quoted, then quoted again for the configuration file (util/shell.ts).
    expect(auto).toMatch(/^#\s+archive_command = '.*''pg'' ''archive-push'' ''--name'' ''main'' .*%p'$/m);

    await started(r, async (copy) => {
      expect(await ids(copy)).toEqual(range(1, 110));
      const [s] = await copy.query<{ mode: string; tli: number; workers: string; sync: string }>(
        "select current_setting('archive_mode') as mode, (select timeline_id from pg_control_checkpoint()) as tli, current_setting('max_logical_replication_workers') as workers, current_setting('synchronous_standby_names') as sync",
      );
      // No archiving, no subscription workers consuming the real subscriber's changes, no waiting for standbys.
      expect(s).toEqual({ mode: 'off', tli: 2, workers: '0', sync: '' });
      // The copy is used: rows, a restore point named like production's, whole segments.
      await insert(copy, 900_001, 900_050, 'copy');
      await copy.query("select pg_create_restore_point('after-branch')");
      await copy.query('select pg_switch_wal()');
      await insert(copy, 900_051, 900_060, 'copy');
      await copy.query('select pg_switch_wal()');
      const [a] = await copy.query<{ n: string }>('select archived_count::text as n from pg_stat_archiver');
      expect(a!.n).toBe('0');

      // Meanwhile production goes on along timeline 1.
      await insert(cluster, 121, 130, 'production');
      await cluster.query("select pg_create_restore_point('after-branch')");
      await insert(cluster, 131, 140, 'production');
    });
    const t2 = await momentBetweenCommits();
    await insert(cluster, 141, 150, 'production');
    await switchAndArchive(cluster);

    // Nothing the copy wrote reached the archive.
    expect(Object.keys(await archiveDirs())).toEqual(['00000001']);
    expect(await archiveDirs('postgres.main~stream')).toEqual({});

    expect(await restoredIds(['--latest'])).toEqual(range(1, 150));
    expect(await restoredIds(['--restore-point', 'after-branch'])).toEqual(range(1, 130));
    expect(await restoredIds(['--time', t2.toISOString()])).toEqual(range(1, 140));
    // Still only production's timeline: the restored copies archived nothing either.
    expect(Object.keys(await archiveDirs())).toEqual(['00000001']);
  });

  it('--port puts the copy on the port asked for', async () => {
    const r = await restore(['--latest', '--port', '54999']);
    expect(r.port).toBe(54999);
    expect(await fs.readFile(path.join(r.dir, 'postgresql.auto.conf'), 'utf8')).toMatch(/^port = 54999$/m);
  });
});

describe('an archive a copy polluted (archiving turned back on)', () => {
  it('restores still follow production; check, pg restore and pg timelines name the copy timeline; moving it aside works and is undone', async () => {
    await insert(cluster, 151, 160, 'production');
    const t3 = await momentBetweenCommits();
    await insert(cluster, 161, 170, 'production');
    await switchAndArchive(cluster);

    // What an older Lifeboat left (or an operator re-enabled): the primary's
    // archive_command (still in postgresql.conf) with archiving on.
    const copy = await restore(['--time', t3.toISOString()]);
    await fs.appendFile(path.join(copy.dir, 'postgresql.auto.conf'), 'archive_mode = on\n');
    await started(copy, async (c) => {
      expect(await ids(c)).toEqual(range(1, 160));
      await insert(c, 800_001, 800_050, 'copy');
      await c.query("select pg_create_restore_point('shared-point')");
      await insert(c, 800_051, 800_060, 'copy');
      await switchAndArchive(c);
      await insert(cluster, 171, 180, 'production');
      await cluster.query("select pg_create_restore_point('shared-point')");
      await insert(cluster, 181, 190, 'production');
    });
    const t4 = await momentBetweenCommits();
    await insert(cluster, 191, 200, 'production');
    await switchAndArchive(cluster);
    const polluted = await archiveDirs();
    expect(Object.keys(polluted)).toEqual(['00000001', '00000002']);

    // Restores from the base backup older than the branch follow production.
    const latest = await restore(['--latest'], true);
    expect(latest.stderr).toMatch(/^warning: timeline 2 in the archive of main is not on production's history \(foreign: .*\); restores ignore it\. .*--move-aside 2`$/m);
    expect(latest.warnings).toHaveLength(1);
    expect(await started(latest, ids)).toEqual(range(1, 200));
    expect(await restoredIds(['--restore-point', 'shared-point'], true)).toEqual(range(1, 180));
    expect(await restoredIds(['--time', t4.toISOString()], true)).toEqual(range(1, 190));
    // pg verify (and drills, which run it) prove production's data, not the copy's.
    const verify = await lb(['pg', 'verify', '--name', 'main', '--latest', '--query', "select count(*) = 200 and max(id) = 200 from t", '--json']);
    expect(verify.code, verify.stdout).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, timeline: 1, warnings: [expect.stringMatching(/^timeline 2 /)] });
    // The copy's own history is still there for whoever asks for it by name.
    const own = await restore(['--latest', '--timeline', '2'], true);
    expect(own.timeline).toBe(2);
    expect(await started(own, ids)).toEqual([...range(1, 160), ...range(800_001, 800_060)]);

    // check names it and keeps its exit code (the stored data is whole).
    const check = await lb(['check']);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stderr).toMatch(/^warning: timeline 2 in the archive of main is not on production's history/m);
    const list = JSON.parse((await lb(['pg', 'timelines', '--name', 'main', '--json'])).stdout) as {
      production: { head: number };
      timelines: Array<{ timeline: number; parent: number | null; branchLsn: string | null; onProduction: boolean; state: string; firstSegment: string; command: string | null }>;
    };
    expect(list.production.head).toBe(1);
    expect(list.timelines.map((t) => [t.timeline, t.parent, t.onProduction, t.state])).toEqual([
      [1, null, true, 'production'],
      [2, 1, false, 'foreign'],
    ]);
    expect(list.timelines[1]!.branchLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(list.timelines[1]!.firstSegment).toMatch(/^00000002/);
    expect(list.timelines[1]!.command).toBe('lifeboat pg timelines --name main --move-aside 2');

    // A base backup taken after the pollution restores and starts (with 'latest' it
    // asked for the copy's timeline and would not start).
    expect((await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn])).code).toBe(0);
    expect(await restoredIds(['--latest'], true)).toEqual(range(1, 200));

    // Moving aside: production's own timeline stays; the copy's moves, nothing lost.
    const refused = await lb(['pg', 'timelines', '--name', 'main', '--move-aside', '1']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/on production's history/);
    const historyBefore = path.join(base, 'history-before');
    expect((await lb(['pg', 'archive-get', '--name', 'main', '00000002.history', historyBefore])).code).toBe(0);
    const moved = await lb(['pg', 'timelines', '--name', 'main', '--move-aside', '2', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    expect(JSON.parse(moved.stdout)).toEqual({ timeline: 2, direction: 'aside', moved: polluted['00000002'] });
    expect(Object.keys(await archiveDirs())).toEqual(['00000001']);
    expect(await archiveDirs('postgres.main~aside')).toEqual({ '00000002': polluted['00000002'] });
    const clean = await lb(['check']);
    expect(clean.code).toBe(0);
    expect(clean.stderr).toBe('');
    const aside = JSON.parse((await lb(['pg', 'timelines', '--name', 'main', '--json'])).stdout) as { aside: unknown[]; warnings: string[] };
    expect(aside).toMatchObject({ aside: [{ timeline: 2, files: polluted['00000002'], command: 'lifeboat pg timelines --name main --move-back 2' }], warnings: [] });
    // Restores ignore it: asked for by name, it is not there.
    const gone = await lb(['pg', 'restore', '--name', 'main', '--target-dir', path.join(base, 'gone'), '--latest', '--timeline', '2']);
    expect(gone.code).toBe(15);
    expect((await restore(['--latest'])).warnings).toEqual([]);

    // And back, byte for byte.
    const back = await lb(['pg', 'timelines', '--name', 'main', '--move-back', '2', '--json']);
    expect(back.code, back.stderr).toBe(0);
    expect((await archiveDirs())['00000002']).toBe(polluted['00000002']);
    expect(await archiveDirs('postgres.main~aside')).toEqual({});
    const historyAfter = path.join(base, 'history-after');
    expect((await lb(['pg', 'archive-get', '--name', 'main', '00000002.history', historyAfter])).code).toBe(0);
    expect((await fs.readFile(historyAfter)).equals(await fs.readFile(historyBefore))).toBe(true);
    expect((await lb(['check'])).stderr).toMatch(/warning: timeline 2 /);
  }, 300_000); // six restores, five server starts and a verify: about 2 minutes on a loaded 2-core machine
});
