/**
 * End-to-end bad input for `lifeboat sqlite backup | replicate | restore`, on real
 * SQLite files through the real CLI: a missing file, a file that is not a database, a
 * database locked by another process, a rollback-journal database (refused by
 * replicate without --enable-wal; switched, replicated and restored with it; backed up
 * as it is), restore targets that already exist (also only as `-wal`), bad or too early
 * --time, unknown names and tables, selective restore of tables joined by foreign keys,
 * names given with their extension, and a wrong repository password.
 *
 * Each error case checks what a user sees (the exit code of docs/exit-codes.md, one
 * `lifeboat: ...` line and a `  hint: ...` line on stderr) and that neither the
 * database nor the repository nor an existing target was changed by the attempt.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, cleanupTmp, initRepo, pseudoRandom, runCli, snapshotsJson, tmpdir, type CliResult, cliExpecting, expectError } from '../helpers.js';

afterAll(cleanupTmp);

const ENV = { LIFEBOAT_PASSWORD: 'pw' };

// ---- helpers -------------------------------------------------------------

function cli(args: string[], expectCode = 0, env: Record<string, string | undefined> = ENV): Promise<CliResult> {
  return cliExpecting(args, expectCode, env);
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** sha256 of every stored object except locks and temporary files: what must not change. */
async function fingerprint(repo: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(repo, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (['locks', 'tmp'].includes(r)) continue;
      if (e.isDirectory()) await walk(r);
      else out[r] = sha256(path.join(repo, r));
    }
  };
  await walk('');
  return out;
}

type Snap = { id: string; time: string; source: { kind: string; name?: string } };
const snapshotsOf = (repo: string): Promise<Snap[]> => snapshotsJson<Snap>(repo, ENV.LIFEBOAT_PASSWORD);

/** A scratch directory with an initialised repository in it. */
async function fresh(): Promise<{ base: string; repo: string }> {
  const base = tmpdir('lb-sqlerr-');
  const repo = path.join(base, 'repo');
  await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
  return { base, repo };
}

/** A new database in `journal` mode holding what `sql` makes. */
function makeDb(file: string, sql: string, journal = 'delete'): void {
  new Database(file).close();
  withDb(file, (db) => {
    db.pragma(`journal_mode = ${journal}`);
    db.exec(sql);
  });
}

function withDb<T>(file: string, use: (db: Database.Database) => T, readonly = false): T {
  const db = new Database(file, { readonly, fileMustExist: true });
  try {
    return use(db);
  } finally {
    db.close();
  }
}

const query = <T = Record<string, unknown>>(file: string, sql: string): T[] => withDb(file, (db) => db.prepare(sql).all() as T[], true);
const journalMode = (file: string): string => withDb(file, (db) => String(db.pragma('journal_mode', { simple: true })));

const ITEMS = "CREATE TABLE items(id INTEGER PRIMARY KEY, label TEXT); INSERT INTO items(label) VALUES ('one'), ('two'), ('three');";

/** The files in `dir` a failed restore might have left beside its target. */
async function leftovers(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((f) => f.includes('.lifeboat-'));
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// ---- sources that cannot be backed up -----------------------------------------

describe('sqlite backup of a bad source', () => {
  it('a missing file exits 15 and is not created', async () => {
    const { base, repo } = await fresh();
    const before = await fingerprint(repo);
    const missing = path.join(base, 'no-such.db');
    expectError(await runCli(['sqlite', 'backup', '-r', repo, missing], ENV), 15, /no database file .*no-such\.db/);
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(`${missing}-journal`) || existsSync(`${missing}-wal`)).toBe(false);
    expect(await fingerprint(repo)).toEqual(before);
  });

  it('a file that is not a database exits 20 and is left as it was', async () => {
    const { base, repo } = await fresh();
    const junk = path.join(base, 'junk.db');
    await fs.writeFile(junk, pseudoRandom(64 * 1024, 9));
    const hash = sha256(junk);
    const before = await fingerprint(repo);
    expectError(await runCli(['sqlite', 'backup', '-r', repo, junk], ENV), 20, /not a (usable SQLite )?database/);
    expect(sha256(junk)).toBe(hash);
    expect(existsSync(`${junk}-journal`) || existsSync(`${junk}-wal`)).toBe(false);
    expect(await fingerprint(repo)).toEqual(before);
    expect(await snapshotsOf(repo)).toEqual([]);
  });

  it('a database locked exclusively by another process exits 19 after --busy-timeout', async () => {
    const { base, repo } = await fresh();
    const file = path.join(base, 'locked.db');
    makeDb(file, ITEMS);
    const hash = sha256(file);
    const script =
      `const D = require(${JSON.stringify(path.join(ROOT, 'node_modules', 'better-sqlite3'))});` +
      `const db = new D(process.argv[1]); db.pragma('locking_mode = EXCLUSIVE'); db.exec('BEGIN EXCLUSIVE');` +
      `console.log('locked'); setInterval(() => {}, 1000);`;
    const child: ChildProcess = spawn(process.execPath, ['-e', script, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout?.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
        child.on('exit', (code) => reject(new Error(`locking process exited early (${code})`)));
      });
      const started = Date.now();
      const r = await runCli(['sqlite', 'backup', '-r', repo, file, '--busy-timeout', '300ms'], ENV);
      expectError(r, 19, /locked/);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(await snapshotsOf(repo)).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve)));
    }
    expect(sha256(file)).toBe(hash);
    // Once the lock is gone the same command works.
    await cli(['sqlite', 'backup', '-r', repo, file, '--busy-timeout', '300ms']);
    expect(await snapshotsOf(repo)).toHaveLength(1);
  });
});

