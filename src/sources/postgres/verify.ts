/**
 * `pg verify`: proof that a backup restores, not a hope. Restores the chosen point
 * into a scratch data directory, starts it where nothing else can reach it, waits
 * for recovery to finish and promote, then runs amcheck over every btree index of
 * every database and the caller's queries. Returns a report with the measured
 * recovery time (the RTO an operator would see); prints nothing.
 *
 * The scratch cluster must never act on the world: it listens only on 127.0.0.1 and
 * a socket in its own 0700 directory, never archives (it would push a new timeline
 * into the real history), and starts no replication or subscription workers.
 *
 * Nor may the backup act on this host. Its postgresql.conf and postgresql.auto.conf
 * are whatever the backed-up server (or whoever could write its files) put there:
 * shared_preload_libraries loads code into the server, recovery_end_command and
 * archive_command run shell commands, ssl_*_file and include directives read files.
 * So the scratch server reads only a configuration Lifeboat writes (both files are
 * replaced), and runs as the PostgreSQL service user (`postgres`, or the one given),
 * never as whatever uid the backup recorded for its files.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError, errno, type ErrorCode } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import type { PgClient } from './connect.js';
import type { DrillGraph } from '../../engine/drill/drill.js';
import type { GraphFacts } from '../graph/record.js';
import { judgeGraph } from '../graph/record.js';
import { checkPgGraph, measurePgGraph } from './graph.js';
import { ScratchClient } from './scratch-client.js';
import { pgConfQuote } from '../../util/shell.js';
import { choosePort } from './recovery-conf.js';
import { pgRestore, planRestore, type PgTarget } from './restore.js';
import { requirePgPoint } from './point.js';

export interface PgVerifyOptions {
  name: string;
  target: PgTarget;
  /** The argv of the command PostgreSQL runs to fetch WAL, without the trailing "%f %p". */
  archiveGetCommand: readonly string[];
  /** Each must return a first column that is not false, null or 0. Run in the `postgres` database. */
  queries?: string[];
  /** Keep the (stopped) scratch data directory for inspection. */
  keep?: boolean;
  /**
   * Budget for start-up and recovery. An hour: replaying WAL runs at tens of MB/s
   * even on modest disks, so a verify that needs longer is a finding in itself.
   */
  timeoutMs?: number;
  /** Where pg_ctl lives; default the Debian/Ubuntu layout for the backup's major version. */
  pgBinDir?: string;
  /** The OS user the scratch server runs as when this process is root (default `postgres`). */
  serviceUser?: string;
  onPhase?: (phase: 'restore' | 'recovery' | 'checks' | 'cleanup') => void;
}

export interface PgVerifyCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface PgVerifyReport {
  ok: boolean;
  snapshot: string;
  target: Record<string, string>;
  /** Restore start → cluster accepting writes; null when it never got there. */
  rto_seconds: number | null;
  restore_seconds: number | null;
  recovery_seconds: number | null;
  /** The timeline recovered along (production's, see timelines.ts). */
  timeline: number;
  /** Timelines in the archive that are not production's (restores ignore them). */
  warnings: string[];
  /** Commit time of the last transaction replayed (the newest data recovered); null when none was. */
  last_transaction?: string | null;
  checks: PgVerifyCheck[];
  /** Only with `keep`. */
  scratch_dir?: string;
  /** End of the last WAL record replayed (pg_last_wal_replay_lsn); null when recovery never got there. */
  replayed_lsn?: string | null;
  /** A declared graph's numbers in the restored cluster, beside what the backup recorded (docs/graph.md). */
  graph?: DrillGraph;
}

const DEFAULT_TIMEOUT_MS = 60 * 60 * 1000;
/** Errors that say something about this host or repository state, not about the backup: passed through. */
const ENVIRONMENT: ErrorCode[] = ['LOCKED', 'NO_SPACE', 'PERMISSION', 'STORE_UNAVAILABLE', 'INTERRUPTED', 'WRONG_PASSWORD', 'NO_PASSWORD'];

/** The btree indexes amcheck can check (the query from the amcheck documentation, all schemas). */
const INDEXES = `select c.oid::text as oid, format('%I.%I', n.nspname, c.relname) as name
  from pg_index i
  join pg_opclass op on i.indclass[0] = op.oid
  join pg_am am on op.opcmethod = am.oid
  join pg_class c on i.indexrelid = c.oid
  join pg_namespace n on c.relnamespace = n.oid
 where am.amname = 'btree' and c.relpersistence != 't' and c.relkind = 'i' and i.indisready and i.indisvalid
 order by c.relpages desc`;

