/**
 * `pg restore --start`: a restore is only a recovery once the server runs. Starts the
 * restored data directory, waits until it has replayed WAL to the target and
 * promoted, runs the checks, and reports how long each step took, so the RTO of a
 * real recovery is measured instead of guessed. Then stops it, or (keepRunning)
 * restarts it with its own configuration on its port, ready for clients.
 *
 * While it recovers and is checked the server listens on no TCP port and only on a
 * socket in a private 0700 directory with its own pg_hba.conf (trust for that socket
 * only): Lifeboat knows no password of the restored cluster, and nobody else reaches
 * a server whose checks have not passed. These settings are given on the server's
 * command line (argv, no shell), so nothing of them stays in the data directory.
 * The server runs as the data directory's owner (PostgreSQL refuses root).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import type { PgClient } from './connect.js';
import { ScratchClient } from './scratch-client.js';
import { checkStartTools } from './start-tools.js';
import { tiedCommand } from '../../util/tied-child.js';

// Kept apart so checking a plan does not load the PostgreSQL client (start-tools.ts).
export { START_TOOLS, checkStartTools } from './start-tools.js';

export interface StartOptions {
  /** The restored (stopped) data directory. */
  dataDir: string;
  /** The port it is configured for (pg restore wrote it). */
  port: number;
  /** Where pg_ctl and postgres live. */
  binDir: string;
  /** SQL whose first value must be true (not false, null or 0); default: none beyond SELECT 1. */
  checks?: readonly string[];
  /** Leave it running (restarted with its own configuration) instead of stopping it. */
  keepRunning?: boolean;
  /** Budget for start-up and recovery; default an hour (as pg verify). */
  timeoutMs?: number;
  /**
   * Called once the server has recovered and the checks ran, while it still runs on its
   * private socket (a group drill's cross-member checks read it here). What it throws
   * is thrown by startRestored, after the server was stopped. Not called when the
   * server never recovered.
   */
  inspect?: (connect: (db: string) => Promise<PgClient>, checks: readonly StartCheck[]) => Promise<void>;
  /** Where the server's private socket directory is made (default: the system's temporary directory). */
  socketParent?: string;
}

export interface StartCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface StartReport {
  ok: boolean;
  /** Server start → recovery finished and promoted; null when it never got there. */
  recovery_seconds: number | null;
  checks: StartCheck[];
  databases: string[];
  /** Whether the server is still running (keepRunning and everything passed). */
  running: boolean;
  port: number;
  /** The end of the server's log when something failed. */
  log?: string;
}

/**
 * Refuses a data directory pg_ctl cannot start safely: pg_ctl runs
 * `"postgres" -D "DIR"` through /bin/sh in double quotes, where `$`, a backquote,
 * `"` and `\\` keep their meaning, so `/r/$(cmd)` would run cmd as the service user.
 * Checked before a restore writes anything.
 */
export function checkStartablePath(dataDir: string): void {
  const bad = /[$`"\\\n]/.exec(dataDir);
  if (bad) {
    throw new LifeboatError('USAGE', `cannot start ${JSON.stringify(dataDir)}: pg_ctl would pass ${JSON.stringify(bad[0])} to a shell`, {
      hint: 'restore with --start into a directory whose path has no $, `, ", \\ or line break (or restore without --start and run postgres -D)',
    });
  }
}

const DEFAULT_TIMEOUT_MS = 60 * 60 * 1000;

/** Servers being started and checked, so a signal can stop them (the process exits without reaching the finally). */
const active = new Set<Server>();

