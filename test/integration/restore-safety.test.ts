/**
 * File-system safety of restores and backups, attacked the way issue 14 found them
 * open: a process swapping directories of a restore target for symlinks while the
 * restore runs, restores onto existing files, a target below a directory anyone can
 * write, a restore into a filesystem too small for it, files swapped for a symlink or
 * a FIFO while a backup reads them, and a local repository whose tmp/ is a symlink.
 * Everything runs through the built CLI, as an operator would.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readdirSync, lstatSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTmp, expectError, initRepo, pseudoRandom, runCli, tmpdir } from '../helpers.js';
import { forTerminal } from '../../src/util/terminal.js';

afterAll(cleanupTmp);

let base: string;
let repo: string;

const lb = (args: string[], timeoutMs?: number) => runCli([...args, '--repo', repo], {}, timeoutMs ? { timeoutMs } : {});

async function backupOf(dir: string, timeoutMs?: number): Promise<{ code: number; id: string; stderr: string }> {
  const r = await lb(['backup', dir, '--json'], timeoutMs);
  const id = r.stdout.trim() ? (JSON.parse(r.stdout) as { id: string }).id : '';
  return { code: r.code, id, stderr: r.stderr };
}

/** Every entry below `dir`, relative, with regular files' sha256. */
function inventory(dir: string, rel = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(path.join(dir, rel))) {
    const p = path.join(rel, name);
    const st = lstatSync(path.join(dir, p));
    if (st.isDirectory()) for (const [k, v] of inventory(dir, p)) out.set(k, v);
    else out.set(p, st.isFile() ? createHash('sha256').update(readFileSync(path.join(dir, p))).digest('hex') : st.isSymbolicLink() ? 'symlink' : 'other');
  }
  return out;
}

beforeAll(async () => {
  base = tmpdir('lb-fs-safety-');
  repo = path.join(base, 'repo');
  await initRepo(repo);
}, 60_000);

