/**
 * Scratch Redis servers for tests: Debian's redis-server on a free port of 127.0.0.1,
 * in a scratch directory, without persistence (`save ""`, `appendonly no`, as the
 * machine's own Redis runs), optionally with a password (in the server's config file,
 * never on argv) and with DEBUG allowed from localhost (DEBUG DIGEST-VALUE fingerprints
 * a value whatever its encoding, so a restored copy compares with the live one).
 *
 * A server is ready when it answers PING with PONG (not LOADING): a condition waited
 * for, never a guessed time. Every server started here is stopped by stopAllRedis()
 * (call it in afterAll) and, should the test process end first, killed on the way out.
 *
 * readDataset() reads what a user would compare, key by key: the type, the value's
 * digest and the absolute expiry (PEXPIRETIME) of every key of every database.
 * rdb() pulls a server's data as a replica would, checkRdb() runs redis-check-rdb.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { RedisConnection, keyspace, parseRedisUrl } from '../../src/sources/redis/connection.js';
import { RespError, asText, type RespValue } from '../../src/sources/redis/resp.js';
import { freePort } from '../pg-cluster.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

const execFileP = promisify(execFile);

export interface RedisServerOptions {
  /** requirepass (written to the server's config file, 0600). */
  password?: string | undefined;
  /** Allow DEBUG from localhost (default true: DEBUG DIGEST-VALUE is how values are compared). */
  debug?: boolean;
  /** An RDB to start from: copied into the server's directory, the original is left as it is. */
  rdb?: string | undefined;
  /** A port to listen on (a restart on the same address); otherwise a free one. */
  port?: number;
  /** More config lines (`name value`). */
  conf?: string[];
  /** How long to wait for readiness (loading a large RDB takes a while). */
  readyTimeoutMs?: number;
}

const running = new Set<RedisServer>();

// Last resort, should a test process end without afterAll: no server outlives it.
process.once('exit', () => {
  for (const s of running) s.child.kill('SIGKILL');
});