const seconds = (ms: number): number => Math.round(ms) / 1000;
const message = (err: unknown): string =>
  err instanceof LifeboatError && err.hint ? `${err.message} (${err.hint})` : err instanceof Error ? err.message : String(err);

function describeTarget(t: PgTarget): Record<string, string> {
  return t.kind === 'time' ? { kind: 'time', time: t.time.toISOString() } : { ...t };
}

/** Scratch clusters of verifies in progress, so a signal can stop and remove them. */
const active = new Set<Scratch>();

/**
 * Stops and removes every scratch cluster still running (call on SIGINT/SIGTERM:
 * the process exits without reaching pgVerify's own cleanup).
 */
export async function abortVerifies(): Promise<void> {
  for (const s of active) {
    await s.stop().catch(() => {});
    await removeScratch(s.dir).catch(() => {});
  }
  active.clear();
}

/**
 * Removes a scratch directory. A restore_command still finishing when the server was
 * stopped can write into it while it is removed, so removal is retried until the
 * directory stays gone.
 */
async function removeScratch(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (!existsSync(dir)) return;
  }
}

export async function pgVerify(repo: Repository, opts: PgVerifyOptions): Promise<PgVerifyReport> {
  // Nothing to restore or no PostgreSQL to run it: errors of their own, before any work.
  const plan = await planRestore(repo, { name: opts.name, target: opts.target });
  const snapshot = plan.snapshot;
  const c = requirePgPoint(snapshot);
  const bin = opts.pgBinDir ?? `/usr/lib/postgresql/${c.pgMajor}/bin`;
  if (!existsSync(path.join(bin, 'pg_ctl'))) {
    throw new LifeboatError('NOT_FOUND', `no pg_ctl for PostgreSQL ${c.pgMajor} in ${bin}`, {
      hint: `install the PostgreSQL ${c.pgMajor} server package (with contrib, for amcheck) on this host`,
    });
  }
  const report: PgVerifyReport = {
    ok: false,
    snapshot: snapshot.id,
    target: describeTarget(opts.target),
    rto_seconds: null,
    restore_seconds: null,
    recovery_seconds: null,
    checks: [],
    timeline: plan.timeline,
    warnings: plan.warnings,
  };
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  // Checked before any work: a root verify with no service user to hand the server to cannot start it.
  const owner = await serviceOwner(opts.serviceUser);
  const scratch = new Scratch(await fs.mkdtemp(path.join(os.tmpdir(), 'lifeboat-verify-')), bin, owner);
  active.add(scratch);
  let started = false;
  try {
    const t0 = Date.now();
    opts.onPhase?.('restore');
    try {
      const port = await choosePort([]);
      const r = await pgRestore(repo, { name: opts.name, targetDir: scratch.data, target: opts.target, archiveGetCommand: opts.archiveGetCommand, port, plan });
      if (r.errors.length > 0) throw new Error(`${r.errors.length} item(s) not restored, first: ${r.errors[0]!.path}: ${r.errors[0]!.message}`);
      await scratch.configure(port, r.recoveryConf);
    } catch (err) {
      if (err instanceof LifeboatError && ENVIRONMENT.includes(err.code)) throw err;
      report.checks.push({ name: 'restore', ok: false, detail: message(err) });
      return report;
    }
    const t1 = Date.now();
    report.restore_seconds = seconds(t1 - t0);
    report.checks.push({ name: 'restore', ok: true, detail: `base backup ${snapshot.id.slice(0, 8)} (${c.startLsn} → ${c.stopLsn}) restored` });

    opts.onPhase?.('recovery');
    try {
      started = true;
      await scratch.start(deadline);
      await scratch.waitPromoted(deadline);
    } catch (err) {
      report.checks.push({ name: 'start', ok: false, detail: `${message(err)}\n${await scratch.logTail()}` });
      return report;
    }
    const t2 = Date.now();
    report.recovery_seconds = seconds(t2 - t1);
    report.rto_seconds = seconds(t2 - t0);
    report.checks.push({ name: 'start', ok: true, detail: `recovered and promoted in ${report.recovery_seconds}s` });
    report.last_transaction = await scratch.lastReplayed().catch(() => null);
    report.replayed_lsn = await scratch.replayedLsn().catch(() => null);

    opts.onPhase?.('checks');
    const dbs = await scratch.databases().catch((err: unknown) => {
      report.checks.push({ name: 'databases', ok: false, detail: message(err) });
      return [];
    });
    for (const db of dbs) report.checks.push(await amcheck(scratch, db));
    if (c.graph) await graphChecks(scratch, c.graph, report);
    for (const sql of opts.queries ?? []) report.checks.push(await scratch.client.check(`query ${sql}`, sql));
    report.ok = report.checks.every((k) => k.ok);
    return report;
  } finally {
    active.delete(scratch);
    opts.onPhase?.('cleanup');
    if (started) await scratch.stop();
    if (opts.keep) report.scratch_dir = scratch.dir;
    else await removeScratch(scratch.dir);
  }
}

