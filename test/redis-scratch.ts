/**
 * Scratch Redis servers for tests: Debian's redis-server on a free port in a scratch
 * directory, without persistence (`--save "" --appendonly no`, like the machine's own),
 * optionally with a password (from a config file, as production setups give it), and a
 * tiny client over the project's own RedisConnection.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './pg-cluster.js';
import { RedisConnection, parseRedisUrl } from '../src/sources/redis/connection.js';
import type { RespValue } from '../src/sources/redis/resp.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

export interface ScratchRedisOptions {
  password?: string;
  /** Extra config lines. */
  config?: string[];
  port?: number;
}

export class ScratchRedis {
  private child: ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly opts: ScratchRedisOptions,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(opts: ScratchRedisOptions = {}): Promise<ScratchRedis> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-redis-'));
    const r = new ScratchRedis(dir, opts.port ?? (await freePort()), opts);
    await r.launch();
    return r;
  }

  /** Starts the server (again, after stop(): a server without persistence comes back empty, with a new history). */
  async launch(): Promise<void> {
    const conf = [
      `port ${this.port}`,
      'bind 127.0.0.1',
      `dir ${this.dir}`,
      'save ""',
      'appendonly no',
      'repl-diskless-sync-delay 0',
      'enable-debug-command local',
      ...(this.opts.password ? [`requirepass "${this.opts.password}"`] : []),
      ...(this.opts.config ?? []),
    ];
    const file = path.join(this.dir, 'redis.conf');
    writeFileSync(file, `${conf.join('\n')}\n`);
    this.child = spawn(REDIS_SERVER, [file], { stdio: ['ignore', 'ignore', 'inherit'] });
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const c = await this.client();
        await c.ok(['PING']);
        c.close();
        return;
      } catch (err) {
        if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`redis-server on ${this.port} did not start: ${String(err)}`);
        await sleep(50);
      }
    }
  }

  client(): Promise<RedisConnection> {
    return RedisConnection.open(parseRedisUrl(this.url), { password: this.opts.password, timeoutMs: 10_000 });
  }

  /** Runs commands on a fresh connection. */
  async run(...commands: Array<Array<string | number | Buffer>>): Promise<RespValue[]> {
    const c = await this.client();
    try {
      const out: RespValue[] = [];
      for (const cmd of commands) out.push(await c.ok(cmd));
      return out;
    } finally {
      c.close();
    }
  }

  /** Sends a signal to the server (SIGSTOP / SIGCONT: a server that stops answering). */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill(signal);
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A server started from an RDB file in a scratch directory, to read a backup back. */
export async function loadRdb(rdb: Buffer): Promise<ScratchRedis> {
  const r = await ScratchRedis.start({ config: [] }).then(async (s) => {
    await s.stop();
    writeFileSync(path.join(s.dir, 'dump.rdb'), rdb);
    await s.launch();
    return s;
  });
  return r;
}

/** `redis-check-rdb FILE`: its exit status and output. */
export function checkRdb(file: string): { ok: boolean; output: string } {
  const r = spawnSync('redis-check-rdb', [file], { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}