// ---- rollback-journal databases -------------------------------------------------

describe('a rollback-journal database', () => {
  it('replicate refuses it without --enable-wal, and with it switches to WAL, replicates and restores', async () => {
    const { base, repo } = await fresh();
    const file = path.join(base, 'journal.db');
    makeDb(file, ITEMS);
    const hash = sha256(file);
    const before = await fingerprint(repo);
    const hint = expectError(await runCli(['sqlite', 'replicate', '-r', repo, file], ENV), 2, /WAL/);
    expect(hint).toMatch(/--enable-wal/);
    expect(journalMode(file)).toBe('delete');
    expect(sha256(file)).toBe(hash);
    expect(await fingerprint(repo)).toEqual(before);

    const child = spawn(process.execPath, [CLI, 'sqlite', 'replicate', '-r', repo, '--enable-wal', '--interval', '200ms', file], {
      env: { ...process.env, ...ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    try {
      await until('WAL mode', () => child.exitCode === null && existsSync(`${file}-wal`) && journalMode(file) === 'wal');
      await until('the first snapshot', async () => (await snapshotsOf(repo)).length > 0);
      expect(child.exitCode, stderr).toBeNull();
      // A transaction while the replicator runs goes out with the final sync at the latest.
      withDb(file, (db) => db.prepare('INSERT INTO items(label) VALUES (?)').run('four'));
      await sleep(500);
      child.kill('SIGINT');
      const { code, signal } = await exited;
      expect({ code, signal }, `stdout: ${stdout}\nstderr: ${stderr}`).toEqual({ code: 0, signal: null });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expect(stderr).not.toMatch(/^lifeboat: /m);
    expect(journalMode(file)).toBe('wal');

    const out = path.join(base, 'restored.db');
    await cli(['sqlite', 'restore', '-r', repo, 'journal', '-o', out, '--latest']);
    expect(query(out, 'SELECT id, label FROM items ORDER BY id')).toEqual(query(file, 'SELECT id, label FROM items ORDER BY id'));
    expect(query(out, 'SELECT label FROM items ORDER BY id').map((r) => r.label)).toEqual(['one', 'two', 'three', 'four']);
  }, 90_000);

  it('sqlite backup takes it as it is and restores identical rows', async () => {
    const { base, repo } = await fresh();
    const file = path.join(base, 'plain.db');
    makeDb(file, `${ITEMS} CREATE TABLE blobs(k TEXT PRIMARY KEY, v BLOB); INSERT INTO blobs VALUES ('x', randomblob(20000));`);
    const hash = sha256(file);
    await cli(['sqlite', 'backup', '-r', repo, file]);
    expect(journalMode(file)).toBe('delete');
    expect(sha256(file)).toBe(hash);
    const out = path.join(base, 'out.db');
    await cli(['sqlite', 'restore', '-r', repo, 'plain', '-o', out]);
    for (const sql of ['SELECT * FROM items ORDER BY id', 'SELECT k, hex(v) AS v FROM blobs']) {
      expect(query(out, sql)).toEqual(query(file, sql));
    }
    expect(query(out, 'PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
  });
});

// ---- restore problems --------------------------------------------------------------

describe('sqlite restore problems', () => {
  /** A repository with one backup of `app.db` (three items). */
  async function backedUp(): Promise<{ base: string; repo: string; file: string }> {
    const { base, repo } = await fresh();
    const file = path.join(base, 'app.db');
    makeDb(file, ITEMS);
    await cli(['sqlite', 'backup', '-r', repo, file]);
    return { base, repo, file };
  }

  it('an existing target (or only its -wal) exits 21 and is not touched', async () => {
    const { base, repo } = await backedUp();
    const before = await fingerprint(repo);
    const out = path.join(base, 'out.db');
    await fs.writeFile(out, 'precious, not a database\n');
    const hash = sha256(out);
    expectError(await runCli(['sqlite', 'restore', '-r', repo, 'app', '-o', out], ENV), 21, /already exists/);
    expect(sha256(out)).toBe(hash);

    const other = path.join(base, 'other.db');
    await fs.writeFile(`${other}-wal`, pseudoRandom(5000, 3));
    const walHash = sha256(`${other}-wal`);
    expectError(await runCli(['sqlite', 'restore', '-r', repo, 'app', '-o', other], ENV), 21, /other\.db-wal already exists/);
    expect(existsSync(other)).toBe(false);
    expect(sha256(`${other}-wal`)).toBe(walHash);
    expect(await leftovers(base)).toEqual([]);
    expect(await fingerprint(repo)).toEqual(before);
  });

  it('--time that is not RFC 3339 exits 2; before the first backup exits 15 naming the earliest moment; an unknown name exits 15', async () => {
    const { base, repo } = await backedUp();
    const before = await fingerprint(repo);
    const out = path.join(base, 'out.db');
    expectError(await runCli(['sqlite', 'restore', '-r', repo, 'app', '-o', out, '--time', 'yesterday'], ENV), 2, /yesterday.*RFC 3339/);
    expectError(await runCli(['sqlite', 'restore', '-r', repo, 'app', '-o', out, '--time', '2026-13-45T99:00:00Z'], ENV), 2, /RFC 3339/);
    const [snap] = await snapshotsOf(repo);
    const hint = expectError(
      await runCli(['sqlite', 'restore', '-r', repo, 'app', '-o', out, '--time', '2000-01-01T00:00:00Z'], ENV),
      15,
      /no backup of "app" at or before 2000-01-01/,
    );
    expect(hint).toContain(`earliest restorable moment is ${(snap as Snap).time}`);
    expectError(await runCli(['sqlite', 'restore', '-r', repo, 'nosuch', '-o', out], ENV), 15, /"nosuch"/);
    expect(existsSync(out)).toBe(false);
    expect(await leftovers(base)).toEqual([]);
    expect(await fingerprint(repo)).toEqual(before);
  });

  it('a wrong repository password exits 12 and writes nothing', async () => {
    const { base, repo } = await backedUp();
    const before = await fingerprint(repo);
    const out = path.join(base, 'out.db');
    expectError(await runCli(['sqlite', 'restore', '-r', repo, 'app', '-o', out], { LIFEBOAT_PASSWORD: 'not-pw' }), 12, /wrong password/);
    expect(existsSync(out)).toBe(false);
    expect(await leftovers(base)).toEqual([]);
    expect(await fingerprint(repo)).toEqual(before);
  });
});

// ---- selective restore ----------------------------------------------------------------

describe('sqlite restore --table', () => {
  it('restores chosen tables with their indexes and triggers, and refuses to split a foreign key', async () => {
    const { base, repo } = await fresh();
    const file = path.join(base, 'graph.db');
    makeDb(
      file,
      `CREATE TABLE nodes(id INTEGER PRIMARY KEY, label TEXT NOT NULL);
       CREATE TABLE edges(src INTEGER NOT NULL REFERENCES nodes(id), dst INTEGER NOT NULL REFERENCES nodes(id), weight REAL);
       CREATE INDEX edges_by_dst ON edges(dst);
       CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, edits INTEGER NOT NULL DEFAULT 0);
       CREATE TRIGGER notes_edited AFTER UPDATE OF body ON notes BEGIN UPDATE notes SET edits = edits + 1 WHERE id = NEW.id; END;
       INSERT INTO nodes(label) VALUES ('a'), ('b'), ('c'), ('d');
       INSERT INTO edges VALUES (1, 2, 0.5), (2, 3, 1.5), (3, 4, 2.5), (4, 1, 3.5);
       INSERT INTO notes(body) VALUES ('first'), ('second');
       UPDATE notes SET body = 'second, edited' WHERE id = 2;`,
    );
    await cli(['sqlite', 'backup', '-r', repo, file]);
    const before = await fingerprint(repo);
    const schema = (f: string): Array<{ type: string; name: string }> =>
      query<{ type: string; name: string }>(f, "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name");

    const notes = path.join(base, 'notes.db');
    await cli(['sqlite', 'restore', '-r', repo, 'graph', '-o', notes, '--table', 'notes']);
    expect(schema(notes)).toEqual([
      { type: 'table', name: 'notes' },
      { type: 'trigger', name: 'notes_edited' },
    ]);
    expect(query(notes, 'SELECT * FROM notes ORDER BY id')).toEqual(query(file, 'SELECT * FROM notes ORDER BY id'));
    // The trigger came along and works.
    withDb(notes, (db) => db.prepare("UPDATE notes SET body = 'again' WHERE id = 1").run());
    expect(query(notes, 'SELECT edits FROM notes WHERE id = 1')).toEqual([{ edits: 1 }]);

    const edges = path.join(base, 'edges.db');
    const hint = expectError(
      await runCli(['sqlite', 'restore', '-r', repo, 'graph', '-o', edges, '--table', 'edges'], ENV),
      2,
      /"edges" references nodes/,
    );
    expect(hint).toMatch(/--table nodes/);
    expect(existsSync(edges)).toBe(false);

    await cli(['sqlite', 'restore', '-r', repo, 'graph', '-o', edges, '--table', 'edges', '--table', 'nodes']);
    expect(schema(edges)).toEqual([
      { type: 'index', name: 'edges_by_dst' },
      { type: 'table', name: 'edges' },
      { type: 'table', name: 'nodes' },
    ]);
    for (const sql of ['SELECT * FROM nodes ORDER BY id', 'SELECT * FROM edges ORDER BY rowid']) {
      expect(query(edges, sql)).toEqual(query(file, sql));
    }
    expect(query(edges, 'PRAGMA foreign_key_check')).toEqual([]);
    expect(query(edges, 'PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);

    const none = path.join(base, 'none.db');
    expectError(await runCli(['sqlite', 'restore', '-r', repo, 'graph', '-o', none, '--table', 'nosuch'], ENV), 15, /no table "nosuch"/);
    expect(existsSync(none)).toBe(false);
    expect(await leftovers(base)).toEqual([]);
    expect(await fingerprint(repo)).toEqual(before);
  });
});

describe('sqlite restore and foreign keys', () => {
  it('copies a child table created before its parent, and restores a source that holds violations', async () => {
    const { base, repo } = await fresh();
    const file = path.join(base, 'order.db');
    makeDb(
      file,
      `PRAGMA foreign_keys = OFF;
       CREATE TABLE edges(src INTEGER REFERENCES nodes(id), dst INTEGER REFERENCES nodes(id));
       CREATE TABLE nodes(id INTEGER PRIMARY KEY);
       INSERT INTO nodes VALUES (1), (2);
       INSERT INTO edges VALUES (1, 2), (2, 9);`,
    );
    await cli(['sqlite', 'backup', '-r', repo, file]);
    // The edge to node 9 violates its key: SQLite did not enforce it, and the restore gives it back.
    const whole = path.join(base, 'whole.db');
    const r = await cli(['--json', 'sqlite', 'restore', '-r', repo, 'order', '-o', whole]);
    expect(JSON.parse(r.stdout)).toMatchObject({ integrity: 'ok', foreign_key_violations: 1 });
    expect(query(whole, 'SELECT * FROM edges ORDER BY rowid')).toEqual(query(file, 'SELECT * FROM edges ORDER BY rowid'));
    const some = path.join(base, 'some.db');
    await cli(['sqlite', 'restore', '-r', repo, 'order', '-o', some, '--table', 'edges', '--table', 'nodes']);
    expect(query(some, 'SELECT * FROM edges ORDER BY rowid')).toEqual(query(file, 'SELECT * FROM edges ORDER BY rowid'));
  });
});

// ---- names ---------------------------------------------------------------------------------

describe('sqlite names', () => {
  it('x/memory.db is stored as "memory" and restores by either name', async () => {
    const { base, repo } = await fresh();
    await fs.mkdir(path.join(base, 'x'));
    const file = path.join(base, 'x', 'memory.db');
    makeDb(file, ITEMS, 'wal');
    await cli(['sqlite', 'backup', '-r', repo, file]);
    const snaps = await snapshotsOf(repo);
    expect(snaps.map((s) => s.source)).toEqual([{ kind: 'sqlite', name: 'memory' }]);
    for (const name of ['memory.db', 'memory']) {
      const out = path.join(base, `by-${name}.sqlite`);
      await cli(['sqlite', 'restore', '-r', repo, name, '-o', out]);
      expect(query(out, 'SELECT * FROM items ORDER BY id')).toEqual(query(file, 'SELECT * FROM items ORDER BY id'));
    }
    // The fallback drops the extension only: another name is still unknown.
    expectError(await runCli(['sqlite', 'restore', '-r', repo, 'memory.db.bak', '-o', path.join(base, 'no.db')], ENV), 15, /memory\.db\.bak/);
  });
});