describe('restore targets', () => {
  let src: string;
  let snap: string;

  beforeAll(async () => {
    src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'a.txt'), 'new a');
    await fs.writeFile(path.join(src, 'sub', 'b.txt'), 'new b');
    await fs.writeFile(path.join(src, 'big.bin'), pseudoRandom(3 * 1024 * 1024, 7));
    const b = await backupOf(src);
    expect(b.code, b.stderr).toBe(0);
    snap = b.id;
  }, 60_000);

  it('an existing target, even empty, is refused with exit 21 and left as it was; --overwrite replaces only what the snapshot has', async () => {
    const out = path.join(base, 'existing');
    const inner = path.join(out, src);
    await fs.mkdir(inner, { recursive: true });
    await fs.writeFile(path.join(out, 'keep.txt'), 'mine');
    await fs.writeFile(path.join(inner, 'a.txt'), 'old a');
    expectError(await lb(['restore', snap, '--target', out]), 21, /already exists/);
    expect(await fs.readFile(path.join(inner, 'a.txt'), 'utf8')).toBe('old a');
    expect(existsSync(path.join(inner, 'big.bin'))).toBe(false);

    const empty = path.join(base, 'empty');
    await fs.mkdir(empty);
    expectError(await lb(['restore', snap, '--target', empty]), 21, /already exists/);
    expect(readdirSync(empty)).toEqual([]);

    const r = await lb(['restore', snap, '--target', out, '--overwrite']);
    expect(r.code, r.stderr).toBe(0);
    expect(await fs.readFile(path.join(inner, 'a.txt'), 'utf8')).toBe('new a');
    expect(await fs.readFile(path.join(out, 'keep.txt'), 'utf8')).toBe('mine');
    expect([...inventory(out).keys()].filter((p) => p.includes('.lifeboat-'))).toEqual([]);
  }, 60_000);

  it('--overwrite replaces a directory in the way of a file or a symlink (a new target skips that look-up, issue 19)', async () => {
    const src2 = path.join(base, 'src-in-the-way');
    await fs.mkdir(src2, { recursive: true });
    await fs.writeFile(path.join(src2, 'f.txt'), 'file');
    await fs.symlink('f.txt', path.join(src2, 'ln'));
    const b = await backupOf(src2);
    expect(b.code, b.stderr).toBe(0);
    const out = path.join(base, 'in-the-way');
    const inner = path.join(out, src2);
    await fs.mkdir(path.join(inner, 'f.txt', 'deep'), { recursive: true });
    await fs.writeFile(path.join(inner, 'f.txt', 'deep', 'x'), 'x');
    await fs.mkdir(path.join(inner, 'ln'), { recursive: true });
    const r = await lb(['restore', b.id, '--target', out, '--overwrite']);
    expect(r.code, r.stderr).toBe(0);
    expect(await fs.readFile(path.join(inner, 'f.txt'), 'utf8')).toBe('file');
    expect(lstatSync(path.join(inner, 'ln')).isSymbolicLink()).toBe(true);
    // A new target gets the same result without looking anything up first.
    const fresh = path.join(base, 'in-the-way-new');
    const n = await lb(['restore', b.id, '--target', fresh]);
    expect(n.code, n.stderr).toBe(0);
    expect(inventory(path.join(fresh, src2))).toEqual(inventory(inner));
  }, 60_000);

  it('--delta rewrites a changed file of several blobs (its temporary survives the sweep of extra entries)', async () => {
    const out = path.join(base, 'delta');
    let r = await lb(['restore', snap, '--target', out]);
    expect(r.code, r.stderr).toBe(0);
    await fs.writeFile(path.join(out, src, 'big.bin'), pseudoRandom(3 * 1024 * 1024, 8));
    await fs.writeFile(path.join(out, src, 'extra.txt'), 'not in the snapshot');
    r = await lb(['restore', snap, '--target', out, '--delta']);
    expect(r.code, r.stderr).toBe(0);
    expect(inventory(path.join(out, src))).toEqual(inventory(src));
  }, 60_000);

  it('a target below a directory others can write without the sticky bit is refused (exit 25); with the sticky bit it is fine', async () => {
    const open = path.join(base, 'open');
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    expectError(await lb(['restore', snap, '--target', path.join(open, 'out')]), 25, /writable by others/);
    expect(readdirSync(open)).toEqual([]);
    await fs.chmod(open, 0o1777);
    const r = await lb(['restore', snap, '--target', path.join(open, 'out')]);
    expect(r.code, r.stderr).toBe(0);
    expect(await fs.readFile(path.join(open, 'out', src, 'a.txt'), 'utf8')).toBe('new a');
    // The target itself is created private: nobody else can swap what is inside while it is written.
    expect((await fs.stat(path.join(open, 'out'))).mode & 0o777).toBe(0o700);
  }, 60_000);
});

/**
 * A process that swaps each real directory below `inner` for a symlink to `outside`
 * (moving the directory aside) as soon as it sees one, again and again, until `stop`
 * exists; prints how many swaps it made.
 */
const RACER = `
const fs = require('fs');
const [inner, outside, stop, dirs] = process.argv.slice(1);
let attempts = 0, n = 0;
for (;;) {
  if (n++ % 20 === 0 && fs.existsSync(stop)) break;
  for (let i = 0; i < Number(dirs); i++) {
    const d = inner + '/d' + i;
    try {
      if (!fs.lstatSync(d).isDirectory()) continue;
      fs.renameSync(d, d + '.moved' + n);
      fs.symlinkSync(outside, d);
      attempts++;
    } catch {}
  }
}
process.stdout.write(String(attempts));
`;

// Swaps to reach: 300 by default to keep the suite short; RACE_SWAPS=5000 for a long run.
const SWAPS = Number(process.env.RACE_SWAPS ?? 300);

