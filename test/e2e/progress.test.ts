/**
 * Progress as a user sees it (docs/progress.md): on a terminal the bar shows a
 * percentage and an ETA and ends at 100%; `--progress json` writes valid JSON lines
 * on stderr, at most 4 a second, monotonic, the last at 100%, for backup, restore,
 * check and copy; `--json` alone leaves stderr as it was. The built CLI runs in a
 * pseudo-terminal made by util-linux `script`.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTmp, initRepo, pseudoRandom, runCli, tmpdir, type CliResult } from '../helpers.js';

afterAll(cleanupTmp);

const FILES = 40;
/** Files the second backup adds. */
const NEW = 24;
const SIZE = 1 << 20;
/** KiB/s: 40 MiB of incompressible data take some 5 s to upload, long enough for several redraws after the scan. */
const SLOW = '8192';

let dir: string;
let src: string;
let repo: string;

beforeAll(async () => {
  dir = tmpdir('lb-progress-');
  src = path.join(dir, 'src');
  repo = path.join(dir, 'repo');
  await fs.mkdir(path.join(src, 'sub'), { recursive: true });
  for (let i = 0; i < FILES; i++) await fs.writeFile(path.join(src, i % 2 ? 'sub' : '', `f${i}`), pseudoRandom(SIZE, i + 1));
  await initRepo(repo);
});

/** Quotes one word for the shell `script -c` runs (paths come from this test only). */
const sh = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;

