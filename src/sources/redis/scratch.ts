/**
 * A private, throwaway redis-server for a restore: it replicates from the feed
 * (feed.ts), answers our checks, and saves the result as dump.rdb in its directory.
 *
 * Nothing about it is reachable by other users: its configuration (with both of its
 * passwords) goes in on stdin (`redis-server -`), never on argv; it listens on no TCP
 * port (`port 0`), only on a unix socket in a 0700 directory of ours with mode 700;
 * and it needs a password even there. It never writes outside that directory.
 *
 * It does not outlive us: on Linux it is started through `setpriv --pdeathsig KILL`, so
 * the kernel kills it when the restore is killed (kill -9 included), and a restore that
 * starts removes the directories of earlier ones whose owner process is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError, errno } from '../../errors.js';
import { assertPrivate } from '../../engine/private-dir.js';
import { RedisConnection, type RedisTarget } from './connection.js';
import { RDB_FILE } from './names.js';
import { OWNER_FILE, findExecutable, removeOrphanDirs, tiedCommand } from '../../util/tied-child.js';

export interface ScratchOptions {
  /** The redis-server binary (default: found on PATH). */
  bin?: string;
  /** Where the private directory is made (default: the system temp directory). */
  parent?: string;
  /** The feed to replicate from. */
  masterPort?: number;
  masterAuth?: string;
  /** Or a dump to load instead (a group drill's restored member): linked, else copied, into the private directory. */
  rdb?: string;
  /** How long the server may take to answer PING after it started. */
  readyMs?: number;
}

/** A unix socket path must fit sockaddr_un (108 bytes with its NUL). */
const MAX_SOCKET_PATH = 100;
/**
 * How long one reply of the scratch server may take: SAVE of a dataset of gigabytes
 * takes minutes, and the server is ours alone (a stopped server is noticed at once).
 */
const REPLY_MS = 30 * 60_000;
/** The last bytes of the server's log, kept for an error message. */
const LOG_TAIL = 4096;

