/**
 * End-to-end safety: kill -9 during backups at random moments leaves a repository that
 * checks clean, and the next backup resumes (reuses the packs already uploaded). Each
 * test drives the real CLI in child processes and checks what a user would check.
 * The rest of the safety tests (corruption, concurrent backups, restores that stay
 * inside their target) are in safety-restore.test.ts, so two workers share them.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, pseudoRandom, tmpdir } from '../helpers.js';
import { MiB, cli, initRepo, dirSize, expectRestoreIdentical, start, sleep, checkJson, listSnapshots } from '../safety-helpers.js';

afterAll(cleanupTmp);

/**
 * ~105 MiB of incompressible files of varied sizes: three above the 8 MiB maximum chunk,
 * a dozen of a few MiB, 1500 small ones in 15 directories, one compressible file and a
 * duplicate (deduplicated in the repository).
 */
async function makeBigSource(dir: string): Promise<{ bytes: number; unique: number }> {
  let total = 0;
  const put = async (rel: string, data: Buffer) => {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fs.writeFile(path.join(dir, rel), data);
    total += data.length;
  };
  const bigSizes = [9.5 * MiB + 11, 12 * MiB + 4097, 16.5 * MiB + 3];
  for (const [i, size] of bigSizes.entries()) await put(`big/huge-${i}.bin`, pseudoRandom(Math.floor(size), 1000 + i));
  for (let i = 0; i < 12; i++) await put(`mid/file-${i}.bin`, pseudoRandom(Math.floor(0.6 * MiB + i * 0.3 * MiB) + i, 2000 + i));
  for (let i = 0; i < 1500; i++) {
    const size = (i * 7919) % (40 * 1024);
    await put(`small/d${i % 15}/f${i}.dat`, pseudoRandom(size, 3000 + i));
  }
  const text = Buffer.from('2026-01-01 INFO something happened, nothing to see here\n'.repeat(40_000));
  await put('text/log.txt', text);
  const copy = pseudoRandom(Math.floor(bigSizes[0] as number), 1000);
  await put('big/huge-0-copy.bin', copy);
  // What must be stored at most once: everything but the duplicate and the (compressible) text.
  return { bytes: total, unique: total - copy.length - text.length };
}

/** The shared ~105 MiB source of test 1 (built once). */
let bigSource: { dir: string; bytes: number; unique: number } | undefined;
async function getBigSource(): Promise<{ dir: string; bytes: number; unique: number }> {
  if (!bigSource) {
    const dir = path.join(tmpdir('lb-big-'), 'src');
    bigSource = { dir, ...(await makeBigSource(dir)) };
  }
  return bigSource;
}

/** Full backup duration on this machine, to place kills inside a run. */
let calibrated: number | undefined;
async function backupDurationMs(src: string): Promise<number> {
  if (calibrated === undefined) {
    const repo = path.join(tmpdir('lb-cal-'), 'repo');
    await initRepo(repo);
    const t0 = Date.now();
    await cli(['backup', '--repo', repo, src, '--json']);
    calibrated = Date.now() - t0;
  }
  return calibrated;
}

// ---- 1. kill -9 ----------------------------------------------------------

