/**
 * An application writing to Redis for point-in-time tests: a few hundred mixed commands
 * a second, one at a time (each reply awaited before the next is sent), from a seeded
 * random mix: strings (SET, APPEND, INCR, INCRBYFLOAT), hashes, sorted sets, sets,
 * lists, long and short expiries, MULTI/EXEC transactions and writes to database 1.
 *
 * `moment()` records, between two writes, the whole dataset and the wall-clock moment:
 * after one reply and before the next send. First WAIT asks the replica (the replicator)
 * to acknowledge everything written so far, so every write before the moment has reached
 * it before the moment; the moment is taken last, and the next write is sent only once
 * the clock has moved past it (restore times have milliseconds). A restore to the moment
 * must then give exactly the dataset recorded.
 *
 * When the server goes away (a crash, a restart) the writer reconnects by itself and
 * carries on; the keys it writes come back as it goes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isLifeboatError } from '../../src/errors.js';
import { RedisConnection, parseRedisUrl } from '../../src/sources/redis/connection.js';
import { RespError, type RespValue } from '../../src/sources/redis/resp.js';
import { readDataset, type Dataset } from './redis-server.js';

export interface Moment {
  /** Unix ms: every write acknowledged before it is in, none sent after it. */
  at: number;
  dataset: Dataset;
  /** Writes acknowledged by then. */
  commands: number;
}