/** Runs lifeboat ARGS on a pseudo-terminal; returns everything it wrote there (stdout and stderr together) and the exit code. */
function onTerminal(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const cmd = [process.execPath, CLI, ...args].map(sh).join(' ');
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
      env: { ...process.env, LIFEBOAT_PASSWORD: 'test-password', TERM: 'xterm' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 110_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

interface JsonProgress {
  type: string;
  phase: string;
  unit: string;
  files: number;
  bytes: number;
  total_files: number | null;
  total_bytes: number | null;
  percent: number | null;
  rate: number;
  eta_seconds: number | null;
  elapsed_seconds: number;
}

/** The progress lines of stderr, each checked as JSON with every field; and the same rules for all. */
function progressLines(r: CliResult): JsonProgress[] {
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  const events = lines.map((l) => JSON.parse(l) as JsonProgress);
  expect(events.length).toBeGreaterThan(0);
  for (const e of events) {
    expect(e.type).toBe('progress');
    for (const k of ['phase', 'unit', 'files', 'bytes', 'total_files', 'total_bytes', 'percent', 'rate', 'eta_seconds', 'elapsed_seconds']) expect(e, JSON.stringify(e)).toHaveProperty(k);
  }
  // Rate-limited: 250 ms apart at least (elapsed_seconds is rounded to 0.1 s), so at most 4 a second.
  const work = events.filter((e) => e.phase !== 'done');
  for (let i = 1; i < work.length; i++) {
    const [a, b] = [work[i - 1]!, work[i]!];
    if (a.phase === b.phase && a.unit === b.unit) expect(b.elapsed_seconds - a.elapsed_seconds).toBeGreaterThanOrEqual(0.15 - 1e-9);
  }
  // Monotonic within a stage; the last event is the only one at 100%, with the totals done.
  for (let i = 1; i < events.length; i++) {
    const [a, b] = [events[i - 1]!, events[i]!];
    if (b.phase === 'done' || (a.phase === b.phase && a.unit === b.unit)) {
      expect(b.files).toBeGreaterThanOrEqual(a.files);
      expect(b.bytes).toBeGreaterThanOrEqual(a.bytes);
      if (a.percent !== null && b.percent !== null) expect(b.percent).toBeGreaterThanOrEqual(a.percent);
    }
  }
  const last = events.at(-1)!;
  expect(last).toMatchObject({ phase: 'done', percent: 100, eta_seconds: 0, total_files: last.files, total_bytes: last.bytes });
  expect(events.slice(0, -1).every((e) => e.percent !== 100)).toBe(true);
  return events;
}

describe('progress on a terminal', () => {
  it('shows a percentage and an ETA while the backup runs, and ends on a line at 100%', async () => {
    const r = await onTerminal(['-r', repo, '--limit-upload', SLOW, 'backup', src]);
    expect(r.code, r.out).toBe(0);
    const frames = r.out.split(/\r|\n/).map((f) => f.replace(/\x1b\[K/g, '').trim()).filter((f) => f.startsWith('backup '));
    const percents = frames.map((f) => /\] +(\d+)% /.exec(f)?.[1]).filter((p): p is string => p !== undefined).map(Number);
    expect(frames.some((f) => /\] +([1-9]|[1-9]\d)% .*ETA \d+:\d\d$/.test(f)), r.out).toBe(true);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(frames.at(-1), r.out).toMatch(/^backup \[=+\] 100% 40 files 40\.0 MiB .* in \d+:\d\d$/);
    expect(percents.filter((p) => p === 100)).toHaveLength(1);
    expect(r.out).toMatch(/snapshot [0-9a-f]{8} saved: 40 files/);
  });
});

describe('--progress json', () => {
  it('backup: totals from the scan, then percent and ETA, at most 4 lines a second, the last at 100%', async () => {
    // New data to upload: some 3 s at the limit.
    await fs.mkdir(path.join(src, 'new'));
    for (let i = 0; i < NEW; i++) await fs.writeFile(path.join(src, 'new', `n${i}`), pseudoRandom(SIZE, 1000 + i));
    const r = await runCli(['-r', repo, '--progress', 'json', '--limit-upload', SLOW, 'backup', src]);
    const events = progressLines(r);
    expect(events.at(-1)).toMatchObject({ files: FILES + NEW, bytes: (FILES + NEW) * SIZE });
    expect(events.some((e) => e.total_files === FILES + NEW && e.percent !== null && e.percent < 100 && e.eta_seconds !== null)).toBe(true);
    expect(r.stdout).toMatch(/snapshot [0-9a-f]{8} saved/);
  });

  it('restore: the plan\'s totals from the first line', async () => {
    const r = await runCli(['-r', repo, '--progress', 'json', 'restore', 'latest', '-t', path.join(dir, 'out')]);
    const events = progressLines(r);
    const work = events.filter((e) => e.phase === 'restore');
    expect(work.length).toBeGreaterThan(0);
    for (const e of work) expect(e).toMatchObject({ total_files: FILES + NEW, total_bytes: (FILES + NEW) * SIZE, percent: expect.any(Number) });
    // Every file counted once done, whether the workers finished it (one blob) or the restorer (several).
    expect(events.at(-1)).toMatchObject({ files: FILES + NEW, bytes: (FILES + NEW) * SIZE });
  });

  it('check --read-data: index files, snapshots, then packs with bytes', async () => {
    const r = await runCli(['-r', repo, '--progress', 'json', 'check', '--read-data']);
    const events = progressLines(r);
    const units = [...new Set(events.filter((e) => e.phase === 'check').map((e) => e.unit))];
    expect(units).toEqual(['index files', 'snapshots', 'packs']);
    const packs = events.filter((e) => e.unit === 'packs' && e.phase === 'check');
    expect(packs.every((e) => (e.total_bytes ?? 0) > 40 * SIZE && e.total_files !== null)).toBe(true);
    expect(events.at(-1)!.unit).toBe('packs');
  });

  it('copy: totals from the snapshots\' summaries', async () => {
    const other = path.join(dir, 'other');
    await initRepo(other);
    const r = await runCli(['--progress', 'json', 'copy', '--from-repo', repo, '--to-repo', other]);
    const events = progressLines(r);
    // Two snapshots: 40 files, and 64 (the same 40 and 24 new).
    expect(events.filter((e) => e.phase === 'copy').every((e) => e.total_files === 2 * FILES + NEW)).toBe(true);
    expect(events.at(-1)).toMatchObject({ files: 2 * FILES + NEW });
  });

  it('is not on by --json alone: stderr stays empty for scripts that expect it', async () => {
    const r = await runCli(['-r', repo, '--json', 'backup', src]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toHaveProperty('summary');
  });

  it('refuses an unknown mode with a hint', async () => {
    const r = await runCli(['-r', repo, '--progress', 'bars', 'check']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^lifeboat: --progress must be one of auto, json, none/m);
    expect(r.stderr).toMatch(/^ {2}hint: /m);
  });
});
