/**
 * Issue 19: chunk workers write their packs to files in a spill directory (in a local
 * repository, inside its tmp/) and the store links them into place. What a killed or
 * failed backup leaves there is never listed as an object, never breaks `check`, and
 * is cleaned up: at once after a failure, after a day (the tmp/ sweep) after a kill.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { listAll } from '../../src/storage/store.js';
import { cleanupTmp, pseudoRandom, runCli, tmpdir } from '../helpers.js';
import { MiB, checkJson, cli, expectRestoreIdentical, initRepo, sleep, start } from '../safety-helpers.js';
import { incompressibleDatabase } from '../sqlite-helpers.js';

afterAll(cleanupTmp);

/** Spill directories in the repository's tmp/, and the pack files in each. */
async function spills(repo: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const tmp = path.join(repo, 'tmp');
  for (const name of await fs.readdir(tmp).catch(() => [] as string[])) {
    if (!name.endsWith('.spill')) continue;
    out.set(name, await fs.readdir(path.join(tmp, name)).catch(() => [] as string[]));
  }
  return out;
}

async function source(): Promise<string> {
  const src = path.join(tmpdir('lb-spill-src-'), 'src');
  await fs.mkdir(src, { recursive: true });
  for (let i = 0; i < 6; i++) await fs.writeFile(path.join(src, `f${i}.bin`), pseudoRandom(12 * MiB + i, 500 + i));
  return src;
}

/**
 * source() and then, walked after the large files, a directory of 4000 small ones: when
 * a pack fails, the walk still has many turns of the event loop to go, with the large
 * files' entries failed and not yet awaited. That once ended the process with an
 * unhandled rejection (exit 1 and a stack trace) instead of the backup's own error.
 */
async function sourceWithLongTail(): Promise<string> {
  const src = await source();
  await fs.mkdir(path.join(src, 'tail'));
  for (let i = 0; i < 4000; i++) await fs.writeFile(path.join(src, 'tail', `s${i}`), `small file ${i}\n`);
  return src;
}

/** A one-line error and its hint, not a crash's stack trace. */
function expectOneLineError(stderr: string): void {
  expect(stderr).toMatch(/^lifeboat: \S/m);
  expect(stderr).toMatch(/^ {2}hint: \S/m);
  expect(stderr).not.toMatch(/^\s+at |Node\.js v/m);
}