/** Stops every server startRestored is still checking (call on SIGINT/SIGTERM). */
export async function abortStarts(): Promise<void> {
  for (const s of active) await s.stop().catch(() => {});
  active.clear();
}
const seconds = (ms: number): number => Math.round(ms) / 1000;
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export async function startRestored(opts: StartOptions): Promise<StartReport> {
  checkStartTools(opts.binDir);
  checkStartablePath(opts.dataDir);
  const st = await fs.stat(opts.dataDir);
  if (st.uid === 0) {
    throw new LifeboatError('PERMISSION', `${opts.dataDir} belongs to root, and PostgreSQL will not run as root`, {
      hint: 'chown -R the data directory to the PostgreSQL service user (e.g. postgres), then start it with pg_ctl',
    });
  }
  const owner = { uid: st.uid, gid: st.gid, name: await userName(st.uid) };
  const report: StartReport = { ok: false, recovery_seconds: null, checks: [], databases: [], running: false, port: opts.port };
  const dir = await fs.mkdtemp(path.join(opts.socketParent ?? os.tmpdir(), 'lifeboat-start-'));
  const server = new Server(opts, owner, dir);
  let started = false;
  active.add(server);
  try {
    await server.prepare();
    const t0 = Date.now();
    const deadline = t0 + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    try {
      started = true;
      server.spawn();
      await server.waitPromoted(deadline);
    } catch (err) {
      report.checks.push({ name: 'start', ok: false, detail: message(err) });
      report.log = await server.logTail();
      return report;
    }
    report.recovery_seconds = seconds(Date.now() - t0);
    report.checks.push({ name: 'start', ok: true, detail: `recovered and promoted in ${report.recovery_seconds}s` });
    report.checks.push(await server.check('select 1', 'select 1'));
    try {
      report.databases = await server.databases();
      report.checks.push({ name: 'databases', ok: true, detail: report.databases.join(', ') });
    } catch (err) {
      report.checks.push({ name: 'databases', ok: false, detail: message(err) });
    }
    for (const sql of opts.checks ?? []) report.checks.push(await server.check(`query ${sql}`, sql));
    if (opts.inspect) await opts.inspect((db) => server.connect(db), report.checks);
    report.ok = report.checks.every((c) => c.ok);
    return report;
  } finally {
    active.delete(server);
    if (started) await server.stop();
    if (report.ok && opts.keepRunning) {
      // Its own configuration from here on: its port, its listen_addresses, its pg_hba.conf.
      await server.logDir();
      const r = await server.ctl(['-D', opts.dataDir, '-l', path.join(opts.dataDir, 'log', 'lifeboat-start.log'), '-w', '-t', '600', 'start'], true);
      report.running = r.code === 0;
      if (!report.running) {
        report.ok = false;
        report.checks.push({ name: 'restart', ok: false, detail: `pg_ctl start failed: ${r.output.trim()}` });
      }
    }
    await fs.rm(dir, { recursive: true, force: true });
  }
}

class Server {
  private child: ChildProcess | undefined;
  private exited: number | null | undefined;
  private readonly client: ScratchClient;
  private readonly log: string;

  constructor(
    private readonly opts: StartOptions,
    private readonly owner: { uid: number; gid: number; name: string },
    private readonly dir: string,
  ) {
    this.log = path.join(dir, 'postgresql.log');
    this.client = new ScratchClient(dir, opts.port, owner.name);
  }

  async prepare(): Promise<void> {
    await fs.writeFile(path.join(this.dir, 'pg_hba.conf'), 'local all all trust\n', { mode: 0o600 });
    await fs.writeFile(this.log, '', { mode: 0o600 });
    if (process.getuid?.() === 0) for (const f of [this.dir, path.join(this.dir, 'pg_hba.conf'), this.log]) await fs.chown(f, this.owner.uid, this.owner.gid);
    await fs.chmod(this.dir, 0o700);
  }

  private argv(cmd: string, args: string[]): [string, string[]] {
    const asOther = process.getuid?.() === 0 && this.owner.uid !== process.getuid?.();
    return asOther ? ['runuser', ['-u', this.owner.name, '--', cmd, ...args]] : [cmd, args];
  }

