/**
 * SQLite replication while the *other* side misbehaves: the application exits and
 * restarts, a writer dies inside COMMIT, a writer reconnects all the time, something
 * changes the database file behind SQLite's back, the WAL is deleted. Every test ends
 * by checking what the replicator claimed (a status event's archivedThrough) against
 * what a restore gives back, row by row.
 */
import { existsSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, runCli, tmpdir } from '../helpers.js';
import { startS3rver } from '../s3rver.js';
import { Replicator, appRows, expectRows, flipOldRow, killShim, newRepo, restoreApp, runApp } from '../sqlite-helpers.js';

afterAll(cleanupTmp);

/** Whether process `pid` holds a POSIX lock on the file (from /proc/locks). */
function holdsLock(pid: number, file: string): boolean {
  const ino = statSync(file).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .some((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === 'POSIX' && Number(f[4]) === pid && Number((f[5] ?? '').split(':')[2]) === ino;
    });
}

const FULL = ['--synchronous', 'FULL', '--no-autocheckpoint'];
describe('sqlite replicate while the application misbehaves', () => {
  it('keeps every row when the application exits cleanly and restarts, twice', async () => {
    const { dir, repo } = await newRepo();
    const db = path.join(dir, 'app.db');
    const runs = [await runApp(db, 50)];
    const rep = new Replicator(repo, db, ['--checkpoint-frames', '100']);
    await rep.waitFor('snapshot');
    for (let i = 0; i < 3; i++) {
      // Each run opens the database, writes, and closes its last connection: SQLite's
      // "last connection" checkpoint-and-delete must not happen while we replicate.
      runs.push(await runApp(db, 300, { rate: 1000 }));
      expect(holdsLock(rep.child.pid as number, db)).toBe(true);
      expect(existsSync(`${db}-wal`)).toBe(true);
    }
    const committed = runs.flatMap((r) => r.committed);
    const claimed = await rep.archived(Date.now());
    expect(claimed.generation).toBe(rep.of('generation')[0]?.generation);
    expectRows(await restoreApp(repo, path.join(dir, 'latest.db'), '--latest'), committed);
    expectRows(appRows(db), committed);
    await rep.stop();
    expect(rep.of('generation').map((e) => e.reason)).toEqual(['first']);
  });

  it('never ships a transaction whose writer died inside COMMIT, and carries on', async () => {
    const { dir, repo } = await newRepo();
    const db = path.join(dir, 'app.db');
    const shim = killShim();
    const before = await runApp(db, 20, { args: FULL });
    // No checkpoint (so no WAL restart, whose header sync would count) until the crash.
    const rep = new Replicator(repo, db, ['--checkpoint-frames', '100000']);
    await rep.waitFor('snapshot');
    const crashed = await runApp(db, 1000, { rate: 300, args: FULL, env: { LD_PRELOAD: shim, LIFEBOAT_KILL_AT_WAL_SYNC: '150' } });
    expect(crashed.code).not.toBe(0);
    const phantom = crashed.unfinished as string;
    expect(phantom).toBeDefined();
    // The scenario is real: its frames are in the WAL file, and SQLite never committed them.
    expect(readFileSync(`${db}-wal`).includes(Buffer.from(phantom))).toBe(true);
    expect(appRows(db).some((r) => r.marker === phantom)).toBe(false);
    const crashAt = Date.now();
    // The replicator has looked at the WAL since the crash; only then does the next writer overwrite those frames.
    // A transaction's time is when the replicator saw it (docs/sqlite.md, "Timing"): on a loaded machine the
    // crashed writer's last commits may be seen after crashAt, so the first moment restored is the status that
    // proved everything up to crashAt shipped (the suite once restored 165 of 168 rows at crashAt itself).
    const proven = Date.parse((await rep.archived(crashAt)).time as string);
    const after = await runApp(db, 300, { rate: 300, args: FULL });
    const committed = [...before.committed, ...crashed.committed, ...after.committed];
    await rep.archived(Date.now());
    for (const [i, at] of [proven, proven + 200, (after.committed[100] as { at: number }).at].entries()) {
      const got = await restoreApp(repo, path.join(dir, `at-${i}.db`), '--time', new Date(at).toISOString());
      expect(got.some((r) => r.marker === phantom)).toBe(false);
      expectRows(got, committed.slice(0, got.length));
      expect(got.length).toBeGreaterThanOrEqual(before.committed.length + crashed.committed.length);
    }
    expectRows(await restoreApp(repo, path.join(dir, 'latest.db'), '--latest'), committed);
    await rep.stop();
    expect(rep.of('generation').map((e) => e.reason)).toEqual(['first']);
  });

  it('keeps one generation while a writer reconnects every 50 commits for 30 s', async () => {
    const { dir, repo } = await newRepo();
    const db = path.join(dir, 'app.db');
    const first = await runApp(db, 10);
    // A small threshold: the WAL restarts often, each time from a connection that never restarted it before.
    const rep = new Replicator(repo, db, ['--checkpoint-frames', '100']);
    await rep.waitFor('snapshot');
    const run = await runApp(db, 6000, { rate: 200, args: ['--reconnect-every', '50'] });
    await rep.archived(Date.now());
    await rep.stop();
    expect(rep.of('checkpoint').filter((e) => e.complete === true).length).toBeGreaterThan(5);
    expect(rep.of('generation').map((e) => e.reason)).toEqual(['first']);
    expect(rep.of('snapshot')).toHaveLength(1);
    expectRows(await restoreApp(repo, path.join(dir, 'latest.db'), '--latest'), [...first.committed, ...run.committed]);
  });

  it('finds a change made behind SQLite\'s back, retires the generation and starts a new one', async () => {
    const { dir, repo } = await newRepo();
    const db = path.join(dir, 'app.db');
    const old = await runApp(db, 300);
    const rep = new Replicator(repo, db, ['--checkpoint-frames', '5', '--verify-interval', '300ms']);
    await rep.waitFor('verified');
    const recent = await runApp(db, 20);
    await rep.archived(Date.now());
    await rep.waitFor('verified', rep.of('verified').length + 1);
    const verifiedBefore = Date.now();
    flipOldRow(db);
    const diverged = await rep.until((e) => e.kind === 'diverged', 'a diverged event');
    await rep.until((e) => e.kind === 'status' && e.healthy === false && String(e.error).includes('no longer reproduces'), 'an unhealthy status');
    await rep.until((e) => e.kind === 'generation' && e.reason === 'diverged', 'a new generation');
    await rep.waitFor('snapshot', 2);
    await rep.archived(Date.now());
    await rep.stop();
    expect(existsSync(path.join(repo, 'logs', 'sqlite.app', String(diverged.generation), 'diverged'))).toBe(true);
    // The new generation holds the file as it is now; the old one stops where it was verified.
    const latest = await restoreApp(repo, path.join(dir, 'latest.db'), '--latest');
    expectRows(latest, [...old.committed, ...recent.committed]);
    const fromOld = await restoreApp(repo, path.join(dir, 'old.db'), '--time', new Date(verifiedBefore).toISOString());
    expectRows(fromOld, [...old.committed, ...recent.committed]);
    const pad = (f: string) => readFileSync(f).includes(Buffer.from(`q${'p'.repeat(199)}`));
    expect(pad(path.join(dir, 'latest.db'))).toBe(true);
    expect(pad(path.join(dir, 'old.db'))).toBe(false);
  });

  it('notices a deleted WAL at once and starts a new generation', async () => {
    const { dir, repo } = await newRepo();
    const db = path.join(dir, 'app.db');
    const first = await runApp(db, 50);
    const rep = new Replicator(repo, db);
    await rep.waitFor('snapshot');
    await rep.archived(Date.now());
    unlinkSync(`${db}-wal`);
    await rep.until((e) => e.kind === 'generation' && e.reason === 'wal-replaced', 'a wal-replaced generation');
    await rep.waitFor('snapshot', 2);
    const second = await runApp(db, 50);
    await rep.archived(Date.now());
    await rep.stop();
    expectRows(await restoreApp(repo, path.join(dir, 'latest.db'), '--latest'), [...first.committed, ...second.committed]);
  });

  it('says so at once when the repository is unreachable, claims nothing while it is, and catches up after', async () => {
    const s3 = await startS3rver();
    await s3.createBucket('lifeboat');
    const dir = tmpdir('lb-sqlite-s3-');
    const repo = `s3:${s3.endpoint}/lifeboat/main`;
    // The machine's CA bundle would make the SDK refuse s3rver's plain http; two tries make a failure quick.
    const env = { LIFEBOAT_PASSWORD: 'pw', AWS_CA_BUNDLE: '', LIFEBOAT_STORE_RETRIES: '2' };
    const db = path.join(dir, 'app.db');
    const init = await runCli(['init', '-r', repo], env);
    expect(init.code, init.stderr).toBe(0);
    const first = await runApp(db, 50);
    const rep = new Replicator(repo, db, [], 'app', env);
    await rep.archived(Date.now());
    await s3.stop();
    const during = await runApp(db, 100, { rate: 200 });
    // A claim covers commits that returned by its moment; one that began before it may finish after.
    const firstDuring = (during.committed[0] as { doneAt: number }).doneAt;
    const down = await rep.until((e) => e.kind === 'status' && e.healthy === false, 'an unhealthy status');
    expect(String(down.error)).toMatch(/shipping failed/);
    const back = await startS3rver({ directory: s3.directory, port: s3.port });
    const upAt = Date.now();
    await rep.archived(Date.now());
    await rep.stop();
    await back.stop();
    // While the store was down, no status claimed anything committed after it went down.
    const claims = rep.of('status').filter((e) => typeof e.archivedThrough === 'string' && Date.parse(e.archivedThrough) >= firstDuring);
    expect(claims.every((e) => Date.parse(String(e.time)) >= upAt)).toBe(true);
    const restarted = await startS3rver({ directory: s3.directory, port: s3.port });
    try {
      const out = path.join(dir, 'latest.db');
      const r = await runCli(['-r', repo, 'sqlite', 'restore', 'app', '-o', out, '--latest'], env);
      expect(r.code, r.stderr).toBe(0);
      expectRows(appRows(out), [...first.committed, ...during.committed]);
    } finally {
      await restarted.stop();
    }
  });
});