/** Seeded PRNG (mulberry32): the same mix every run for a seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Cmd = Array<string | number>;

export class MixedWriter {
  /** Commands acknowledged (a transaction counts each of its commands). */
  commands = 0;
  reconnects = 0;
  /** Error replies (there should be none: every key prefix keeps one type). */
  readonly errors: string[] = [];
  private conn: RedisConnection | undefined;
  private reader: RedisConnection | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly rand: () => number;
  private readonly waiters: Array<{ n: number; resolve: () => void; reject: (e: Error) => void }> = [];
  /** Why the writer stopped by itself (a bug in the test, not a server going away). */
  failure: Error | undefined;

  constructor(
    private readonly url: string,
    private readonly opts: { rate: number; seed: number; password?: string },
  ) {
    this.rand = prng(opts.seed);
  }

  start(): void {
    this.loop = this.run();
  }

  /** Resolves once `n` more commands than now have been acknowledged. */
  async more(n: number, timeoutMs = 60_000): Promise<void> {
    const target = this.commands + n;
    if (this.failure) throw this.failure;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve, reject) => this.waiters.push({ n: target, resolve, reject })),
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the writer did not reach ${target} commands in ${timeoutMs} ms (at ${this.commands}; errors: ${this.errors.slice(-3).join('; ')})`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Records the dataset and the moment between two writes (see the header). */
  moment(): Promise<Moment> {
    return this.exclusive(() => this.record());
  }

  /** Records a moment and then, as the very next write, runs `cmd` (FLUSHDB: the accident). */
  momentThen(cmd: Cmd): Promise<Moment> {
    return this.exclusive(async () => {
      const m = await this.record();
      await this.send(cmd);
      return m;
    });
  }

  /** Stops after the current step; throws what stopped the writer by itself, if anything did. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.drop();
    if (this.failure) throw this.failure;
  }

  private async record(): Promise<Moment> {
    const { conn, reader } = await this.connected();
    // Everything written so far has reached the replica (it acknowledged the offset).
    const acked = await conn.ok(['WAIT', 1, 20_000]);
    if (acked !== 1) throw new Error(`no replica acknowledged the writes within 20 s (WAIT answered ${String(acked)}): is the replicator attached?`);
    const dataset = await readDataset(reader);
    const at = Date.now();
    // The next write goes out in a later millisecond than the moment.
    while (Date.now() <= at) await new Promise((r) => setImmediate(r));
    return { at, dataset, commands: this.commands };
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async connected(): Promise<{ conn: RedisConnection; reader: RedisConnection }> {
    for (;;) {
      try {
        if (!this.conn) this.conn = await RedisConnection.open(parseRedisUrl(this.url), { password: this.opts.password, timeoutMs: 10_000 });
        if (!this.reader) this.reader = await RedisConnection.open(parseRedisUrl(this.url), { password: this.opts.password, timeoutMs: 10_000 });
        return { conn: this.conn, reader: this.reader };
      } catch (err) {
        this.drop();
        if (this.stopped || !isLifeboatError(err, 'SOURCE_UNAVAILABLE')) throw err;
        // The server is down: try again until it is back (the test restarts it).
        await sleep(50);
      }
    }
  }

  private drop(): void {
    this.conn?.close();
    this.reader?.close();
    this.conn = undefined;
    this.reader = undefined;
  }

  private async send(cmd: Cmd): Promise<RespValue> {
    const { conn } = await this.connected();
    const v = await conn.call(cmd);
    if (v instanceof RespError) this.errors.push(`${cmd.join(' ').slice(0, 80)}: ${v.message}`);
    this.commands++;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i] as (typeof this.waiters)[number];
      if (this.commands >= w.n) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
    return v;
  }

  private async run(): Promise<void> {
    const started = Date.now();
    while (!this.stopped) {
      try {
        await this.exclusive(async () => {
          for (const cmd of this.step()) await this.send(cmd);
        });
      } catch (err) {
        if (!isLifeboatError(err, 'SOURCE_UNAVAILABLE') && !isLifeboatError(err, 'INTERRUPTED')) {
          this.failure = err as Error;
          for (const w of this.waiters.splice(0)) w.reject(this.failure);
          return;
        }
        // The connection broke (the server crashed or restarted); the step may be half done,
        // as an application's would be. Reconnect and carry on.
        this.drop();
        this.reconnects++;
        continue;
      }
      // Pacing, not waiting for a condition: the writer's rate.
      const due = started + (this.commands * 1000) / this.opts.rate;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  }

  private pick(n: number): number {
    return Math.floor(this.rand() * n);
  }

  private text(max: number): string {
    const n = 1 + this.pick(max);
    let s = '';
    while (s.length < n) s += this.rand().toString(36).slice(2);
    return s.slice(0, n);
  }

  /** One step of the mix: one command, a transaction, or a write to database 1. */
  private step(): Cmd[] {
    const r = this.pick(100);
    const i = (n: number) => this.pick(n);
    if (r < 10) return [['SET', `str:${i(80)}`, this.text(200)]];
    if (r < 16) return [['APPEND', `str:${i(80)}`, this.text(20)]];
    if (r < 22) return [['INCR', `cnt:${i(40)}`]];
    if (r < 25) return [['INCRBY', `cnt:${i(40)}`, i(1000) - 500]];
    if (r < 27) return [['INCRBYFLOAT', `flt:${i(10)}`, (this.rand() * 10).toFixed(3)]];
    if (r < 35) return [['HSET', `h:${i(40)}`, `f${i(20)}`, this.text(40), `f${i(20)}`, this.text(10)]];
    if (r < 38) return [['HINCRBY', `h:${i(40)}`, `n${i(5)}`, i(100)]];
    if (r < 41) return [['HDEL', `h:${i(40)}`, `f${i(20)}`]];
    if (r < 49) return [['ZADD', `z:${i(30)}`, (this.rand() * 1000).toFixed(2), `m${i(50)}`]];
    if (r < 52) return [['ZINCRBY', `z:${i(30)}`, i(10), `m${i(50)}`]];
    if (r < 54) return [['ZREM', `z:${i(30)}`, `m${i(50)}`]];
    if (r < 58) return [['SADD', `s:${i(20)}`, `m${i(30)}`, `m${i(30)}`]];
    if (r < 60) return [['SREM', `s:${i(20)}`, `m${i(30)}`]];
    if (r < 64) return [['RPUSH', `l:${i(15)}`, this.text(30)]];
    if (r < 65) return [['LTRIM', `l:${i(15)}`, -30, -1]];
    if (r < 67) return [['LPOP', `l:${i(15)}`]];
    // Long expiries (an hour or two): compared, expiry time included.
    if (r < 71) return [['SET', `ttl:${i(30)}`, this.text(50), 'EX', 3600 + i(3600)]];
    if (r < 72) return [['EXPIRE', `h:${i(40)}`, 7200]];
    if (r < 73) return [['PERSIST', `ttl:${i(30)}`]];
    // Short expiries: they run out during the test (the server propagates their deletion).
    if (r < 76) return [['SET', `tmp:${i(10)}`, this.text(20), 'PX', 300 + i(2500)]];
    if (r < 78) return [['DEL', `str:${i(80)}`]];
    if (r < 79) return [['UNLINK', `z:${i(30)}`]];
    if (r < 94) {
      return [
        ['MULTI'],
        ['INCR', `cnt:${i(40)}`],
        ['HSET', `h:${i(40)}`, `f${i(20)}`, this.text(30)],
        ['ZADD', `z:${i(30)}`, i(100), `m${i(50)}`],
        ['SET', `str:${i(80)}`, this.text(60)],
        ['EXEC'],
      ];
    }
    if (r < 97) return [['SELECT', 1], ['SET', `d1:${i(20)}`, this.text(40)], ['SELECT', 0]];
    return [['SELECT', 1], ['HSET', `d1h:${i(5)}`, `f${i(10)}`, this.text(20)], ['SELECT', 0]];
  }
}