describe('a restore racing a process that swaps its directories for symlinks', () => {
  it(`never writes outside the target, over ${SWAPS} swaps`, async () => {
    const src = path.join(base, 'race-src');
    const DIRS = 300;
    for (let d = 0; d < DIRS; d++) {
      await fs.mkdir(path.join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 6; f++) await fs.writeFile(path.join(src, `d${d}`, `f${f}`), `file ${d}/${f}\n`);
    }
    const b = await backupOf(src);
    expect(b.code, b.stderr).toBe(0);
    const outside = path.join(base, 'outside');
    await fs.mkdir(outside);
    let attempts = 0;
    const codes: number[] = [];
    // Bounded in time, not rounds: on a loaded machine each round (a CLI start, a key derivation) is slower.
    const until = Date.now() + 420_000;
    for (let round = 0; attempts < SWAPS && Date.now() < until; round++) {
      const target = path.join(base, `race-${round}`);
      const stop = path.join(base, `race-${round}.stop`);
      const racer = spawn(process.execPath, ['-e', RACER, path.join(target, src), outside, stop, String(DIRS)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let said = '';
      racer.stdout.on('data', (d: Buffer) => (said += d.toString()));
      const exited = new Promise<void>((resolve) => racer.on('close', () => resolve()));
      const r = await lb(['restore', b.id, '--target', target]);
      codes.push(r.code);
      await fs.writeFile(stop, '');
      await exited;
      attempts += Number(said) || 0;
      expect(readdirSync(outside), `round ${round}: exit ${r.code}\n${r.stderr}`).toEqual([]);
    }
    // The race was really run: directories swapped while restores wrote.
    expect(attempts, `exit codes ${codes.join(',')}`).toBeGreaterThanOrEqual(SWAPS);
  }, 600_000);
});

describe('a restore into a filesystem too small for it', () => {
  let mnt: string | undefined;
  let skip: string | undefined;

  beforeAll(() => {
    const dir = path.join(base, 'small');
    execFileSync('mkdir', ['-p', dir]);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir], { stdio: 'pipe' });
      mnt = dir;
    } catch (err) {
      skip = `cannot mount a small tmpfs (${(err as Error).message.split('\n')[0]}); this test needs root`;
    }
  });

  afterAll(() => {
    if (mnt) execFileSync('umount', [mnt]);
  });

  it('fails with exit 17, lists what is missing, and leaves no file of full size with wrong content', async (ctx) => {
    if (!mnt) return ctx.skip(skip);
    const src = path.join(base, 'big-src');
    await fs.mkdir(src);
    // 20 MiB in files of one blob and of several, against 8 MiB of space.
    for (let i = 0; i < 10; i++) await fs.writeFile(path.join(src, `f${i}.bin`), pseudoRandom(i % 2 ? 3 * 1024 * 1024 : 700 * 1024, 100 + i));
    await fs.writeFile(path.join(src, 'huge.bin'), pseudoRandom(6 * 1024 * 1024, 99));
    // A stored name that would drive the operator's terminal: listed escaped.
    await fs.writeFile(path.join(src, 'g\u001b[2J\nforged.bin'), pseudoRandom(3 * 1024 * 1024, 98));
    const b = await backupOf(src);
    expect(b.code, b.stderr).toBe(0);
    const want = inventory(src);
    const out = path.join(mnt, 'out');
    const r = await lb(['restore', b.id, '--target', out]);
    expectError(r, 17, /no space left|stopped/);
    expect(r.stderr).toMatch(/^not restored: /m);
    expect(r.stderr).toMatch(/file\(s\) not restored/);
    const got = inventory(path.join(out, src));
    expect(got.size).toBeLessThan(want.size);
    for (const [p, hash] of got) {
      expect(p, 'no temporary file is left behind').not.toMatch(/\.lifeboat-/);
      expect(hash, `${p} is complete and right, or absent`).toBe(want.get(p));
    }
    // Every file the snapshot has and the target lacks is named.
    for (const p of want.keys()) if (!got.has(p)) expect(r.stderr).toContain(`not restored: ${forTerminal(path.join(out, src, p))}`);
    expect(r.stderr).not.toContain('\u001b');
  }, 300_000);
});

/**
 * Swaps each regular file f<i> for a prepared symlink (or FIFO) s<i> and back, by
 * renames, all files at once so each is swapped about half the time, until `stop` exists.
 */
