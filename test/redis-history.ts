/**
 * Test helpers for Redis restores: scratch redis-servers on free ports, and a history
 * (a base RDB snapshot plus command segments with marks) written straight through the
 * Repository API, so restore tests do not depend on the shipping side.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { backupStream } from '../src/engine/backup/stream.js';
import type { Repository } from '../src/repo/repository.js';
import type { Snapshot } from '../src/repo/snapshot/snapshot.js';
import { keyspace, RedisConnection } from '../src/sources/redis/connection.js';
import { logSource } from '../src/sources/redis/names.js';
import type { RedisPoint } from '../src/sources/redis/point.js';
import { encodeCommand } from '../src/sources/redis/resp.js';
import { encodeSegment, segmentName, type Mark } from '../src/sources/redis/segment.js';
import { freePort } from './pg-cluster.js';
import { tmpdir } from './helpers.js';

const run = promisify(execFile);

export class TestRedis {
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly child: ChildProcess,
    readonly conn: RedisConnection,
  ) {}

  /** A redis-server on a free port of 127.0.0.1, loading DIR/dump.rdb when there is one. */
  static async start(dir = tmpdir('lb-redis-'), extra: string[] = [], password?: string): Promise<TestRedis> {
    const port = await freePort();
    const child = spawn('redis-server', ['-', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', 'dump.rdb', '--enable-debug-command', 'local', ...extra], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    // The password on stdin, as a config file: never on argv.
    child.stdin?.end(password === undefined ? '' : `requirepass ${password}\n`);
    const target = { host: '127.0.0.1', port, tls: false, display: `127.0.0.1:${port}` };
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const conn = await RedisConnection.open(target, { timeoutMs: 5000, password });
        const pong = await conn.call(['PING']);
        if (pong === 'PONG') return new TestRedis(port, dir, child, conn);
        conn.close();
      } catch (err) {
        if (Date.now() > deadline || child.exitCode !== null) throw err;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A stock server loading a restored dump.rdb (copied into a directory of its own). */
  static async loading(rdb: string): Promise<TestRedis> {
    const dir = tmpdir('lb-redis-load-');
    await fs.copyFile(rdb, path.join(dir, 'dump.rdb'));
    return TestRedis.start(dir);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async cmd(...args: Array<string | number>): Promise<unknown> {
    return this.conn.ok(args);
  }

  async keys(): Promise<Record<string, number>> {
    return keyspace(await this.conn.info('keyspace'));
  }

  /** Its data as an RDB, as redis-cli --rdb gets it. */
  async rdb(): Promise<Buffer> {
    const file = path.join(tmpdir('lb-redis-rdb-'), 'base.rdb');
    await run('redis-cli', ['-p', String(this.port), '--rdb', file]);
    return fs.readFile(file);
  }

  async stop(): Promise<void> {
    this.conn.close();
    if (this.child.exitCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await gone;
  }
}

export const REPLID = 'a'.repeat(40);
export const GENERATION = 'b'.repeat(20);

/** A base snapshot as the replicator stores one: the RDB as dump.rdb, with its point. */
export async function storeBase(repo: Repository, name: string, rdb: Buffer, point: Omit<RedisPoint, 'rdbBytes' | 'replid'> & { replid?: string }, time: Date): Promise<Snapshot> {
  const full: RedisPoint = { replid: REPLID, rdbBytes: rdb.length, ...point };
  return backupStream(repo, Readable.from([rdb]), {
    path: `/redis/${name}/dump.rdb`,
    source: { kind: 'redis', name },
    time,
    beforeSnapshot: async () => full as unknown as Record<string, unknown>,
  });
}

/** One step of history: commands whose bytes all arrived at `time`; a mark follows the step (never inside it). */
export interface Step {
  cmds: Array<Array<string | number>>;
  time: number;
}

/** Stores steps as segments (`perSegment` steps each) from `offset`, leaving out the segments numbered in `skip`; returns the end offset and each step's mark. */
export async function storeSegments(
  repo: Repository,
  name: string,
  generation: string,
  offset: number,
  steps: Step[],
  perSegment = 3,
  skip: readonly number[] = [],
): Promise<{ end: number; marks: Mark[] }> {
  const all: Mark[] = [];
  let at = offset;
  for (let i = 0; i < steps.length; i += perSegment) {
    const start = at;
    const parts: Buffer[] = [];
    const marks: Mark[] = [];
    for (const step of steps.slice(i, i + perSegment)) {
      for (const c of step.cmds) {
        const b = encodeCommand(c);
        parts.push(b);
        at += b.length;
      }
      marks.push([at, step.time]);
    }
    const meta = { v: 1 as const, replid: REPLID, start, end: at, marks };
    if (!skip.includes(i / perSegment)) await repo.putLog(logSource(name), generation, segmentName(meta), encodeSegment({ meta, stream: Buffer.concat(parts) }));
    all.push(...marks);
  }
  return { end: at, marks: all };
}