describe('kill -9 during backup', () => {
  it('leaves a repository that checks clean after every kill, and a later backup restores exactly', async () => {
    const { dir: src, bytes, unique } = await getBigSource();
    const full = await backupDurationMs(src);
    const repo = path.join(tmpdir('lb-kill-'), 'repo');
    await initRepo(repo);

    // Kill points spread over a run (startup, chunking, uploads, the end), with jitter.
    const fractions = [0.2, 0.35, 0.5, 0.65, 0.8, 0.95];
    const log: string[] = [];
    for (const f of fractions) {
      const delay = Math.max(250, Math.round(full * f * (0.9 + Math.random() * 0.2)));
      const run = start(['backup', '--repo', repo, src, '--json']);
      await Promise.race([sleep(delay), run.done]);
      if (!run.exited()) run.kill();
      const r = await run.done;
      if (r.signal === 'SIGKILL') {
        log.push(`killed after ${delay} ms (data ${(await dirSize(path.join(repo, 'data'))) >> 20} MiB)`);
      } else {
        // The run beat the kill: that is fine, but it must have succeeded.
        expect(r.code, r.stderr).toBe(0);
        log.push(`finished before ${delay} ms`);
      }
      const c = await checkJson(repo, ['--read-data']);
      expect(c.code, `check after kill at ${delay} ms: ${JSON.stringify(c.result.problems)}`).toBe(0);
      expect(c.result.ok).toBe(true);
    }
    console.log(`full backup ${full} ms; ${log.join('; ')}`);

    const fin = await cli(['backup', '--repo', repo, src, '--json']);
    expect(JSON.parse(fin.stdout).summary.totalBytes).toBe(bytes);
    const c = await checkJson(repo, ['--read-data']);
    expect(c.code, JSON.stringify(c.result.problems)).toBe(0);
    expect(c.result.ok).toBe(true);
    expect(c.result.packsRead).toBeGreaterThan(0);
    await expectRestoreIdentical(repo, 'latest', src);
    // Kills must not have made later runs store the data again.
    expect(await dirSize(path.join(repo, 'data'))).toBeLessThan(unique * 1.03 + 4 * MiB);
  }, 240_000);

  it('resumes: after a kill late in a backup, the next backup adds only what was missing', async () => {
    const { dir: src, bytes, unique } = await getBigSource();
    const repo = path.join(tmpdir('lb-resume-'), 'repo');
    await initRepo(repo);
    const data = path.join(repo, 'data');

    // Kill once about 45% of the data is stored in packs (polled, not timed: robust on slow machines).
    const threshold = unique * 0.45;
    let killedAt = -1;
    for (let attempt = 0; attempt < 3 && killedAt < 0; attempt++) {
      const run = start(['backup', '--repo', repo, src, '--json']);
      while (!run.exited()) {
        const size = await dirSize(data);
        if (size >= threshold) {
          run.kill();
          break;
        }
        await sleep(5);
      }
      const r = await run.done;
      if (r.signal === 'SIGKILL' && (await listSnapshots(repo)).length === 0) killedAt = await dirSize(data);
      else {
        // Too fast to catch before its snapshot: start over in a clean repository.
        if (r.signal !== 'SIGKILL') expect(r.code, r.stderr).toBe(0);
        await fs.rm(repo, { recursive: true, force: true });
        await initRepo(repo);
      }
    }
    expect(killedAt, 'could not kill the backup while it ran').toBeGreaterThan(0);
    expect(killedAt).toBeGreaterThanOrEqual(threshold);

    // The packs of the killed run are in the store; check still passes.
    const c1 = await checkJson(repo);
    expect(c1.code, JSON.stringify(c1.result.problems)).toBe(0);

    const r = await cli(['backup', '--repo', repo, src, '--json']);
    const added = JSON.parse(r.stdout).summary.addedBytes as number;
    const after = await dirSize(data);
    console.log(`source ${bytes >> 20} MiB (${unique >> 20} MiB unique); stored before kill ${killedAt >> 20} MiB; resumed backup added ${added >> 20} MiB; data now ${after >> 20} MiB`);
    // Only what was not yet stored is uploaded: the packs of the killed run are reused.
    // (unique*1.03 + 4 MiB bounds one full copy: sealing overhead, trees, the compressed text.)
    const oneCopy = unique * 1.03 + 4 * MiB;
    expect(added).toBeLessThan(oneCopy - killedAt);
    expect(after - killedAt).toBeLessThan(oneCopy - killedAt);
    expect(added).toBeLessThan(unique * 0.6);
    expect(after).toBeLessThan(oneCopy);

    const c2 = await checkJson(repo, ['--read-data']);
    expect(c2.code, JSON.stringify(c2.result.problems)).toBe(0);
    await expectRestoreIdentical(repo, 'latest', src);
  }, 180_000);
});