/** A value for redis.conf, quoted as its parser (sdssplitargs) reads it back. */
export function confValue(v: string): string {
  if (/[\0-\x1f\x7f]/.test(v)) throw new LifeboatError('USAGE', `${JSON.stringify(v)} cannot go into a Redis configuration`, { hint: 'use a path without control characters' });
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export class ScratchRedis {
  private log = '';
  private exited: string | undefined;
  /** The process ended and its output was read to the end. */
  private closed = false;
  private readonly killOnExit = () => this.child.kill('SIGKILL');

  /** Logged in over the unix socket once the server is up. */
  conn!: RedisConnection;

  private constructor(
    readonly dir: string,
    private readonly child: ChildProcess,
  ) {
    const keep = (d: Buffer) => (this.log = (this.log + d.toString('utf8')).slice(-LOG_TAIL));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('exit', (code, signal) => (this.exited = signal ? `killed by ${signal}` : `exit status ${code}`));
    child.once('close', () => (this.closed = true));
  }

  /**
   * Resolves once the server has ended and all it wrote has been read (its last log
   * lines say why it stopped), or after `limitMs` when it is still running.
   */
  ended(limitMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, limitMs);
      this.child.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  get rdbPath(): string {
    return path.join(this.dir, RDB_FILE);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  static async start(opts: ScratchOptions): Promise<ScratchRedis> {
    let parent = opts.parent ?? os.tmpdir();
    if (path.join(parent, 'lifeboat-redis-XXXXXX', 'redis.sock').length > MAX_SOCKET_PATH) parent = '/tmp';
    // mkdtemp makes it 0700; checked anyway (a parent we do not control could be odd).
    await removeOrphanDirs(parent, 'lifeboat-redis-');
    const dir = await fs.mkdtemp(path.join(parent, 'lifeboat-redis-'));
    let child: ChildProcess | undefined;
    try {
      await assertPrivate(dir);
      await fs.writeFile(path.join(dir, OWNER_FILE), `${process.pid}\n`, { mode: 0o600, flag: 'wx' });
      const password = randomBytes(32).toString('hex');
      const socket = path.join(dir, 'redis.sock');
      const config = [
        'port 0',
        `unixsocket ${confValue(socket)}`,
        'unixsocketperm 700',
        `dir ${confValue(dir)}`,
        `dbfilename ${RDB_FILE}`,
        'save ""',
        'appendonly no',
        'daemonize no',
        'protected-mode yes',
        // A replica runs whatever its master sends. The stream comes from the repository,
        // authenticated, but should a forged one get there it must not move the server's
        // files (CONFIG SET dir/dbfilename) or load code: Redis 7's defaults, stated here
        // so that a changed default or an included config cannot open them.
        'enable-protected-configs no',
        'enable-module-command no',
        `requirepass ${password}`,
        ...(opts.masterPort === undefined ? [] : [`masterauth ${opts.masterAuth ?? ''}`, `replicaof 127.0.0.1 ${opts.masterPort}`]),
        // A source may use more than the default 16 databases (its `databases`): a replica
        // that could not SELECT one would drop those commands.
        'databases 1024',
        // Generous: reading segments from a remote repository may pause the stream.
        'repl-timeout 600',
        'repl-diskless-load disabled',
        'enable-debug-command local',
        'loglevel notice',
        'logfile ""',
        '',
      ].join('\n');
      if (opts.rdb !== undefined) {
        // A link costs nothing for a dump of gigabytes; the server only reads it (save "", SHUTDOWN NOSAVE).
        await fs.link(opts.rdb, path.join(dir, RDB_FILE)).catch(() => fs.copyFile(opts.rdb as string, path.join(dir, RDB_FILE)));
      }
      // Found first: through setpriv a missing binary would be setpriv's failure, not ENOENT.
      const bin = findExecutable(opts.bin ?? 'redis-server');
      if (!bin) throw notInstalled(opts.bin ?? 'redis-server', 'ENOENT');
      const { cmd, args } = tiedCommand(bin, ['-']);
      child = spawn(cmd, args, { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
      const target: RedisTarget = { host: 'localhost', port: 0, tls: false, socket, display: 'the scratch redis-server' };
      const started = new Promise<void>((resolve, reject) => {
        (child as ChildProcess).once('spawn', resolve);
        (child as ChildProcess).once('error', (err) => reject(notInstalled(opts.bin ?? 'redis-server', errno(err) ?? err.message)));
      });
      await started;
      const scratch = new ScratchRedis(dir, child);
      process.once('exit', scratch.killOnExit);
      child.stdin?.on('error', () => {}); // an early exit is reported by connect()
      child.stdin?.end(config);
      try {
        await scratch.connect(target, password, opts.readyMs ?? 30_000);
      } catch (err) {
        process.off('exit', scratch.killOnExit);
        throw err;
      }
      return scratch;
    } catch (err) {
      child?.kill('SIGKILL');
      await fs.rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Waits until the server answers PING over its socket (or exits, or the deadline passes). */
  private async connect(target: RedisTarget, password: string, readyMs: number): Promise<void> {
    const deadline = Date.now() + readyMs;
    for (;;) {
      this.assertRunning();
      try {
        const conn = await RedisConnection.open(target, { password, timeoutMs: REPLY_MS });
        try {
          await conn.ok(['PING']);
        } catch (err) {
          conn.close();
          throw err;
        }
        this.conn = conn;
        return;
      } catch (err) {
        if (Date.now() > deadline) throw scratchFailed(`the scratch redis-server did not answer within ${Math.round(readyMs / 1000)} s: ${(err as Error).message}`, this.log);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Throws RECOVERY_FAILED (with the end of its log) when the server is no longer running. */
  assertRunning(): void {
    if (this.exited) throw scratchFailed(`the scratch redis-server stopped (${this.exited})`, this.log);
  }

  /** The end of the server's log, for messages. */
  logTail(): string {
    return this.log;
  }

  /** The line of its log most likely to say what went wrong (see `reason`). */
  logReason(): string | undefined {
    return reason(this.log);
  }

  /** SAVE, then the path of the dump it wrote. */
  async save(): Promise<string> {
    await this.conn.ok(['SAVE'], 'SAVE');
    return this.rdbPath;
  }

  /** SHUTDOWN NOSAVE (killed when it does not go within a few seconds), then its directory is removed. Never throws. */
  async stop(): Promise<void> {
    process.off('exit', this.killOnExit);
    const gone = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
    this.conn?.call(['SHUTDOWN', 'NOSAVE']).catch(() => {});
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
    this.conn?.close();
    await fs.rm(this.dir, { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * The telling line of a redis-server log: the last one naming a fatal load error (after
 * one, Redis prints a long RDB check report), else its last warning (`#`), else its last.
 */
export function reason(log: string): string | undefined {
  const lines = log.split('\n').map((l) => l.trim()).filter(Boolean);
  const find = (re: RegExp) => [...lines].reverse().find((l) => re.test(l));
  return (
    find(/Unrecoverable|Short read|Wrong signature|Can't handle|Bad file format|FATAL|Internal error/i) ??
    find(/^\d+:[A-Z] .* # /) ??
    find(/RDB ERROR/) ??
    lines[lines.length - 1]
  );
}

function scratchFailed(message: string, log: string): LifeboatError {
  const last = reason(log);
  return new LifeboatError('RECOVERY_FAILED', message, { hint: last ? `its log ends: ${last.slice(0, 300)}` : 'run redis-server by hand to see why' });
}

function notInstalled(bin: string, why: string): LifeboatError {
  return new LifeboatError('RECOVERY_FAILED', `cannot start ${bin}: ${why}`, {
    hint: why === 'ENOENT' ? 'install it (Debian: apt-get install redis-server) or name it with --redis-server' : 'check the binary',
  });
}