export class RedisServer {
  readonly exited: Promise<number | null>;
  private stopping = false;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly dir: string,
    /** What it was started with: a restart() keeps it. */
    private readonly opts: RedisServerOptions,
    private ownsDir: boolean,
  ) {
    this.exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
    running.add(this);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get password(): string | undefined {
    return this.opts.password;
  }

  get log(): string {
    try {
      return readFileSync(path.join(this.dir, 'redis.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Starts a server and waits until it answers (retrying on another port if the free one was taken meanwhile). */
  static async start(opts: RedisServerOptions = {}): Promise<RedisServer> {
    for (let attempt = 0; ; attempt++) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-redis-'));
      const port = opts.port ?? (await freePort());
      const server = RedisServer.spawn(dir, port, opts, true);
      try {
        await server.ready(opts.readyTimeoutMs ?? 30_000);
        return server;
      } catch (err) {
        await server.stop();
        const taken = /Address already in use/.test(server.log);
        rmSync(dir, { recursive: true, force: true });
        if (!taken || opts.port !== undefined || attempt >= 3) throw err;
      }
    }
  }

  private static spawn(dir: string, port: number, opts: RedisServerOptions, ownsDir: boolean): RedisServer {
    // Without an RDB to start from a server starts empty, even in the directory of one that had one (a restart).
    if (opts.rdb) copyFileSync(opts.rdb, path.join(dir, 'dump.rdb'));
    else rmSync(path.join(dir, 'dump.rdb'), { force: true });
    const conf = [
      `port ${port}`,
      'bind 127.0.0.1',
      'save ""',
      'appendonly no',
      `dir ${dir}`,
      'dbfilename dump.rdb',
      `logfile ${path.join(dir, 'redis.log')}`,
      'daemonize no',
      // A shutdown does not wait for replicas (the replicator under test) to catch up.
      'shutdown-timeout 0',
      ...(opts.debug === false ? [] : ['enable-debug-command local']),
      ...(opts.password !== undefined ? [`requirepass "${opts.password.replace(/["\\]/g, '\\$&')}"`] : []),
      ...(opts.conf ?? []),
    ];
    const file = path.join(dir, 'redis.conf');
    writeFileSync(file, `${conf.join('\n')}\n`, { mode: 0o600 });
    const child = spawn(REDIS_SERVER, [file], { stdio: 'ignore' });
    return new RedisServer(child, port, dir, opts, ownsDir);
  }

  /** Waits until PING answers PONG: listening, logged in, and done loading. */
  async ready(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'not started';
    for (;;) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`redis-server on port ${this.port} exited (${this.child.exitCode ?? this.child.signalCode}): ${this.log.slice(-1500)}`);
      }
      try {
        const c = await this.client(2000);
        try {
          const pong = await c.call(['PING']);
          if (pong === 'PONG') return;
          last = pong instanceof RespError ? pong.message : String(pong);
        } finally {
          c.close();
        }
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} not ready in ${timeoutMs} ms (${last}): ${this.log.slice(-1500)}`);
      await sleep(25);
    }
  }

  /** A connection, logged in when the server has a password. */
  client(timeoutMs = 10_000): Promise<RedisConnection> {
    return RedisConnection.open(parseRedisUrl(this.url), { password: this.password, timeoutMs });
  }

  /** Calls `fn` with a fresh connection, closed when it is done. */
  async withClient<T>(fn: (c: RedisConnection) => Promise<T>): Promise<T> {
    const c = await this.client();
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  }

  /** Runs commands in order on one fresh connection (a SELECT holds for those after it); their replies. */
  run(...commands: Array<ReadonlyArray<string | number | Buffer>>): Promise<RespValue[]> {
    return this.withClient(async (c) => {
      const out: RespValue[] = [];
      for (const args of commands) out.push(await c.ok(args));
      return out;
    });
  }

  /** Runs one command on a fresh connection. */
  async command(args: ReadonlyArray<string | number | Buffer>): Promise<RespValue> {
    return (await this.run(args))[0] as RespValue;
  }

  /** Keys per database, as INFO keyspace counts them: { db0: 5, db1: 1 }. */
  keys(): Promise<Record<string, number>> {
    return this.withClient(async (c) => keyspace(await c.info('keyspace')));
  }

  /** Its data as an RDB, pulled as a replica would (`redis-cli --rdb`; a password goes by REDISCLI_AUTH, never on argv). */
  async rdb(): Promise<Buffer> {
    const file = path.join(this.dir, 'pulled.rdb');
    // REDISCLI_AUTH is set (or unset) for this server alone, whatever the test process has.
    await execFileP('redis-cli', ['-p', String(this.port), '--rdb', file], { env: { ...process.env, REDISCLI_AUTH: this.password } });
    try {
      return readFileSync(file);
    } finally {
      rmSync(file, { force: true });
    }
  }

  /** Stops the server (SIGTERM: without persistence nothing is saved), SIGKILL if it lingers; removes its directory. */
  async stop(): Promise<void> {
    await this.end('SIGTERM');
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** A crash: SIGKILL, the data (in memory only) is gone. The directory stays for restart(). */
  async kill9(): Promise<void> {
    await this.end('SIGKILL');
  }

  /** A clean shutdown (SIGTERM): the data (in memory only) is gone. The directory stays for restart(). */
  async shutdown(): Promise<void> {
    await this.end('SIGTERM');
  }

  /**
   * A new server on the same port and in the same directory, with the options this one
   * was started with unless `opts` says otherwise: empty (there is no persistence), or
   * holding `opts.rdb`.
   */
  async restart(opts: Omit<RedisServerOptions, 'port'> = {}): Promise<RedisServer> {
    if (this.child.exitCode === null && this.child.signalCode === null) await this.end('SIGTERM');
    // The directory passes to the new server: stopping this one later must not remove it.
    const next = RedisServer.spawn(this.dir, this.port, { ...this.opts, rdb: undefined, ...opts }, this.ownsDir);
    this.ownsDir = false;
    try {
      await next.ready(opts.readyTimeoutMs ?? 30_000);
    } catch (err) {
      await next.stop();
      throw err;
    }
    return next;
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    running.delete(this);
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (!this.stopping) {
      this.stopping = true;
      this.child.kill(signal);
    } else if (signal === 'SIGKILL') this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Stops every server this process started and has not stopped (afterAll). */
export async function stopAllRedis(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}

/** What a restore must bring back of one key. */
export interface KeyState {
  type: string;
  /** DEBUG DIGEST-VALUE: the same for equal values whatever their encoding (listpack, hashtable…). */
  digest: string;
  /** Absolute expiry in Unix ms (PEXPIRETIME), -1 without one. */
  expireAt: number;
}

/** Every key of every database: `db<n>:<key>` → its state. */
export type Dataset = Record<string, KeyState>;

function text(v: RespValue, what: string): string {
  const t = asText(v);
  if (t === undefined) throw new Error(`${what}: unexpected reply ${v instanceof RespError ? v.message : JSON.stringify(v)}`);
  return t;
}

/**
 * Reads the whole dataset through `conn` (which must allow DEBUG): every database INFO
 * keyspace lists, its keys (KEYS: test datasets are small), and per key TYPE,
 * PEXPIRETIME and DEBUG DIGEST-VALUE, pipelined. Leaves the connection in database 0.
 * Reading only: nothing is written, apart from what Redis does itself to keys found expired.
 */
export async function readDataset(conn: RedisConnection): Promise<Dataset> {
  const out: Dataset = {};
  const dbs = Object.keys(keyspace(await conn.info('keyspace'))).map((d) => Number(d.slice(2)));
  for (const db of dbs.sort((a, b) => a - b)) {
    await conn.ok(['SELECT', db]);
    const keys = ((await conn.ok(['KEYS', '*'])) as RespValue[]).map((k) => text(k, 'KEYS'));
    if (keys.length === 0) continue;
    const replies = await Promise.all([
      ...keys.map((k) => conn.ok(['TYPE', k])),
      ...keys.map((k) => conn.ok(['PEXPIRETIME', k])),
      conn.ok(['DEBUG', 'DIGEST-VALUE', ...keys]),
    ]);
    const digests = replies[keys.length * 2] as RespValue[];
    keys.forEach((k, i) => {
      const type = text(replies[i] as RespValue, `TYPE ${k}`);
      // A key that expired between KEYS and TYPE: gone, as a reader would see it.
      if (type === 'none') return;
      out[`db${db}:${k}`] = { type, digest: text(digests[i] as RespValue, `DEBUG DIGEST-VALUE ${k}`), expireAt: Number(replies[keys.length + i]) };
    });
  }
  await conn.ok(['SELECT', 0]);
  return out;
}

/**
 * The keys a restore can be held to at time `now`: those without an expiry or expiring
 * well after it. A key whose time ran out between the recorded moment and the reading
 * of the restored copy is legitimately absent (Redis drops it on load), so keys
 * expiring within `marginMs` of `now` are left out on both sides.
 */
export function comparable(ds: Dataset, now: number, marginMs = 600_000): Dataset {
  const out: Dataset = {};
  for (const [k, v] of Object.entries(ds)) if (v.expireAt === -1 || v.expireAt > now + marginMs) out[k] = v;
  return out;
}

/** The dataset of an RDB file (a restore's dump.rdb): loaded into a scratch server, read, and the server stopped. */
export async function datasetOfRdb(rdb: string): Promise<Dataset> {
  const server = await RedisServer.start({ rdb, readyTimeoutMs: 120_000 });
  try {
    return await datasetOf(server);
  } finally {
    await server.stop();
  }
}

/** The dataset of a running server. */
export function datasetOf(server: RedisServer): Promise<Dataset> {
  return server.withClient(readDataset);
}

/** `redis-check-rdb FILE`: whether it accepts the file, and what it said. */
export function checkRdb(file: string): { ok: boolean; output: string } {
  const r = spawnSync('redis-check-rdb', [file], { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}
