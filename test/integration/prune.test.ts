/**
 * prune through the real CLI: it reclaims what forgotten snapshots held; it runs while
 * three backups run and every backup succeeds and restores exactly; kill -9 at random
 * points never loses a referenced blob; an append-only client may not prune.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTmp, cliExpecting, expectError, initRepo, pseudoRandom, runCli, snapshotOf, snapshotsJson, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const ENV = { LIFEBOAT_PASSWORD: 'pw' };
const cli = (args: string[], code = 0) => cliExpecting(args, code, ENV);

async function makeData(dir: string, seed: number, files = 4, size = 3 << 20): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++) await fs.writeFile(path.join(dir, `f${i}.bin`), pseudoRandom(size, seed * 100 + i));
}

async function snapshots(repo: string): Promise<Array<{ id: string; paths: string[] }>> {
  return snapshotsJson(repo, ENV.LIFEBOAT_PASSWORD);
}

async function repoBytes(repo: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(path.join(d, e.name));
      else total += (await fs.stat(path.join(d, e.name))).size;
    }
  };
  await walk(repo);
  return total;
}

/** Every snapshot restores to exactly the data it was taken from. */
async function expectRestores(repo: string, sources: Map<string, Record<string, unknown>>): Promise<void> {
  for (const s of await snapshots(repo)) {
    const target = path.join(tmpdir('lb-prune-restore-'), 'out');
    await cli(['-r', repo, 'restore', s.id, '--target', target]);
    const src = s.paths[0] as string;
    expect(await snapshotOf(path.join(target, src))).toEqual(sources.get(`${s.id}`) ?? sources.get(src));
  }
}

describe('lifeboat prune', () => {
  it('reclaims what forgotten snapshots held, on the run after the one that marked it', async () => {
    const dir = tmpdir('lb-prune-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    await makeData(a, 1);
    await makeData(b, 2);
    await cli(['-r', repo, 'backup', a]);
    await cli(['-r', repo, 'backup', b]);
    const before = await repoBytes(repo);
    const old = (await snapshots(repo)).find((s) => s.paths[0] === a) as { id: string };
    await cli(['-r', repo, 'forget', old.id]);
    const first = JSON.parse((await cli(['-r', repo, '--json', 'prune', '--grace', '0'])).stdout) as { retired: number; deleted: number };
    expect(first.retired).toBeGreaterThan(0);
    expect(first.deleted).toBe(0);
    const second = JSON.parse((await cli(['-r', repo, '--json', 'prune', '--grace', '0'])).stdout) as { deleted: number; deletedBytes: number };
    expect(second.deleted).toBe(first.retired);
    expect(await repoBytes(repo)).toBeLessThan(before - (10 << 20));
    expect((await cli(['-r', repo, 'check', '--read-data'])).stdout).toMatch(/no errors/);
    await expectRestores(repo, new Map([[b, await snapshotOf(b)]]));
    // With the default grace, a fresh mark waits.
    const forgot = JSON.parse((await cli(['-r', repo, '--json', 'forget', (await snapshots(repo))[0]!.id, '--prune'])).stdout) as { removed: string[]; prune: { retired: number } };
    expect(forgot.removed).toHaveLength(1);
    const waiting = forgot.prune;
    const later = JSON.parse((await cli(['-r', repo, '--json', 'prune'])).stdout) as { deleted: number; waiting: unknown[] };
    expect(waiting.retired).toBeGreaterThan(0);
    expect(later).toMatchObject({ deleted: 0, waiting: [expect.anything()] });
  });

  it('runs while three backups run: all succeed, check passes, every snapshot restores exactly', async () => {
    const dir = tmpdir('lb-prune-live-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    // Old data to forget, sharing nothing with what the running backups write.
    for (let i = 0; i < 3; i++) {
      await makeData(path.join(dir, `old${i}`), 10 + i, 3);
      await cli(['-r', repo, 'backup', path.join(dir, `old${i}`)]);
    }
    for (const s of await snapshots(repo)) await cli(['-r', repo, 'forget', s.id]);
    await cli(['-r', repo, 'prune', '--grace', '0']); // marks the old data

    const sources = [0, 1, 2].map((i) => path.join(dir, `live${i}`));
    for (const [i, s] of sources.entries()) await makeData(s, 20 + i, 6);
    const backups = sources.map((s) => runCli(['-r', repo, 'backup', s], ENV, { timeoutMs: 120_000 }));
    // Prune rounds while they run: sweeps what was marked, marks again.
    const prunes: string[] = [];
    for (let i = 0; i < 3; i++) {
      await sleep(150);
      prunes.push((await cli(['-r', repo, '--json', 'prune', '--grace', '0'])).stdout);
    }
    for (const r of await Promise.all(backups)) expect(r.code, r.stderr).toBe(0);
    await cli(['-r', repo, 'prune', '--grace', '0']);
    await cli(['-r', repo, 'prune', '--grace', '0']);
    expect((await cli(['-r', repo, 'check', '--read-data'])).stdout).toMatch(/no errors/);
    const expected = new Map<string, Record<string, unknown>>();
    for (const s of sources) expected.set(s, await snapshotOf(s));
    expect(await snapshots(repo)).toHaveLength(3);
    await expectRestores(repo, expected);
    expect(prunes.some((p) => (JSON.parse(p) as { deleted: number }).deleted > 0)).toBe(true);
  });

  it('loses no referenced blob when killed at random points', async () => {
    const dir = tmpdir('lb-prune-kill-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    const keep = path.join(dir, 'keep');
    await makeData(keep, 30, 4);
    await cli(['-r', repo, 'backup', keep]);
    let seed = 7;
    for (let round = 0; round < 4; round++) {
      const junk = path.join(dir, `junk${round}`);
      await makeData(junk, 40 + round, 8, 1 << 20);
      await cli(['-r', repo, 'backup', junk]);
      const s = (await snapshots(repo)).find((x) => x.paths[0] === junk) as { id: string };
      await cli(['-r', repo, 'forget', s.id]);
      for (let attempt = 0; attempt < 3; attempt++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const child = spawn(process.execPath, [CLI, '-r', repo, 'prune', '--grace', '0', '--repack-threshold', '10'], { env: { ...process.env, ...ENV }, stdio: 'ignore' });
        const exited = new Promise((resolve) => child.once('exit', resolve));
        // Somewhere between start-up and the end of a prune of a few packs (about 0.4 s).
        await sleep(120 + (seed % 400));
        child.kill('SIGKILL');
        await exited;
      }
      await cli(['-r', repo, 'unlock']);
      expect((await cli(['-r', repo, 'check', '--read-data'])).stdout).toMatch(/no errors/);
    }
    await cli(['-r', repo, 'prune', '--grace', '0']);
    await cli(['-r', repo, 'prune', '--grace', '0']);
    expect((await cli(['-r', repo, 'check', '--read-data'])).stdout).toMatch(/no errors/);
    await expectRestores(repo, new Map([[keep, await snapshotOf(keep)]]));
  });

  it('is refused to an append-only client', async () => {
    const repo = path.join(tmpdir('lb-prune-ao-'), 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    expectError(await runCli(['-r', repo, '--append-only', 'prune'], ENV), 18, /append-only: .* refuses prune/);
  });
});
