/**
 * Helpers for SQLite replication tests: a running `lifeboat sqlite replicate` whose
 * --json events can be awaited, the application fixtures as child processes, restores
 * and row reads. Tests wait for what the replicator proves (a status event whose
 * archivedThrough has passed a moment), never for a guessed number of milliseconds.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { CLI, ROOT, initRepo, runCli, tmpdir } from './helpers.js';

export const ENV = { LIFEBOAT_PASSWORD: 'pw' };
export const APP = path.join(ROOT, 'test', 'fixtures', 'sqlite-app.mjs');

export type Event = Record<string, unknown>;

export async function cli(args: string[]): Promise<string> {
  const r = await runCli(args, ENV);
  if (r.code !== 0) throw new Error(`lifeboat ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return r.stdout;
}

export async function newRepo(prefix = 'lb-sqlite-'): Promise<{ dir: string; repo: string }> {
  const dir = tmpdir(prefix);
  const repo = path.join(dir, 'repo');
  await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
  return { dir, repo };
}

/** A running `lifeboat sqlite replicate`, whose --json events can be awaited. */
export class Replicator {
  readonly events: Event[] = [];
  readonly child: ChildProcess;
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(repo: string, db: string, extra: string[] = [], name = 'app', env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CLI, '-r', repo, '--json', 'sqlite', 'replicate', db, '--name', name, ...extra], {
      env: { ...process.env, ...ENV, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      if (l.startsWith('{"time"')) this.events.push(JSON.parse(l) as Event);
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', resolve));
  }

  of(kind: string): Event[] {
    return this.events.filter((e) => e.kind === kind);
  }

  async until(match: (e: Event) => boolean, what: string, timeoutMs = 60_000): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (this.child.exitCode !== null) throw new Error(`replicator exited ${this.child.exitCode} before ${what}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${what} in ${timeoutMs} ms: ${this.stderr}`);
      await sleep(20);
    }
  }

  async waitFor(kind: string, count = 1, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.of(kind).length < count) {
      if (this.child.exitCode !== null) throw new Error(`replicator exited ${this.child.exitCode}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${kind} event in ${timeoutMs} ms: ${this.stderr}`);
      await sleep(20);
    }
  }

  /** Waits until the replicator proves everything committed up to `ms` is in the repository. */
  async archived(ms: number, timeoutMs = 60_000): Promise<Event> {
    return this.until((e) => e.kind === 'status' && e.healthy === true && typeof e.archivedThrough === 'string' && Date.parse(e.archivedThrough) >= ms, `archivedThrough ≥ ${new Date(ms).toISOString()}`, timeoutMs);
  }

  async stop(): Promise<void> {
    this.child.kill('SIGINT');
    const code = await this.exited;
    if (code !== 0) throw new Error(`replicator exited ${code}: ${this.stderr}`);
  }

  async kill9(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** What an application run (test/fixtures/sqlite-app.mjs) committed, and what it was inside when it died. */
export interface AppRun {
  code: number | null;
  /** Each committed row: its id, the time before its COMMIT (the row's `at`), and when COMMIT returned. */
  committed: Array<{ id: number; at: number; marker: string; doneAt: number }>;
  /** The marker of a commit begun and never finished (the process died inside it). */
  unfinished?: string;
}

export function runApp(db: string, rows: number, opts: { rate?: number; args?: string[]; env?: Record<string, string> } = {}): Promise<AppRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [APP, db, String(rows), String(opts.rate ?? 0), ...(opts.args ?? [])], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const committed: AppRun['committed'] = [];
      let begun: string | undefined;
      for (const line of out.split('\n')) {
        const [word, a, b, c, d] = line.split(' ');
        if (word === 'begin') begun = a;
        if (word === 'done') {
          committed.push({ id: Number(a), at: Number(b), marker: c as string, doneAt: Number(d) });
          begun = undefined;
        }
      }
      if (code !== 0 && !opts.env?.LIFEBOAT_KILL_AT_WAL_SYNC) return reject(new Error(`application exited ${code}: ${err}`));
      resolve({ code, committed, ...(begun ? { unfinished: begun } : {}) });
    });
  });
}

/** The shim that kills a process inside its Nth WAL sync, compiled once per run. */
export function killShim(): string {
  const out = path.join(tmpdir('lb-shim-'), 'kill-in-wal-sync.so');
  const r = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-o', out, path.join(ROOT, 'test', 'fixtures', 'kill-in-wal-sync.c'), '-ldl'], { encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(out)) throw new Error(`gcc could not build the shim: ${r.stderr}`);
  return out;
}

export function appRows(file: string): Array<{ id: number; at: number; marker: string }> {
  const db = new Database(file, { fileMustExist: true });
  try {
    return db.prepare('SELECT id, at, marker FROM app ORDER BY id').all() as Array<{ id: number; at: number; marker: string }>;
  } finally {
    db.close();
  }
}

export async function restoreApp(repo: string, out: string, ...target: string[]): Promise<Array<{ id: number; at: number; marker: string }>> {
  await cli(['-r', repo, 'sqlite', 'restore', 'app', '-o', out, ...target]);
  return appRows(out);
}

/** Every committed row is there with its content, and nothing else. */
export function expectRows(got: Array<{ marker: string }>, committed: Array<{ marker: string }>): void {
  expect(got.map((r) => r.marker).sort()).toEqual(committed.map((r) => r.marker).sort());
}

const PAGE = 4096;

/**
 * Changes the database behind SQLite's back, as a copy over the live file or a tool
 * editing it would: one byte of an old row's padding (written by sqlite-app.mjs), in a
 * table leaf page (type 0x0D) that no frame of the WAL holds, so the live database
 * really changes.
 */
export function flipOldRow(db: string): void {
  const inWal = new Set<number>();
  const wal = readFileSync(`${db}-wal`);
  for (let off = 32; off + 24 + PAGE <= wal.length; off += 24 + PAGE) inWal.add(wal.readUInt32BE(off));
  const fd = openSync(db, 'r+');
  try {
    const image = Buffer.alloc(statSync(db).size);
    readSync(fd, image, 0, image.length, 0);
    const pad = 'p'.repeat(200);
    for (let at = image.indexOf(pad); at >= 0; at = image.indexOf(pad, at + 200)) {
      const pgno = Math.floor(at / PAGE) + 1;
      if (pgno > 1 && !inWal.has(pgno) && image[(pgno - 1) * PAGE] === 0x0d) {
        writeSync(fd, Buffer.from('q'), 0, 1, at);
        return;
      }
    }
    throw new Error('no old row outside the WAL');
  } finally {
    closeSync(fd);
  }
}

/**
 * A SQLite database at `file` (WAL mode) of `rows` rows of 64 KiB incompressible bytes in
 * table t(id, b): a stream backup of it seals every pack on the main thread, whole.
 */
export function incompressibleDatabase(file: string, rows: number): string {
  const conn = new Database(file);
  try {
    conn.pragma('journal_mode = WAL');
    conn.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)');
    const insert = conn.prepare('INSERT INTO t (b) VALUES (randomblob(65536))');
    conn.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run();
    })();
  } finally {
    conn.close();
  }
  return file;
}