/**
 * The declared graph in the restored cluster (docs/graph.md): dangling edges, counts
 * (reported: a base backup records none) and the queries' latency beside the source's.
 */
async function graphChecks(s: Scratch, facts: GraphFacts, report: PgVerifyReport): Promise<void> {
  let client: PgClient;
  try {
    client = await s.connect(facts.database ?? 'postgres');
  } catch (err) {
    report.checks.push({ name: 'graph', ok: false, detail: `database ${facts.database ?? 'postgres'}: ${message(err)}` });
    return;
  }
  try {
    await checkPgGraph(client, facts.declaration, 'the restored cluster');
    const measured = await measurePgGraph(client, facts.declaration, 'the restored cluster');
    judgeGraph(facts, measured, { samePoint: false, replayed: 'WAL replayed past the base backup' }, report);
  } catch (err) {
    report.checks.push({ name: 'graph', ok: false, detail: message(err) });
  } finally {
    await client.end().catch(() => {});
  }
}

async function amcheck(s: Scratch, db: string): Promise<PgVerifyCheck> {
  const name = `amcheck ${db}`;
  let client: PgClient;
  try {
    client = await s.connect(db);
  } catch (err) {
    return { name, ok: false, detail: message(err) };
  }
  try {
    await client.query('create extension if not exists amcheck');
    const indexes = (await client.query<{ oid: string; name: string }>(INDEXES)).rows;
    const bad: string[] = [];
    // One call per index, so a failure names its index and the others are still checked.
    for (const ix of indexes) {
      try {
        await client.query('select bt_index_check(index => $1::oid::regclass, heapallindexed => true)', [ix.oid]);
      } catch (err) {
        bad.push(`${ix.name}: ${message(err)}`);
      }
    }
    if (bad.length > 0) return { name, ok: false, detail: `${bad.length} of ${indexes.length} btree indexes failed: ${bad.slice(0, 5).join('; ')}` };
    return { name, ok: true, detail: `${indexes.length} btree indexes consistent with their tables (heapallindexed)` };
  } catch (err) {
    return { name, ok: false, detail: message(err) };
  } finally {
    await client.end().catch(() => {});
  }
}

/** The scratch cluster: a temp directory holding data/, the socket, the log and its own pg_hba.conf. */
class Scratch {
  readonly data: string;
  private readonly log: string;
  /** Made once the port is chosen (configure). */
  client!: ScratchClient;

  constructor(
    readonly dir: string,
    private readonly bin: string,
    private readonly owner: Owner,
  ) {
    this.data = path.join(dir, 'data');
    this.log = path.join(dir, 'postgresql.log');
  }