const SWAPPER = `
const fs = require('fs');
const [dir, stop, count] = process.argv.slice(1);
let swaps = 0, n = 0;
const at = (x) => dir + '/' + x;
for (;;) {
  if (n++ % 20 === 0 && fs.existsSync(stop)) break;
  for (let i = 0; i < Number(count); i++) {
    try { fs.renameSync(at('f' + i), at('h' + i)); fs.renameSync(at('s' + i), at('f' + i)); swaps++; } catch {}
  }
  for (let i = 0; i < Number(count); i++) {
    try { fs.renameSync(at('f' + i), at('s' + i)); fs.renameSync(at('h' + i), at('f' + i)); } catch {}
  }
}
process.stdout.write(String(swaps));
`;

describe('a backup of files swapped while it reads them', () => {
  for (const kind of ['symlink', 'fifo'] as const) {
    it(`records a file swapped for a ${kind} as an error for that file (exit 3), never stores what it points to, never hangs`, async () => {
      const dir = path.join(base, `swap-${kind}`);
      await fs.mkdir(dir);
      const secret = path.join(base, `secret-${kind}.txt`);
      await fs.writeFile(secret, 'TOP-SECRET root only\n', { mode: 0o600 });
      const COUNT = 60;
      for (let i = 0; i < COUNT; i++) {
        await fs.writeFile(path.join(dir, `f${i}`), pseudoRandom(32 * 1024, i + 1));
        if (kind === 'symlink') await fs.symlink(secret, path.join(dir, `s${i}`));
        else execFileSync('mkfifo', [path.join(dir, `s${i}`)]);
      }
      const stop = path.join(base, `swap-${kind}.stop`);
      const swapper = spawn(process.execPath, ['-e', SWAPPER, dir, stop, String(COUNT)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<void>((resolve) => swapper.on('close', () => resolve()));
      const ids: string[] = [];
      let caught = 0;
      try {
        for (let round = 0; round < 25 && caught === 0; round++) {
          // An old reader blocked on a FIFO would hang here: the timeout fails the test.
          const b = await backupOf(dir, 60_000);
          expect([0, 3], b.stderr).toContain(b.code);
          if (b.id) ids.push(b.id);
          if (/changed since it was scanned/.test(b.stderr)) {
            expect(b.code).toBe(3);
            caught++;
          }
        }
      } finally {
        await fs.writeFile(stop, '');
        await exited;
      }
      expect(caught, 'the swap was hit at least once').toBeGreaterThan(0);
      for (const [i, id] of ids.entries()) {
        const target = path.join(base, `swap-${kind}-restored-${i}`);
        const r = await lb(['restore', id, '--target', target]);
        expect(r.code, r.stderr).toBe(0);
        for (const [p, hash] of inventory(target)) {
          if (hash === 'symlink' || hash === 'other') continue;
          expect(readFileSync(path.join(target, p), 'utf8').includes('TOP-SECRET'), `${p} holds the secret`).toBe(false);
        }
      }
    }, 600_000);
  }
});

describe('a local repository whose tmp/ is a symlink', () => {
  it('is refused, and nothing where it points is deleted', async () => {
    const r2 = path.join(base, 'repo-tmp');
    await initRepo(r2);
    const victim = path.join(base, 'victim');
    await fs.mkdir(victim);
    const old = path.join(victim, 'precious.txt');
    await fs.writeFile(old, 'keep me');
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    await fs.utimes(old, twoDaysAgo, twoDaysAgo);
    await fs.rm(path.join(r2, 'tmp'), { recursive: true, force: true });
    await fs.symlink(victim, path.join(r2, 'tmp'));
    const data = path.join(base, 'tmp-src');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'x'), 'x');
    const r = await runCli(['backup', data, '--repo', r2]);
    expectError(r, 13, /tmp\/ is a symlink/);
    expect(await fs.readFile(old, 'utf8')).toBe('keep me');
  }, 60_000);
});