describe('packs written to spill files', () => {
  it('a backup killed while a worker writes a pack file: not listed, check passes, swept after a day', async () => {
    const src = await source();
    const repo = path.join(tmpdir('lb-spill-'), 'repo');
    await initRepo(repo);

    let seen: Map<string, string[]> | undefined;
    for (let attempt = 0; attempt < 3 && !seen; attempt++) {
      const run = start(['backup', '--repo', repo, src, '--json']);
      while (!run.exited()) {
        const now = await spills(repo);
        if ([...now.values()].some((files) => files.some((f) => f.endsWith('.tmp')))) {
          run.kill();
          seen = now;
          break;
        }
        await sleep(2);
      }
      const r = await run.done;
      if (r.signal !== 'SIGKILL') {
        expect(r.code, r.stderr).toBe(0);
        seen = undefined;
      }
    }
    expect(seen, 'never saw a pack file being written').toBeDefined();
    const left = await spills(repo);
    expect(left.size, 'the killed run leaves its spill directory').toBeGreaterThan(0);

    // Not objects: no listing shows them, and the repository checks clean.
    const store = new LocalStore(repo);
    expect((await listAll(store, '')).filter((o) => o.key.startsWith('tmp') || o.key.endsWith('.tmp') || o.key.includes('.spill'))).toEqual([]);
    const c = await checkJson(repo, ['--read-data']);
    expect(c.code, JSON.stringify(c.result.problems)).toBe(0);

    // A day later the next backup sweeps it, and that backup restores exactly.
    const twoDaysAgo = (Date.now() - 2 * 86_400_000) / 1000;
    for (const name of left.keys()) await fs.utimes(path.join(repo, 'tmp', name), twoDaysAgo, twoDaysAgo);
    await cli(['backup', '--repo', repo, src, '--json']);
    for (const name of left.keys()) await expect(fs.stat(path.join(repo, 'tmp', name))).rejects.toThrow();
    // A backup that finished leaves no spill directory of its own either.
    expect((await spills(repo)).size).toBe(0);
    const c2 = await checkJson(repo, ['--read-data']);
    expect(c2.code, JSON.stringify(c2.result.problems)).toBe(0);
    await expectRestoreIdentical(repo, 'latest', src);
  }, 180_000);

  /** A repository whose data/ is a plain file: every pack put fails (even as root). */
  async function unstorableRepo(): Promise<string> {
    const repo = path.join(tmpdir('lb-spill-fail-'), 'repo');
    await initRepo(repo);
    await fs.rm(path.join(repo, 'data'), { recursive: true, force: true });
    await fs.writeFile(path.join(repo, 'data'), 'not a directory');
    return repo;
  }

  /** A failed backup's leavings: its own one-line error, and no spill directory or pack file in tmp/. */
  async function expectCleanFailure(repo: string, r: { code: number; stdout: string; stderr: string }): Promise<void> {
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    expectOneLineError(r.stderr);
    expect(await spills(repo)).toEqual(new Map());
    expect((await fs.readdir(path.join(repo, 'tmp'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  }

  /** A 24 MiB tmpfs for the repository, or undefined where mounting is not allowed (not root). */
  function smallDisk(): string | undefined {
    const dir = tmpdir('lb-spill-full-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', dir], { stdio: 'ignore' });
      return dir;
    } catch {
      return undefined;
    }
  }

  /** Runs `args(repo)` against a repository on a small disk: NO_SPACE (17), a clean failure, and `check` passes after. */
  async function expectNoSpace(ctx: TestContext, args: (repo: string) => string[]): Promise<void> {
    const disk = smallDisk();
    if (!disk) return ctx.skip();
    try {
      const repo = path.join(disk, 'repo');
      await initRepo(repo);
      const r = await runCli(args(repo));
      expect(r.code, r.stdout + r.stderr).toBe(17);
      expect(r.stderr).toMatch(/^lifeboat: .*no space left on device/m);
      await expectCleanFailure(repo, r);
      const check = await runCli(['check', '--repo', repo]);
      expect(check.code, check.stdout + check.stderr).toBe(0);
    } finally {
      execFileSync('umount', [disk]);
    }
  }

  it('a backup whose packs cannot be stored fails and leaves no pack file behind', async () => {
    const src = await sourceWithLongTail();
    const repo = await unstorableRepo();
    await expectCleanFailure(repo, await runCli(['backup', '--repo', repo, src]));
  }, 120_000);

  it('a backup that fills the disk while a worker writes a pack fails as NO_SPACE, names no missing pack and leaves no pack file', async (ctx) => {
    const src = await sourceWithLongTail();
    await expectNoSpace(ctx, (repo) => ['backup', '--repo', repo, src]);
  }, 120_000);

  it('a stream backup that fills the disk while the main thread writes a pack fails as NO_SPACE and leaves no pack file', async (ctx) => {
    const db = incompressibleDatabase(path.join(tmpdir('lb-spill-db-'), 'big.db'), 40 * 16);
    await expectNoSpace(ctx, (repo) => ['-r', repo, 'sqlite', 'backup', db]);
  }, 120_000);

  it('a copy into a repository whose disk fills while a pack is written fails as NO_SPACE and leaves no pack file', async (ctx) => {
    const db = incompressibleDatabase(path.join(tmpdir('lb-spill-db-'), 'big.db'), 40 * 16);
    const from = path.join(tmpdir('lb-spill-from-'), 'repo');
    await initRepo(from);
    await cli(['-r', from, 'sqlite', 'backup', db]);
    await expectNoSpace(ctx, (repo) => ['copy', '--from-repo', from, '--to-repo', repo]);
  }, 120_000);

  it('a stream backup whose packs cannot be stored fails with one line and leaves no pack file', async () => {
    const db = incompressibleDatabase(path.join(tmpdir('lb-spill-db-'), 'big.db'), 40 * 16);
    const repo = await unstorableRepo();
    await expectCleanFailure(repo, await runCli(['-r', repo, 'sqlite', 'backup', db]));
  }, 120_000);
});