  /**
   * Replaces the restored configuration with Lifeboat's own: these settings and the
   * recovery settings pgRestore decided (restore_command, target, timeline), nothing
   * else. Then hands the scratch directory to the service user.
   */
  async configure(port: number, recovery: readonly string[]): Promise<void> {
    this.client = new ScratchClient(this.dir, port, this.owner.name, '-c statement_timeout=0');
    const file = (f: string) => path.join(this.dir, f);
    const q = pgConfQuote;
    // Only the owner's own socket is let in: trust is safe behind a 0700 directory, and TCP gets no entry at all.
    await fs.writeFile(file('pg_hba.conf'), 'local all all trust\n', { mode: 0o600 });
    await fs.writeFile(file('pg_ident.conf'), '', { mode: 0o600 });
    const lines = [
      '# Written by lifeboat pg verify: a private scratch copy. Nothing from the backup\'s own',
      '# postgresql.conf / postgresql.auto.conf is read (no preload libraries, recovery_end_command,',
      '# archive_command, ssl files or include directives from the backup).',
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = ${q(this.dir)}`,
      `hba_file = ${q(file('pg_hba.conf'))}`,
      `ident_file = ${q(file('pg_ident.conf'))}`,
      // A promoted copy would archive a new timeline into the real cluster's history.
      'archive_mode = off',
      // No read-only phase: the server opens once recovery has promoted. Hot standby would also
      // need max_connections and friends at least as high as the primary's, which this file does not copy.
      'hot_standby = off',
      // Subscriptions would connect to their publishers and consume the real subscriber's changes.
      'max_logical_replication_workers = 0',
      ...recovery,
    ];
    // Both files are replaced (not appended to): the backup's settings are not read at all.
    // Removed first and created exclusively: a backup may hold them as symlinks to anywhere.
    const replace = async (f: string, text: string) => {
      await fs.rm(path.join(this.data, f), { force: true });
      await fs.writeFile(path.join(this.data, f), text, { mode: 0o600, flag: 'wx' });
    };
    await replace('postgresql.conf', `${lines.join('\n')}\n`);
    await replace('postgresql.auto.conf', '# Empty: lifeboat pg verify configures the scratch copy in postgresql.conf\n');
    if (process.getuid?.() === 0) await chownTree(this.dir, this.owner.uid, this.owner.gid);
  }

  /** Runs a PostgreSQL program as the data directory's owner (PostgreSQL refuses root). */
  private run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
    const asOther = process.getuid?.() === 0 && this.owner.uid !== 0;
    const [c, a] = asOther ? ['runuser', ['-u', this.owner.name, '--', cmd, ...args]] : [cmd, args];
    // The server inherits this environment; the repository password has no business there.
    const env = { ...process.env };
    delete env.LIFEBOAT_PASSWORD;
    delete env.PGPASSWORD;
    return new Promise((resolve, reject) => {
      const child = spawn(c, a, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, output }));
    });
  }

  async start(deadline: number): Promise<void> {
    const secs = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
    // -w returns once connections are accepted, which with hot_standby is before recovery ends.
    const r = await this.run(path.join(this.bin, 'pg_ctl'), ['-D', this.data, '-l', this.log, '-w', '-t', String(secs), 'start']);
    if (r.code !== 0) throw new Error(`pg_ctl start failed: ${r.output.trim()}; the end of the server's log:`);
  }

  async waitPromoted(deadline: number): Promise<void> {
    // A dead server is not coming up (pg_ctl status 3: not running).
    const dead = async () => ((await this.run(path.join(this.bin, 'pg_ctl'), ['-D', this.data, 'status'])).code === 3 ? 'the server stopped during recovery; the end of its log:' : undefined);
    await this.client.waitPromoted(deadline, dead);
  }

  connect(db: string): Promise<PgClient> {
    return this.client.connect(db);
  }

  /** When the last transaction replayed from WAL committed (the newest data recovered), or null. */
  async lastReplayed(): Promise<string | null> {
    const client = await this.connect('postgres');
    try {
      const r = await client.query<{ t: Date | null }>('select pg_last_xact_replay_timestamp() as t');
      const t = r.rows[0]?.t;
      return t ? t.toISOString() : null;
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** Where replay ended (it stays put after promotion), or null. */
  async replayedLsn(): Promise<string | null> {
    const client = await this.connect('postgres');
    try {
      return (await client.query<{ lsn: string | null }>('select pg_last_wal_replay_lsn()::text as lsn')).rows[0]?.lsn ?? null;
    } finally {
      await client.end().catch(() => {});
    }
  }

  databases(): Promise<string[]> {
    return this.client.databases();
  }

  async stop(): Promise<void> {
    const ctl = path.join(this.bin, 'pg_ctl');
    const r = await this.run(ctl, ['-D', this.data, '-m', 'fast', '-w', '-t', '60', 'stop']).catch(() => ({ code: -1 }));
    if (r.code !== 0) await this.run(ctl, ['-D', this.data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
  }

  async logTail(lines = 30): Promise<string> {
    const text = await fs.readFile(this.log, 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }
}

interface Owner {
  uid: number;
  gid: number;
  name: string;
}

/**
 * Who runs the scratch server: as root, the PostgreSQL service user (PostgreSQL
 * refuses root, and the uid recorded in the backup may be anyone on this host);
 * otherwise this process's own user, the only one it can be.
 */
export async function serviceOwner(name = 'postgres'): Promise<Owner> {
  if (process.getuid?.() !== 0) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, name: os.userInfo().username };
  const text = await fs.readFile('/etc/passwd', 'utf8').catch((err: unknown) => {
    throw new LifeboatError('FAILED', `cannot read /etc/passwd: ${errno(err) ?? String(err)}`);
  });
  const fields = text.split('\n').map((l) => l.split(':')).find((f) => f[0] === name);
  if (!fields) {
    throw new LifeboatError('NOT_FOUND', `no user "${name}" on this host to run the scratch PostgreSQL server`, {
      hint: 'install the PostgreSQL server package (it creates the postgres user), or pass --service-user NAME',
    });
  }
  const uid = Number(fields[2]);
  if (uid === 0) throw new LifeboatError('USAGE', `the service user "${name}" is root, and PostgreSQL will not run as root`, { hint: 'pass --service-user with an unprivileged user' });
  return { uid, gid: Number(fields[3]), name };
}

/** lchown of DIR and everything below it (symlinks themselves, never what they point at). */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await fs.lchown(dir, uid, gid);
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, uid, gid);
    else await fs.lchown(p, uid, gid);
  }
}