  /**
   * argv() for the server itself, which must not outlive us (a drill killed with -9):
   * each process between us and postgres dies with its parent (util/tied-child.ts), so
   * the kernel stops the server when this process goes, whatever killed it.
   */
  private tiedArgv(cmd: string, args: string[]): [string, string[]] {
    const inner = tiedCommand(cmd, args);
    const [c, a] = this.argv(inner.cmd, inner.args);
    if (c === inner.cmd) return [c, a];
    const outer = tiedCommand(c, a);
    return [outer.cmd, outer.args];
  }

  /** The server's environment: the repository password has no business there. */
  private env(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    delete env.LIFEBOAT_PASSWORD;
    return env;
  }

  spawn(): void {
    // -c values are taken as they are (no configuration-file quoting); the socket
    // setting is a list, whose elements may be double-quoted.
    const [cmd, args] = this.tiedArgv(path.join(this.opts.binDir, 'postgres'), [
      '-D', this.opts.dataDir,
      '-c', `port=${this.opts.port}`,
      '-c', `listen_addresses=`,
      '-c', `unix_socket_directories="${this.dir}"`,
      '-c', `hba_file=${path.join(this.dir, 'pg_hba.conf')}`,
      '-c', `external_pid_file=${path.join(this.dir, 'external.pid')}`,
    ]);
    const fd = openSync(this.log, 'a');
    try {
      this.child = spawn(cmd, args, { env: this.env(), stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    this.child.on('error', () => (this.exited = -1));
    this.child.on('exit', (code) => (this.exited = code));
  }

  async waitPromoted(deadline: number): Promise<void> {
    await this.client.waitPromoted(deadline, async () => (this.exited !== undefined ? `the server exited (${this.exited}) before recovery finished` : undefined));
  }

  connect(db: string): Promise<PgClient> {
    return this.client.connect(db);
  }

  check(name: string, sql: string): Promise<StartCheck> {
    return this.client.check(name, sql);
  }

  databases(): Promise<string[]> {
    return this.client.databases();
  }

  ctl(args: string[], detach = false): Promise<{ code: number; output: string }> {
    const [cmd, a] = this.argv(path.join(this.opts.binDir, 'pg_ctl'), args);
    return new Promise((resolve, reject) => {
      // A server pg_ctl starts would hold our pipes open for as long as it runs.
      const child = spawn(cmd, a, { env: this.env(), stdio: detach ? ['ignore', 'ignore', 'pipe'] : ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, output }));
    });
  }

  async stop(): Promise<void> {
    if (!this.child) return;
    if (this.exited === undefined) {
      const r = await this.ctl(['-D', this.opts.dataDir, '-m', 'fast', '-w', '-t', '120', 'stop']).catch(() => ({ code: -1 }));
      if (r.code !== 0) await this.ctl(['-D', this.opts.dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    }
    // runuser (or postgres itself) exits once the server is down.
    if (this.exited === undefined && this.child) await new Promise<void>((r) => (this.exited !== undefined ? r() : this.child?.once('exit', () => r())));
  }

  /** log/ in the data directory (PostgreSQL's own default place for logs), for the restarted server. */
  async logDir(): Promise<void> {
    const d = path.join(this.opts.dataDir, 'log');
    await fs.mkdir(d, { recursive: true, mode: 0o700 });
    if (process.getuid?.() === 0) await fs.chown(d, this.owner.uid, this.owner.gid);
  }

  async logTail(lines = 30): Promise<string> {
    const text = await fs.readFile(this.log, 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }
}

async function userName(uid: number): Promise<string> {
  const text = await fs.readFile('/etc/passwd', 'utf8').catch(() => '');
  const line = text.split('\n').find((l) => l.split(':')[2] === String(uid));
  if (!line) throw new LifeboatError('PERMISSION', `no user with uid ${uid} owns the restored data directory`, { hint: 'create the PostgreSQL service user on this host' });
  return line.split(':')[0]!;
}
