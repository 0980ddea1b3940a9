/**
 * Logical PostgreSQL backups: `pg_dump -Fc -Z0` streamed into a snapshot, and back
 * out of it into `pg_restore`. The dump is left uncompressed so that Lifeboat's
 * chunker sees the same bytes for unchanged rows and deduplicates them; its own zstd
 * then compresses what is new. Neither side ever holds the whole dump in memory.
 *
 * A dump of source NAME and database DB is the single file
 * /postgres-dump/NAME/DB.dump of its snapshot (DB percent-encoded where a tree name
 * could not hold it), so `lifeboat restore` can also bring the file back as it is.
 *
 * The server is first reached with the same client `pg backup` uses, so an
 * unreachable server, a refused login or a missing database fail with their own
 * codes before any tool runs; the tools' own failures are classified the same way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { LifeboatError, errno, isLifeboatError } from '../../errors.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import { pickSnapshot, type Snapshot } from '../../repo/snapshot/snapshot.js';
import { connect } from './connect.js';
import { backupStream } from '../../engine/backup/stream.js';
import { resolvePath } from '../../engine/browse/tree-walk.js';
import type { ProgressFn } from '../../engine/progress.js';
import { restoreStream } from '../../engine/restore/stream.js';
import { logSource } from './names.js';

export const DUMP_KIND = 'postgres-dump';

/** What a dump snapshot records as its consistency point. */
export interface PgDumpConsistency {
  db: string;
  /** server_version_num of the server dumped, e.g. 150020. */
  pgVersion: number;
  pgMajor: number;
  /** When pg_dump started: its snapshot of the database is from that moment. */
  dumpedAt: string;
  finishedAt: string;
  format: 'custom';
  /** `pg_dump --version`: pg_restore must be at least this new to read the file. */
  pgDumpVersion: string;
}

interface Tools {
  /** Directory holding pg_dump and pg_restore; default: found on PATH. */
  pgBin?: string;
}

export interface PgDumpOptions extends Tools {
  name: string;
  dsn: string;
  /** Database to dump; default: the one named in the DSN. */
  db?: string;
  tags?: string[];
  onProgress?: ProgressFn;
}

export interface PgRestoreDumpOptions extends Tools {
  name: string;
  dsn: string;
  /** Existing database to restore into; default: the one named in the DSN. */
  db?: string;
  /** Snapshot id prefix or "latest" (default), among the dumps of `name`. */
  snapshot?: string;
  /** Restore only these tables (pg_restore -t each). */
  tables?: string[];
  /** Drop objects before recreating them (pg_restore --clean --if-exists). */
  clean?: boolean;
  onProgress?: ProgressFn;
}

export interface PgRestoreDumpResult {
  snapshot: Snapshot;
  db: string;
  /** Size of the dump file (pg_restore stops reading early when it needs only some tables). */
  dumpBytes: number;
}

/** The snapshot path of a dump; database names may hold any character but NUL. */
export function dumpPath(name: string, db: string): string {
  logSource(name);
  return `/postgres-dump/${name}/${encodeURIComponent(db).replace(/^\./, '%2E')}.dump`;
}

interface Target {
  db: string;
  /** For the node client: the DSN with the database replaced. */
  dsn: string;
  /** For the tools' command line: the same without the password, which goes in PGPASSWORD. */
  argDsn: string;
  password: string | undefined;
  /** For messages. */
  shown: string;
}

function target(dsn: string, db: string | undefined): Target {
  let url: URL | undefined;
  let name = '';
  try {
    url = new URL(dsn);
    if (db !== undefined) url.pathname = `/${encodeURIComponent(db)}`;
    name = decodeURIComponent(url.pathname.slice(1));
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:')) {
    // Key=value strings are not accepted: the node client used to probe cannot read them.
    throw new LifeboatError('USAGE', 'the DSN must be a postgresql:// URL', { hint: 'example: postgresql://user@host:5432/dbname' });
  }
  if (!name) throw new LifeboatError('USAGE', 'no database given', { hint: 'pass --db NAME or put it in the DSN' });
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  const full = url.toString();
  url.password = '';
  // Kept off the command line, where `ps` would show it to every local user.
  const argDsn = url.toString();
  return { db: name, dsn: full, argDsn, password, shown: argDsn };
}

/** Checks that the server is up, the login accepted and the database there; returns server_version_num. */
async function probe(t: Target): Promise<number> {
  let client;
  try {
    client = await connect(t.dsn);
  } catch (err) {
    // 3D000 comes after authentication: the server is fine, the name is wrong.
    if (isLifeboatError(err) && errno(err.cause) === '3D000') {
      throw new LifeboatError('NOT_FOUND', `database "${t.db}" does not exist at ${t.shown}`, {
        hint: 'check --db (or the database in --dsn); `psql -l` lists them',
        cause: err,
      });
    }
    throw err;
  }
  try {
    // Not serverInfo(): that reads pg_control and data_directory, which a dump role need not see.
    const r = await client.query<{ v: string }>("select current_setting('server_version_num') as v");
    return Number(r.rows[0]?.v);
  } finally {
    await client.end().catch(() => {});
  }
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: unknown;
  stderr: string;
}

