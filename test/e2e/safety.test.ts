/**
 * End-to-end safety: what a user relies on when things go wrong. Each test drives the
 * real CLI in child processes and checks what a user would check: exit codes, the
 * bytes that come back from a restore, and that nothing is written where it must not be.
 *
 *  1. kill -9 during backups at random moments leaves a repository that checks clean,
 *     and the next backup resumes (reuses the packs already uploaded).
 *  2. a flipped byte in a data pack is found by `check --read-data` and refused by
 *     `restore` (no unauthenticated byte is ever written to a restored file).
 *  3. two backups into one repository at the same time both succeed and restore exactly.
 *  4. restore never writes outside its target: not through symlinks planted in the
 *     target, not for tree entries named "..", "../x" or "/x" in a tampered snapshot.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Repository as RepositoryT } from '../../src/repo/repository.js';
import type { TreeNode } from '../../src/repo/snapshot/tree.js';
import { CLI, ROOT, cleanupTmp, makeFixture, pseudoRandom, runCli, snapshotOf, tmpdir, type CliResult, type Meta } from '../helpers.js';

afterAll(cleanupTmp);

const MiB = 1024 * 1024;
const PASSWORD = 'test-password';

// ---- helpers -------------------------------------------------------------

/** Runs the CLI and fails the test with its output when the exit code is not the expected one. */
async function cli(args: string[], expectCode = 0, env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const r = await runCli(args, env);
  if (r.code !== expectCode) {
    throw new Error(`lifeboat ${args.join(' ')}: exit ${r.code}, expected ${expectCode}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r;
}

async function initRepo(dir: string): Promise<void> {
  await cli(['init', '--repo', dir]);
}

/** Total size of the files below dir (0 when it does not exist); tolerant of files appearing meanwhile. */
async function dirSize(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await dirSize(p);
    else if (e.isFile()) total += await fs.stat(p).then((s) => s.size, () => 0);
  }
  return total;
}

/** Entries below dir as sorted relative paths: regular files only, or every entry. */
async function listBelow(dir: string, filesOnly: boolean, rel = ''): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const r = path.join(rel, e.name);
    if (!filesOnly || e.isFile()) out.push(r);
    if (e.isDirectory()) out.push(...(await listBelow(dir, filesOnly, r)));
  }
  return out.sort();
}

const filesBelow = (dir: string) => listBelow(dir, true);
const entriesBelow = (dir: string) => listBelow(dir, false);

/** Content-only view of snapshotOf (type, size, sha256, link target) for byte-identity checks. */
function contentView(s: Record<string, Meta>): Record<string, Pick<Meta, 'type' | 'size' | 'content' | 'target'>> {
  const out: Record<string, Pick<Meta, 'type' | 'size' | 'content' | 'target'>> = {};
  for (const [k, m] of Object.entries(s)) {
    out[k] = { type: m.type, size: m.size, ...(m.content !== undefined ? { content: m.content } : {}), ...(m.target !== undefined ? { target: m.target } : {}) };
  }
  return out;
}

/** Restores `ref` into a fresh target and asserts the tree below it equals `src` exactly. */
async function expectRestoreIdentical(repo: string, ref: string, src: string): Promise<void> {
  const out = path.join(tmpdir('lb-out-'), 'target');
  await cli(['restore', '--repo', repo, ref, '--target', out]);
  const want = await snapshotOf(src);
  const got = await snapshotOf(path.join(out, src));
  // Bytes first (the failure message then says which file differs), then all metadata.
  expect(contentView(got)).toEqual(contentView(want));
  expect(got).toEqual(want);
}

interface Spawned {
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  kill(): void;
  exited(): boolean;
}

/** Starts the CLI without waiting, so a test can kill it. */
function start(args: string[]): Spawned {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, LIFEBOAT_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exited = true;
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { done, kill: () => void child.kill('SIGKILL'), exited: () => exited || child.exitCode !== null };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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

async function checkJson(repo: string, extra: string[] = []): Promise<{ code: number; result: { ok: boolean; problems: unknown[]; unindexedPacks: number; packsRead: number } }> {
  const r = await runCli(['check', '--repo', repo, '--json', ...extra]);
  let result;
  try {
    result = JSON.parse(r.stdout);
  } catch {
    throw new Error(`check printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, result };
}

async function listSnapshots(repo: string): Promise<Array<{ id: string; paths: string[]; time: string; tree: string; tags: string[] }>> {
  const r = await cli(['snapshots', '--repo', repo, '--json']);
  return JSON.parse(r.stdout);
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

// ---- 2. corrupted pack ---------------------------------------------------

describe('a flipped byte in a data pack', () => {
  it('is reported by check --read-data (naming the pack) and refused by restore without writing wrong bytes', async () => {
    const base = tmpdir('lb-flip-');
    const src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    // Several multi-chunk files and many one-chunk files, ~14 MiB in all.
    for (let i = 0; i < 4; i++) await fs.writeFile(path.join(src, `multi-${i}.bin`), pseudoRandom(2 * MiB + i * 333_333, 50 + i));
    for (let i = 0; i < 20; i++) await fs.writeFile(path.join(src, 'sub', `one-${i}.bin`), pseudoRandom(100_000 + i * 7_001, 70 + i));
    await fs.writeFile(path.join(src, 'hello.txt'), 'hello\n');
    const repo = path.join(base, 'repo');
    await initRepo(repo);
    await cli(['backup', '--repo', repo, src]);
    await cli(['check', '--repo', repo, '--read-data']);

    // The largest pack holds data (tree packs are tiny); flip one byte in the middle of its blobs.
    const packs: Array<{ file: string; size: number }> = [];
    for (const f of await filesBelow(path.join(repo, 'data'))) {
      const file = path.join(repo, 'data', f);
      packs.push({ file, size: (await fs.stat(file)).size });
    }
    packs.sort((a, b) => b.size - a.size);
    const victim = packs[0] as { file: string; size: number };
    expect(victim.size).toBeGreaterThan(1 * MiB);
    const packId = path.basename(victim.file);
    const bytes = await fs.readFile(victim.file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x40;
    await fs.writeFile(victim.file, bytes);

    const chk = await runCli(['check', '--repo', repo, '--read-data']);
    expect(chk.code, chk.stdout + chk.stderr).toBe(13);
    expect(chk.stdout + chk.stderr).toContain(packId);
    expect(chk.stderr).toMatch(/^lifeboat: .+\n {2}hint: .+\n$/);

    const out = path.join(base, 'out');
    const rs = await runCli(['restore', '--repo', repo, 'latest', '--target', out]);
    expect(rs.code, rs.stdout + rs.stderr).toBe(13);
    expect(rs.stderr).toMatch(/^lifeboat: .*(failed authentication|does not match|damaged|corrupt).*\n {2}hint: \S.*\n$/m);
    expect(rs.stderr.match(/^lifeboat: /gm)).toHaveLength(1);
    expect(rs.stderr).toContain(packId);

    // What was written must be the source's bytes. A file pre-created at full size and
    // not completely filled is allowed to hold zeros (holes) where the damaged blob was
    // not written; any other difference is an unauthenticated byte that reached disk.
    const restoredRoot = path.join(out, src);
    const restored = await filesBelow(restoredRoot);
    const sources = await filesBelow(src);
    let incomplete = 0;
    for (const rel of sources) if (!restored.includes(rel)) incomplete++;
    for (const rel of restored) {
      expect(sources, `restore created ${rel}, which is not in the source`).toContain(rel);
      const want = await fs.readFile(path.join(src, rel));
      const got = await fs.readFile(path.join(restoredRoot, rel));
      if (got.equals(want)) continue;
      incomplete++;
      expect(got.length, `${rel} is longer than the source`).toBeLessThanOrEqual(want.length);
      let wrong = 0;
      let firstWrong = -1;
      for (let i = 0; i < got.length; i++) {
        if (got[i] !== 0 && got[i] !== want[i]) {
          wrong++;
          if (firstWrong < 0) firstWrong = i;
        }
      }
      expect(wrong, `${rel}: ${wrong} bytes differ from the source (first at ${firstWrong})`).toBe(0);
    }
    console.log(`damaged pack ${packId.slice(0, 12)}: ${restored.length} of ${sources.length} files written, ${incomplete} incomplete or missing`);
    // The damaged blob's file cannot have come back whole.
    expect(incomplete).toBeGreaterThan(0);
    // Nothing was written beside the target.
    expect(await fs.readdir(base)).toEqual(expect.arrayContaining(['out', 'repo', 'src']));
    expect((await fs.readdir(base)).length).toBe(3);
  }, 60_000);
});

// ---- 3. concurrent backups -------------------------------------------------

describe('two backups at once into one repository', () => {
  it('both succeed, both are listed, both restore exactly, and check passes', async () => {
    const base = tmpdir('lb-conc-');
    const srcA = path.join(base, 'src-a');
    const srcB = path.join(base, 'src-b');
    for (const [dir, seed] of [[srcA, 100], [srcB, 200]] as const) {
      await makeFixture(dir);
      await fs.mkdir(path.join(dir, 'many'));
      for (let i = 0; i < 300; i++) await fs.writeFile(path.join(dir, 'many', `f${i}`), pseudoRandom(1000 + ((i * 4099) % 60_000), seed + i));
      for (let i = 0; i < 3; i++) await fs.writeFile(path.join(dir, `large-${i}.bin`), pseudoRandom(7 * MiB + i * 12345, seed * 10 + i));
      // The same content in both: each run may or may not see the other's copy.
      await fs.writeFile(path.join(dir, 'shared.bin'), pseudoRandom(3 * MiB, 999));
    }
    const repo = path.join(base, 'repo');
    await initRepo(repo);

    for (let round = 0; round < 2; round++) {
      if (round === 1) {
        // Change both sources and go again (now with parents and half-known data).
        await fs.writeFile(path.join(srcA, 'round2.bin'), pseudoRandom(5 * MiB, 31));
        await fs.writeFile(path.join(srcB, 'round2.bin'), pseudoRandom(5 * MiB, 32));
      }
      const [a, b] = await Promise.all([
        runCli(['backup', '--repo', repo, srcA, '--json', '--tag', `a${round}`]),
        runCli(['backup', '--repo', repo, srcB, '--json', '--tag', `b${round}`]),
      ]);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      const idA = JSON.parse(a.stdout).id as string;
      const idB = JSON.parse(b.stdout).id as string;
      const snaps = await listSnapshots(repo);
      expect(snaps).toHaveLength(2 * (round + 1));
      expect(snaps.find((s) => s.id === idA)?.paths).toEqual([srcA]);
      expect(snaps.find((s) => s.id === idB)?.paths).toEqual([srcB]);
      await expectRestoreIdentical(repo, idA, srcA);
      await expectRestoreIdentical(repo, idB, srcB);
    }
    const c = await checkJson(repo, ['--read-data']);
    expect(c.code, JSON.stringify(c.result.problems)).toBe(0);
    expect(c.result.ok).toBe(true);
  }, 120_000);
});

// ---- restore's own report ---------------------------------------------------

describe('restore reports what it wrote', () => {
  it('restore --json counts every file byte written (a user checks this against the source size)', async () => {
    const base = tmpdir('lb-count-');
    const src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'small'), { recursive: true });
    let total = 0;
    for (let i = 0; i < 6; i++) {
      const data = pseudoRandom(5 * MiB + i * 1001, 400 + i);
      await fs.writeFile(path.join(src, `f${i}.bin`), data);
      total += data.length;
    }
    for (let i = 0; i < 200; i++) {
      const data = pseudoRandom(3000 + i * 37, 600 + i);
      await fs.writeFile(path.join(src, 'small', `s${i}`), data);
      total += data.length;
    }
    const repo = path.join(base, 'repo');
    await initRepo(repo);
    await cli(['backup', '--repo', repo, src]);
    const out = path.join(base, 'out');
    const r = await cli(['restore', '--repo', repo, 'latest', '--target', out, '--json']);
    const report = JSON.parse(r.stdout) as { files: number; bytes: number; errors: unknown[] };
    expect(await snapshotOf(path.join(out, src))).toEqual(await snapshotOf(src));
    expect(report.errors).toEqual([]);
    expect(report.files).toBe(206);
    expect(report.bytes).toBe(total);
  }, 60_000);
});

// ---- 4. restore stays inside its target -------------------------------------

describe('restore never writes outside the target', () => {
  it('does not follow symlinks planted in the target (directories on the way, directories, files)', async () => {
    const base = tmpdir('lb-plant-');
    const src = path.join(base, 'src');
    await makeFixture(src);
    const repo = path.join(base, 'repo');
    await initRepo(repo);
    await cli(['backup', '--repo', repo, src]);
    const firstComponent = src.split(path.sep)[1] as string; // "tmp"

    // (a) TARGET/tmp is a symlink to another directory.
    const elsewhere = path.join(base, 'elsewhere');
    await fs.mkdir(elsewhere);
    const out1 = path.join(base, 'out1');
    await fs.mkdir(out1);
    await fs.symlink(elsewhere, path.join(out1, firstComponent));
    // An existing target is refused; --overwrite restores into it (planted links and all).
    expect((await runCli(['restore', '--repo', repo, 'latest', '--target', out1])).code).toBe(21);
    const r1 = await runCli(['restore', '--repo', repo, 'latest', '--target', out1, '--overwrite']);
    expect(r1.code, r1.stderr).toBe(0);
    expect(await fs.readdir(elsewhere)).toEqual([]);
    expect((await fs.lstat(path.join(out1, firstComponent))).isDirectory()).toBe(true);
    expect(await snapshotOf(path.join(out1, src))).toEqual(await snapshotOf(src));

    // (b) deeper: a restored directory and restored files are symlinks to outside files.
    const outside = path.join(base, 'outside');
    await fs.mkdir(outside);
    await fs.writeFile(path.join(outside, 'victim.txt'), 'do not overwrite\n');
    await fs.writeFile(path.join(outside, 'victim-big.bin'), 'do not overwrite either\n');
    await fs.writeFile(path.join(outside, 'victim-empty.txt'), 'keep me\n');
    const out2 = path.join(base, 'out2');
    const dest = path.join(out2, src);
    await fs.mkdir(dest, { recursive: true });
    await fs.symlink(outside, path.join(dest, 'docs')); // a directory
    await fs.symlink(path.join(outside, 'victim.txt'), path.join(dest, 'hello.txt')); // one-blob file + hard link
    await fs.symlink(path.join(outside, 'victim-big.bin'), path.join(dest, 'big.bin')); // multi-blob file
    await fs.symlink(path.join(outside, 'victim-empty.txt'), path.join(dest, 'empty.txt')); // empty file
    const before = await snapshotOf(outside);
    const r2 = await runCli(['restore', '--repo', repo, 'latest', '--target', out2, '--overwrite']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(await snapshotOf(outside)).toEqual(before);
    expect(await snapshotOf(dest)).toEqual(await snapshotOf(src));
  }, 60_000);

  it('refuses a tampered snapshot whose tree names "..", "../../x" or "/x" (exit 13, nothing outside the target)', async () => {
    const base = tmpdir('lb-tamper-');
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'ok.txt'), 'fine\n');
    const repoDir = path.join(base, 'repo');
    await initRepo(repoDir);
    await cli(['backup', '--repo', repoDir, src]);

    const { Repository } = (await import(path.join(ROOT, 'dist/repo/repository.js'))) as { Repository: typeof RepositoryT };
    const { LocalStore } = (await import(path.join(ROOT, 'dist/storage/local/local-store.js'))) as {
      LocalStore: new (root: string) => { close(): Promise<void> };
    };
    const { BLOB_DATA } = (await import(path.join(ROOT, 'dist/repo/format.js'))) as { BLOB_DATA: 0 };

    // Unique names, so a write at "/<tag>" or next to the target is unmistakable.
    const tag = `lb-escape-${randomBytes(6).toString('hex')}`;
    const store = new LocalStore(repoDir);
    const ids: Record<string, string> = {};
    try {
      const repo = await Repository.open(store as never, PASSWORD);
      await repo.loadIndex();
      const [existing] = await repo.listSnapshots();
      expect(existing).toBeDefined();
      const w = repo.newPackWriter();
      const payload = Buffer.from('ESCAPED\n');
      const blob = (await w.addPlain(BLOB_DATA, payload)).toString('hex');
      const file = (name: string): TreeNode => ({
        name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', atime: '0', ctime: '0', inode: '1', dev: '1', nlink: 1, size: payload.length, content: [blob],
      });
      const dir = (name: string, subtree: string): TreeNode => ({
        name, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: '0', atime: '0', ctime: '0', inode: '2', dev: '1', nlink: 2, subtree,
      });
      const inner = await repo.saveTree(w, { nodes: [file(tag)] });
      const cases: Record<string, TreeNode[]> = {
        'file named ..': [file('..'), file('aaa-ok.txt')],
        'dir named .. holding a file': [dir('..', inner), file('aaa-ok.txt')],
        'file named ../../<tag>': [file(`../../${tag}`)],
        'dir named ../.. holding a file': [dir('../..', inner)],
        'file named /<tag>': [file(`/${tag}`)],
        'dir named /tmp holding a file': [dir('/tmp', inner)],
        'file named .': [file('.')],
        'a nested dir with a file named ..': [dir('nested', await repo.saveTree(w, { nodes: [file('..')] }))],
        'a nested dir with a file named ../../../<tag>': [dir('nested', await repo.saveTree(w, { nodes: [file(`../../../${tag}`)] }))],
      };
      for (const [what, nodes] of Object.entries(cases)) {
        const tree = await repo.saveTree(w, { nodes });
        const { id: _id, ...manifest } = existing as NonNullable<typeof existing>;
        ids[what] = await repo.saveSnapshot({ ...manifest, tree, tags: [what] });
      }
      await w.flush();
    } finally {
      await store.close();
    }

    // The target lies three levels below base, so "..", "../.." and "../../.." all land in base.
    const beforeBase = await entriesBelow(base);
    for (const [what, id] of Object.entries(ids)) {
      // A new target each time: targets must not exist (a failed restore leaves the one it made).
      const target = path.join(base, 'x', 'y', `target-${Object.keys(ids).indexOf(what)}`);
      const r = await runCli(['restore', '--repo', repoDir, id, '--target', target]);
      expect(r.code, `${what}: ${r.stdout}${r.stderr}`).toBe(13);
      expect(r.stderr, what).toMatch(/^lifeboat: .*refus.*$/m);
      expect(r.stderr, what).toMatch(/^ {2}hint: /m);
      expect(existsSync(`/${tag}`), what).toBe(false);
      expect(existsSync(path.join('/tmp', tag)), what).toBe(false);
      const now = (await entriesBelow(base)).filter((p) => !p.startsWith(`x${path.sep}y${path.sep}target`) && !p.startsWith(`repo${path.sep}`));
      const was = beforeBase.filter((p) => !p.startsWith(`repo${path.sep}`));
      expect(now.filter((p) => !was.includes(p) && p !== 'x' && p !== path.join('x', 'y')), what).toEqual([]);
      // Nothing named by the tampered tree came to exist anywhere we can see.
      const inTarget = await entriesBelow(target);
      expect(inTarget.filter((p) => p.includes(tag)), what).toEqual([]);
    }
    // The repository itself is unharmed: the real snapshot still restores.
    const good = path.join(base, 'good');
    const real = (await listSnapshots(repoDir)).filter((s) => s.tags.length === 0);
    expect(real).toHaveLength(1);
    await cli(['restore', '--repo', repoDir, real[0]!.id, '--target', good]);
    expect(await fs.readFile(path.join(good, src, 'ok.txt'), 'utf8')).toBe('fine\n');
  }, 60_000);
});
