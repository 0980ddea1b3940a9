/** Shared test helpers: scratch directories, running the real CLI, building file trees. */
import { spawn } from 'node:child_process';
import { mkdtempSync, promises as fs, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = path.join(ROOT, 'bin', 'lifeboat.js');

const made: string[] = [];

/** A fresh temporary directory, removed by cleanupTmp(). */
export function tmpdir(prefix = 'lb-test-'): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

export function cleanupTmp(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `lifeboat ARGS` as a user would (the built CLI in a child process; `cli`: another copy's bin/lifeboat.js). */
export function runCli(args: string[], env: Record<string, string | undefined> = {}, opts: { timeoutMs?: number; cli?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [opts.cli ?? CLI, ...args], {
      env: { ...process.env, LIFEBOAT_PASSWORD: 'test-password', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 110_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

/**
 * The files a CLI process loaded, from the log of test/fixtures/module-log.mjs (one
 * resolved URL a line), as absolute paths. A file of the bundle (dist/bundle/, made by
 * scripts/bundle.mjs) is listed followed by every module joined into it, as the bundle's
 * metafile names them, so a test can ask "was zod's code loaded" either way.
 */
export function loadedModules(log: string): string[] {
  const bundle = path.join(ROOT, 'dist', 'bundle') + path.sep;
  let meta: { outputs: Record<string, { inputs: Record<string, unknown> }> } | undefined;
  const out: string[] = [];
  for (const url of readFileSync(log, 'utf8').split('\n')) {
    if (!url.startsWith('file:')) continue;
    const file = fileURLToPath(url);
    out.push(file);
    if (!file.startsWith(bundle)) continue;
    meta ??= JSON.parse(readFileSync(path.join(bundle, 'meta.json'), 'utf8')) as NonNullable<typeof meta>;
    const joined = meta.outputs[path.relative(ROOT, file).split(path.sep).join('/')];
    if (!joined) throw new Error(`${file} is not in dist/bundle/meta.json: a bundle older than its metafile?`);
    out.push(...Object.keys(joined.inputs).map((i) => path.join(ROOT, i)));
  }
  return out;
}

/**
 * Creates a repository at `dir` as `lifeboat init -r DIR` does (the same code, in this
 * process): for tests whose subject is not init itself, a child process per repository
 * is start-up time the suite pays hundreds of times.
 */
export async function initRepo(dir: string, password = 'test-password'): Promise<void> {
  const { withStore } = await import('../src/cli/context.js');
  const { Repository } = await import('../src/repo/repository.js');
  await withStore({ repo: dir }, (store) => Repository.init(store, password));
}

/** A row of `lifeboat snapshots --json` (src/cli/commands/snapshots.ts, snapshotJson), as tests read it. */
export interface SnapshotRow {
  id: string;
  short_id: string;
  time: string;
  future: boolean;
  trusted?: false;
  hostname: string;
  username: string;
  paths: string[];
  tags: string[];
  parent: string | null;
  tree: string;
  source: { kind: string; name?: string };
  consistency: unknown;
  total_size: number;
  total_files: number;
  added_size: number;
  summary: Record<string, unknown>;
  program_version: string;
}

/**
 * What `lifeboat snapshots --json -r DIR` prints, parsed (its rows, snapshotJson, made in
 * this process): for tests that list only to learn ids, times or counts, a child process
 * per listing is start-up time the suite pays over a hundred times. `T` is what the caller
 * reads of a row (the parsed JSON is cast to it, as a test's `JSON.parse(...) as T[]` does).
 */
export async function snapshotsJson<T = SnapshotRow>(dir: string, password = 'test-password'): Promise<T[]> {
  const { withStore, writeOnlyRefused } = await import('../src/cli/context.js');
  const { Repository } = await import('../src/repo/repository.js');
  const { snapshotJson } = await import('../src/cli/commands/snapshots.js');
  return withStore({ repo: dir }, async (store) => {
    const repo = await Repository.open(store, password, await Repository.readConfig(store));
    if (repo.role === 'write') throw writeOnlyRefused();
    const now = Date.now();
    // Through JSON, as the CLI prints it: undefined fields go, as they do there.
    return JSON.parse(JSON.stringify((await repo.listSnapshots()).map((s) => snapshotJson(s, now)))) as T[];
  });
}

/** Deterministic pseudo-random bytes (xorshift), so fixtures are the same every run. */
export function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i - (i + 4 > size ? i + 4 - size : 0));
  }
  return out;
}

/**
 * A small tree with every kind of entry a restore must bring back exactly: nested
 * directories, empty files and directories, a file larger than several chunks,
 * symlinks (one dangling), a hard link, odd modes and owners, old times.
 */
export async function makeFixture(dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'docs', 'deep', 'deeper'), { recursive: true });
  await fs.mkdir(path.join(dir, 'empty-dir'));
  await fs.writeFile(path.join(dir, 'hello.txt'), 'hello, lifeboat\n');
  await fs.writeFile(path.join(dir, 'empty.txt'), '');
  await fs.writeFile(path.join(dir, 'docs', 'notes.md'), '# notes\n'.repeat(1000));
  await fs.writeFile(path.join(dir, 'docs', 'deep', 'deeper', 'leaf.bin'), pseudoRandom(70_000, 7));
  await fs.writeFile(path.join(dir, 'big.bin'), pseudoRandom(5 * 1024 * 1024 + 123, 42));
  await fs.symlink('hello.txt', path.join(dir, 'link-to-hello'));
  await fs.symlink('/does/not/exist', path.join(dir, 'dangling'));
  await fs.link(path.join(dir, 'hello.txt'), path.join(dir, 'hard-link.txt'));
  await fs.chmod(path.join(dir, 'docs', 'notes.md'), 0o640);
  await fs.chmod(path.join(dir, 'empty-dir'), 0o750);
  if (process.getuid?.() === 0) await fs.chown(path.join(dir, 'docs', 'notes.md'), 1234, 5678);
  // Microsecond-precise times in the past.
  await fs.utimes(path.join(dir, 'hello.txt'), 1_600_000_000.123456, 1_600_000_001.654321);
  await fs.utimes(path.join(dir, 'docs', 'deep'), 1_500_000_000.5, 1_500_000_000.25);
}

export interface Meta {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeUs: bigint;
  ino: bigint;
  content?: string;
  target?: string;
}

/** Everything restore must reproduce, keyed by relative path (hard links by shared inode). */
export async function snapshotOf(dir: string): Promise<Record<string, Meta>> {
  const out: Record<string, Meta> = {};
  const inodes = new Map<bigint, string>();
  const walk = async (rel: string): Promise<void> => {
    const full = path.join(dir, rel);
    const st = await fs.lstat(full, { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
    const m: Meta = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === 'file' ? Number(st.size) : 0,
      // Directories' times change when entries are added; compare them too, as restore sets them last.
      mtimeUs: st.mtimeNs / 1000n,
      ino: 0n,
    };
    if (type === 'file') {
      const { createHash } = await import('node:crypto');
      m.content = createHash('sha256').update(await fs.readFile(full)).digest('hex');
      if (st.nlink > 1n) {
        const first = inodes.get(st.ino);
        if (first) m.target = `hardlink:${first}`;
        else inodes.set(st.ino, rel);
      }
    }
    if (type === 'symlink') m.target = await fs.readlink(full);
    if (type === 'symlink' && m.mode !== 0o777) m.mode = 0o777;
    delete (m as Partial<Meta>).ino;
    if (m.target === undefined) delete m.target;
    out[rel || '.'] = m;
    if (type === 'dir') for (const name of (await fs.readdir(full)).sort()) await walk(path.join(rel, name));
  };
  await walk('');
  return out;
}

/** Runs the CLI and fails the test, with its output, unless it exits `expectCode`. */
export async function cliExpecting(args: string[], expectCode = 0, env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const r = await runCli(args, env);
  if (r.code !== expectCode) {
    throw new Error(`lifeboat ${args.join(' ')}: exit ${r.code}, expected ${expectCode}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r;
}

/**
 * The error contract: exit code `code`, exactly one `lifeboat: ` line matching `message`,
 * directly followed by a non-empty `  hint: ` line. Returns the hint line.
 */
export function expectError(r: CliResult, code: number, message: RegExp): string {
  const context = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  expect(r.code, context).toBe(code);
  const lines = r.stderr.split('\n');
  const errs = lines.map((l, i) => [l, i] as const).filter(([l]) => l.startsWith('lifeboat: '));
  expect(errs.length, context).toBe(1);
  const [line, at] = errs[0] as readonly [string, number];
  expect(line, context).toMatch(message);
  const hint = lines[at + 1] ?? '';
  expect(hint, context).toMatch(/^ {2}hint: \S/);
  return hint;
}

/** Runs the CLI under /usr/bin/time; resolves with its exit code, stderr and peak RSS in MB. */
export function timedCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stderr: string; peakMB: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', 'peak-rss-kb=%M', process.execPath, CLI, ...args], {
      env: { ...process.env, LIFEBOAT_PASSWORD: 'test-password', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /peak-rss-kb=(\d+)/.exec(stderr);
      resolve({ code: code ?? -1, stderr, peakMB: m ? Number(m[1]) / 1024 : NaN });
    });
  });
}

/** Live processes whose command line names `needle` (a fetcher names its spool). */
export function processesNaming(needle: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((a) => a.includes(needle))) out.push(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