const STDERR_LIMIT = 64 * 1024;
/** How writing to a consumer that closed its input fails. */
const BROKEN_PIPE = new Set(['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED']);

interface Running {
  child: ChildProcess;
  exit: Promise<Exit>;
  bin: string;
}

function run(tool: string, opts: Tools, args: string[], password: string | undefined, stdin: 'pipe' | 'ignore'): Running {
  const bin = opts.pgBin ? path.join(opts.pgBin, tool) : tool;
  const env = { ...process.env, ...(password !== undefined ? { PGPASSWORD: password } : {}) };
  const child = spawn(bin, args, { stdio: [stdin, stdin === 'pipe' ? 'ignore' : 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < STDERR_LIMIT) stderr += d.toString('utf8');
  });
  const exit = new Promise<Exit>((resolve) => {
    child.on('error', (err) => resolve({ code: null, signal: null, spawnError: err, stderr }));
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  return { child, exit, bin };
}

/**
 * The line of a tool's stderr that says what went wrong, without the "pg_dump:
 * error: " prefix, and what follows it (PostgreSQL's detail and hint lines).
 */
export function explainStderr(stderr: string): { line: string; rest: string } | undefined {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  let i = lines.findIndex((l) => /\berror:/.test(l));
  if (i < 0) i = lines.findIndex((l) => !/^\S+: (warning|detail|hint):/.test(l));
  if (i < 0) return undefined;
  const strip = (l: string) => l.replace(/^pg_\w+: (error: )?/, '');
  const rest = lines.slice(i + 1, i + 4).map(strip).join('; ');
  return { line: strip(lines[i] as string), rest: rest.length > 300 ? `${rest.slice(0, 300)}…` : rest };
}

/** Turns a tool's failed exit into an error with the code an operator expects. */
function toolError(tool: string, what: string, e: Exit, bin: string): LifeboatError {
  if (e.spawnError !== undefined) {
    return new LifeboatError('FAILED', `cannot run ${bin}: ${errno(e.spawnError) ?? String(e.spawnError)}`, {
      hint: `install the PostgreSQL client tools (the server's major version or newer), or point --pg-bin at them`,
      cause: e.spawnError,
    });
  }
  const said = explainStderr(e.stderr);
  const line = said?.line ?? `exited with ${e.signal ?? `status ${e.code}`}`;
  const message = `${tool} ${what} failed: ${line}`;
  if (/database ".*" does not exist/.test(line)) {
    return new LifeboatError('NOT_FOUND', message, { hint: 'check --db (or the database in --dsn)' });
  }
  if (/^table ".*" not found/.test(line)) {
    return new LifeboatError('NOT_FOUND', message, { hint: 'names are matched exactly, without schema; nothing was restored' });
  }
  if (/connection to server|could not connect|Connection refused|timeout expired|could not translate host|authentication failed|no password supplied|no pg_hba\.conf entry|role ".*" does not exist/.test(line)) {
    return new LifeboatError('SOURCE_UNAVAILABLE', message, { hint: 'check host, port, user and password in --dsn and pg_hba.conf' });
  }
  // The server went down (or ended the session) after the tool had connected: PostgreSQL
  // says so in the lines after the one that failed ("server closed the connection
  // unexpectedly", "terminating connection due to administrator command").
  if (/server closed the connection unexpectedly|terminating connection|server terminated abnormally/.test(`${line} ${said?.rest ?? ''}`)) {
    const outcome = tool === 'pg_dump' ? 'nothing was saved' : 'nothing was changed (one transaction)';
    return new LifeboatError('SOURCE_UNAVAILABLE', `${message} (${said?.rest || 'the server closed the connection'})`, { hint: `the server went down or ended the session (its log says why); ${outcome}: run it again once the server is up` });
  }
  if (/already exists/.test(line)) {
    return new LifeboatError('FAILED', message, { hint: 'restore into an empty database, or pass --clean; nothing was changed (one transaction)' });
  }
  return new LifeboatError('FAILED', message, { hint: said?.rest || `run ${bin} by hand with the same options to see all it says` });
}

async function toolVersion(opts: Tools): Promise<string> {
  const { child, exit, bin } = run('pg_dump', opts, ['--version'], undefined, 'ignore');
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const e = await exit;
  if (e.code !== 0) throw toolError('pg_dump', '--version', e, bin);
  return out.trim();
}

/** Dumps one database into a new snapshot; no snapshot is saved unless pg_dump succeeds. */
export async function pgDump(repo: Repository, opts: PgDumpOptions): Promise<Snapshot> {
  logSource(opts.name);
  const t = target(opts.dsn, opts.db);
  const file = dumpPath(opts.name, t.db);
  const pgVersion = await probe(t);
  const pgDumpVersion = await toolVersion(opts);
  const dumpedAt = new Date();
  // -Z0: compressed output would change wholesale around any changed row and defeat dedup.
  const args = ['--format=custom', '--compress=0', '--no-password', `--dbname=${t.argDsn}`];
  const { child, exit, bin } = run('pg_dump', opts, args, t.password, 'ignore');
  try {
    return await backupStream(repo, child.stdout!, {
      path: file,
      source: { kind: DUMP_KIND, name: opts.name },
      tags: [`pgdump:${opts.name}`, ...(opts.tags ?? [])],
      time: dumpedAt,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      beforeSnapshot: async () => {
        const e = await exit;
        if (e.code !== 0) throw toolError('pg_dump', `of database "${t.db}"`, e, bin);
        const c: PgDumpConsistency = {
          db: t.db,
          pgVersion,
          pgMajor: Math.floor(pgVersion / 10000),
          dumpedAt: dumpedAt.toISOString(),
          finishedAt: new Date().toISOString(),
          format: 'custom',
          pgDumpVersion,
        };
        return c as unknown as Record<string, unknown>;
      },
    });
  } catch (err) {
    // Our side failed (or pg_dump did): make sure pg_dump is not left writing into a closed pipe.
    child.kill();
    await exit;
    throw err;
  }
}

/** The chosen dump of `name`: "latest" or an id prefix, among that source's dumps only. */
export function chooseDump(all: readonly Snapshot[], name: string, ref = 'latest'): Snapshot {
  const mine = all.filter((s) => s.source.kind === DUMP_KIND && s.source.name === name);
  if (mine.length === 0) {
    throw new LifeboatError('NOT_FOUND', `no dump of PostgreSQL source "${name}" in the repository`, {
      hint: 'make one with `lifeboat pg dump --name NAME --dsn URL --db DB`',
    });
  }
  try {
    return pickSnapshot(mine, ref);
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND') && all.some((s) => s.id.startsWith(ref))) {
      throw new LifeboatError('USAGE', `snapshot ${ref} is not a dump of "${name}"`, { hint: '`lifeboat snapshots --tag pgdump:NAME` lists them' });
    }
    throw err;
  }
}

/**
 * Streams a dump into pg_restore. pg_restore runs in one transaction, so a failure
 * part way leaves the target database as it was.
 */
export async function pgRestoreDump(repo: Repository, opts: PgRestoreDumpOptions): Promise<PgRestoreDumpResult> {
  logSource(opts.name);
  const t = target(opts.dsn, opts.db);
  const lock = await acquireLock(repo.store, 'shared', `pg restore-dump ${opts.name}`);
  try {
    const snapshot = chooseDump(await repo.listSnapshots(), opts.name, opts.snapshot);
    await repo.loadIndex(); // after choosing: a snapshot's index files are stored before it
    const file = snapshot.paths[0] ?? '';
    const found = await resolvePath(repo, snapshot.tree, file);
    if (!('node' in found) || found.node.type !== 'file') {
      throw new LifeboatError('CORRUPT', `snapshot ${snapshot.id.slice(0, 8)} holds no dump file at ${file}`);
    }
    await probe(t);
    const args = [
      `--dbname=${t.argDsn}`,
      '--no-password',
      '--single-transaction',
      ...(opts.clean ? ['--clean', '--if-exists'] : []),
      ...(opts.tables ?? []).flatMap((table) => ['--table', table]),
      // Without it a mistyped table name restores nothing and still succeeds.
      ...(opts.tables?.length ? ['--strict-names'] : []),
    ];
    const { child, exit, bin } = run('pg_restore', opts, args, t.password, 'pipe');
    let fed: unknown;
    try {
      await restoreStream(repo, found.node, child.stdin!, opts.onProgress ? { onProgress: opts.onProgress } : {});
    } catch (err) {
      fed = err;
    }
    // A failure on our side (a damaged blob, the store) comes first: pg_restore's
    // complaint about the truncated input would only be its consequence. A broken
    // pipe is pg_restore's doing, and its exit status decides: with --table it stops
    // reading once its tables are in, and exits 0.
    const ours = fed !== undefined && !BROKEN_PIPE.has(errno(fed) ?? '');
    if (ours) child.kill();
    const e = await exit;
    if (ours) throw fed;
    if (e.code !== 0) throw toolError('pg_restore', `into database "${t.db}"`, e, bin);
    return { snapshot, db: t.db, dumpBytes: found.node.size ?? 0 };
  } finally {
    await lock.release();
  }
}
