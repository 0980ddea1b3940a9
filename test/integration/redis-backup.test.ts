/**
 * `lifeboat redis backup` against real redis-server instances (no persistence): the
 * stored dump.rdb passes redis-check-rdb and, loaded by a stock redis-server, holds
 * exactly the keys, values and expiries of the server it was taken from; a wrong or
 * missing password, an unreachable server and a password in the URL are refused with
 * one line and their exit codes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTmp, cliExpecting, expectError, initRepo, pseudoRandom, runCli, snapshotsJson, tmpdir } from '../helpers.js';
import { freePort } from '../pg-cluster.js';
import { RedisServer, checkRdb, stopAllRedis } from '../helpers/redis-server.js';
import { encodeCommand, type RespValue } from '../../src/sources/redis/resp.js';

const ENV = { LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_REDIS_PASSWORD: undefined, REDISCLI_AUTH: undefined };
const SOURCE_UNAVAILABLE = 19;
const USAGE = 2;

// A full sync starts at once, where servers wait 5 s for more replicas by default.
const NO_SYNC_DELAY = ['repl-diskless-sync-delay 0'];

let plain: RedisServer;
let locked: RedisServer;
let repo: string;
let dir: string;

beforeAll(async () => {
  dir = tmpdir('lb-redis-backup-');
  repo = path.join(dir, 'repo');
  await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
  plain = await RedisServer.start({ conf: NO_SYNC_DELAY });
  // This one waits for more replicas before it forks, as servers do by default (5 s): keepalive newlines come before +FULLRESYNC.
  locked = await RedisServer.start({ password: 's3cret pass', conf: ['repl-diskless-sync-delay 2'] });
});

afterAll(async () => {
  await stopAllRedis();
  cleanupTmp();
});

/** Every key of every database with its type, value digest and expiry time. */
async function contents(s: RedisServer): Promise<Record<string, string>> {
  const c = await s.client();
  const out: Record<string, string> = {};
  try {
    for (let db = 0; db < 16; db++) {
      await c.ok(['SELECT', db]);
      const keys = (await c.ok(['KEYS', '*'])) as Buffer[];
      for (const k of keys) {
        // DIGEST-VALUE, not DUMP: a small set's encoding order may change on reload, its value does not.
        const digest = (await c.ok(['DEBUG', 'DIGEST-VALUE', k])) as RespValue[];
        const type = (await c.ok(['TYPE', k])) as string;
        const expireAt = (await c.ok(['PEXPIRETIME', k])) as number;
        out[`${db}/${k.toString('latin1')}`] = `${type} ${String(digest[0])} ${expireAt}`;
      }
    }
    out.digest = String((await c.ok(['DEBUG', 'DIGEST'])) as RespValue);
  } finally {
    c.close();
  }
  return out;
}

async function populate(s: RedisServer): Promise<void> {
  const big = 'x'.repeat(200_000);
  const cmds: Array<Array<string | number>> = [
    ['SET', 'str', 'hello'],
    ['SET', 'big', big],
    ['SET', 'counter', 42],
    ['HSET', 'hash', 'a', '1', 'b', '2', 'c', 'three'],
    ['SADD', 'set', 'x', 'y', 'z'],
    ['ZADD', 'zset', 1, 'one', 2.5, 'two-and-half', 3, 'three'],
    ['RPUSH', 'list', 'l1', 'l2', 'l3'],
    ['SET', 'expiring', 'soon', 'PX', 3_600_000],
    ['PEXPIREAT', 'hash', Date.now() + 7_200_000],
    ['SELECT', 3],
    ['SET', 'in-db3', 'yes'],
    ['SADD', 'set3', 'a'],
    ['SELECT', 15],
    ['HSET', 'h15', 'f', 'v'],
    ['SELECT', 0],
  ];
  const c = await s.client();
  try {
    for (const cmd of cmds) await c.ok(cmd);
    for (let i = 0; i < 2000; i++) await c.ok(['SET', `k:${i}`, `value-${i}`]);
  } finally {
    c.close();
  }
}

async function restoredRdb(snapshot: string): Promise<Buffer> {
  const target = path.join(tmpdir('lb-redis-out-'), 'out');
  await cliExpecting(['-r', repo, 'restore', snapshot, '-t', target], 0, ENV);
  return readFileSync(path.join(target, 'redis', 'main', 'dump.rdb'));
}

/** COUNT incompressible 1 MiB values, pipelined on one socket; PING's reply says all were applied. */
function setMegabyteValues(port: number, count: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let seen = '';
    sock.on('data', (d: Buffer) => {
      seen = (seen + d.toString('latin1')).slice(-16);
      if (seen.endsWith('+PONG\r\n')) sock.end(resolve);
    });
    sock.on('error', reject);
    for (let i = 0; i < count; i++) sock.write(encodeCommand(['SET', `blob:${i}`, randomBytes(1 << 20)]));
    sock.write(encodeCommand(['PING']));
  });
}

describe('redis backup', () => {
  it('stores an RDB that redis-check-rdb accepts and a stock server loads with the same keys and values', async () => {
    await populate(plain);
    const before = await contents(plain);
    const r = await cliExpecting(['-r', repo, '--json', 'redis', 'backup', '--url', plain.url, '--name', 'main', '--tag', 'nightly'], 0, ENV);
    const out = JSON.parse(r.stdout) as { id: string; tags: string[]; point: { replid: string; offset: number; rdbBytes: number; keys: Record<string, number>; runId: string } };
    expect(out.tags).toEqual(['nightly']);
    expect(out.point.replid).toMatch(/^[0-9a-f]{40}$/);
    expect(out.point.keys).toEqual({ db0: 2008, db3: 2, db15: 1 });
    const rdb = await restoredRdb(out.id);
    expect(rdb.length).toBe(out.point.rdbBytes);
    expect(rdb.subarray(0, 5).toString('latin1')).toBe('REDIS');
    const file = path.join(tmpdir('lb-redis-rdb-'), 'dump.rdb');
    writeFileSync(file, rdb);
    const check = checkRdb(file);
    expect(check.ok, check.output).toBe(true);
    const copy = await RedisServer.start({ rdb: file });
    expect(await contents(copy)).toEqual(before);
    // The server is not left with us as a replica (rdb-only), and its disk was not written.
    const info = (await plain.run(['INFO', 'replication']))[0] as Buffer;
    expect(info.toString()).toMatch(/connected_slaves:0/);
  });

  it('a snapshot restored alone is checked against the memory its data took at backup time', async () => {
    // Some megabytes of mixed types, so the comparison is above its floor for small data.
    const c = await plain.client();
    try {
      for (let b = 0; b < 40; b++) {
        const pairs: string[] = [];
        for (let i = 0; i < 250; i++) pairs.push(`mem:${b}:${i}`, `v${i}-`.padEnd(150, 'x'));
        await c.ok(['MSET', ...pairs]);
        await c.ok(['HSET', `mem:h${b}`, ...pairs.slice(0, 200)]);
        await c.ok(['ZADD', `mem:z${b}`, ...pairs.slice(0, 200).flatMap((p, i) => (i % 2 ? [] : [i, p]))]);
        await c.ok(['RPUSH', `mem:l${b}`, ...pairs.slice(0, 200)]);
      }
    } finally {
      c.close();
    }
    const r = await cliExpecting(['-r', repo, '--json', 'redis', 'backup', '--url', plain.url, '--name', 'sized'], 0, ENV);
    const out = JSON.parse(r.stdout) as { id: string; point: { datasetMemory?: number } };
    expect(out.point.datasetMemory).toBeGreaterThan(2 << 20);
    const restored = await cliExpecting(['-r', repo, '--json', 'redis', 'restore', 'sized', '--snapshot', out.id, '-o', path.join(tmpdir('lb-redis-sized-'), 'out')], 0, ENV);
    const memory = (JSON.parse(restored.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks.find((k) => k.name === 'memory');
    expect(memory?.ok, memory?.detail).toBe(true);
    expect(memory?.detail).toMatch(/MiB of data, .* MiB at backup time/);
  });

  it('a second backup of a server with one key changed stores only the chunks around it', async () => {
    // 24 MiB of incompressible values (RDB compresses repetitive strings), so the RDB spans
    // many chunks. (With 8 MiB, three chunks of 1-3 MiB each came to more than half once:
    // where the changed key lands in the RDB follows the server's random hash seed.)
    for (let i = 0; i < 24; i++) await plain.run(['SET', `blob:${i}`, pseudoRandom(1 << 20, i + 1)]);
    await cliExpecting(['-r', repo, 'redis', 'backup', '--url', plain.url, '--name', 'main'], 0, ENV);
    await plain.run(['SET', 'str', 'changed']);
    const r = await cliExpecting(['-r', repo, '--json', 'redis', 'backup', '--url', plain.url, '--name', 'main'], 0, ENV);
    const out = JSON.parse(r.stdout) as { added_size: number; total_size: number };
    expect(out.total_size).toBeGreaterThan(24 << 20);
    // The header (times, memory), the chunk around the change and the last one (checksum): about 3 of ~24 chunks.
    expect(out.added_size).toBeLessThan(out.total_size / 2);
  });

  it('records key counts only when they are the RDB\'s: a snapshot taken under writes restores without a false key mismatch', async () => {
    const c = await plain.client();
    let writing = true;
    let n = 0;
    // New keys all the time, so counts read before the RDB differ from the RDB's own.
    const writer = (async () => {
      while (writing) await c.ok(['SET', `busy:${n++}`, 'x']);
    })();
    try {
      const r = await cliExpecting(['-r', repo, '--json', 'redis', 'backup', '--url', plain.url, '--name', 'busy'], 0, ENV);
      const out = JSON.parse(r.stdout) as { id: string; point: { keys?: Record<string, number> } };
      writing = false;
      await writer;
      const restored = await cliExpecting(['-r', repo, '--json', 'redis', 'restore', 'busy', '--snapshot', out.id, '-o', path.join(tmpdir('lb-redis-busy-'), 'out')], 0, ENV);
      const checks = (JSON.parse(restored.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks;
      const keys = checks.find((k) => k.name === 'keys');
      expect(keys?.ok, keys?.detail).toBe(true);
      if (out.point.keys) expect(keys?.detail).toMatch(/as recorded at backup time/);
    } finally {
      writing = false;
      await writer;
      c.close();
    }
  });

  it('logs in with a password from a file or the environment', async () => {
    await locked.run(['SET', 'guarded', 'value']);
    const pwFile = path.join(dir, 'redis-password');
    writeFileSync(pwFile, 's3cret pass\n', { mode: 0o600 });
    const r = await cliExpecting(['-r', repo, '--json', 'redis', 'backup', '--url', locked.url, '--name', 'locked', '--redis-password-file', pwFile], 0, ENV);
    // Logged in and backed up. (Key counts are not asserted here: this server delays its sync for more replicas and
    // may PING them meanwhile, which moves the offset, so the counts read before are rightly not recorded.)
    expect((JSON.parse(r.stdout) as { point: { rdbBytes: number } }).point.rdbBytes).toBeGreaterThan(0);
    await cliExpecting(['-r', repo, 'redis', 'backup', '--url', locked.url, '--name', 'locked'], 0, { ...ENV, LIFEBOAT_REDIS_PASSWORD: 's3cret pass' });
    await cliExpecting(['-r', repo, 'redis', 'backup', '--url', locked.url, '--name', 'locked'], 0, { ...ENV, REDISCLI_AUTH: 's3cret pass' });
  });

  it('refuses a wrong or missing password, an unreachable server and a password in the URL', async () => {
    const wrong = await runCli(['-r', repo, 'redis', 'backup', '--url', locked.url, '--name', 'locked'], { ...ENV, LIFEBOAT_REDIS_PASSWORD: 'nope' });
    expectError(wrong, SOURCE_UNAVAILABLE, /refused the login/);
    expect(wrong.stderr).not.toContain('nope');
    // The replicator too exits at start-up on a refused login, instead of retrying as if the server were down.
    const replicating = await runCli(['-r', repo, 'redis', 'replicate', '--url', locked.url, '--name', 'locked', '--interval', '1s'], { ...ENV, LIFEBOAT_REDIS_PASSWORD: 'nope' });
    expectError(replicating, SOURCE_UNAVAILABLE, /refused the login/);
    const missing = await runCli(['-r', repo, 'redis', 'backup', '--url', locked.url, '--name', 'locked'], ENV);
    expectError(missing, SOURCE_UNAVAILABLE, /NOAUTH|refused the login/);
    const port = await freePort();
    const down = await runCli(['-r', repo, 'redis', 'backup', '--url', `redis://127.0.0.1:${port}`], ENV);
    expectError(down, SOURCE_UNAVAILABLE, /cannot reach Redis at 127\.0\.0\.1:\d+/);
    const inUrl = await runCli(['-r', repo, 'redis', 'backup', '--url', `redis://:hunter2@127.0.0.1:${locked.port}`], ENV);
    expectError(inUrl, USAGE, /carries a password/);
    expect(inUrl.stderr).not.toContain('hunter2');
  });

  it('memory stays bounded: a 400 MiB RDB is streamed, not held', async () => {
    const big = await RedisServer.start({ conf: NO_SYNC_DELAY });
    try {
      await setMegabyteValues(big.port, 400);
      const maxRss = await new Promise<{ code: number | null; kb: number; err: string }>((resolve) => {
        const child = spawn('/usr/bin/time', ['-f', 'maxrss=%M', process.execPath, CLI, '-r', repo, 'redis', 'backup', '--url', big.url, '--name', 'big'], {
          env: { ...process.env, ...ENV, LIFEBOAT_REDIS_PASSWORD: '' },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let err = '';
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('close', (code) => resolve({ code, kb: Number(/maxrss=(\d+)/.exec(err)?.[1]), err }));
      });
      expect(maxRss.code, maxRss.err).toBe(0);
      // Holding the RDB would take 400 MiB on top of the program's own ~200 MiB (workers, packs in flight).
      expect(maxRss.kb * 1024).toBeLessThan(360 << 20);
    } finally {
      await big.stop();
    }
  });

  it('a server killed while its RDB is being stored: one line and a hint, no snapshot, no pack file left, check passes', async () => {
    const big = await RedisServer.start({ conf: NO_SYNC_DELAY });
    const r = path.join(tmpdir('lb-redis-killed-'), 'repo');
    await initRepo(r, ENV.LIFEBOAT_PASSWORD);
    /** The pack files a running backup has written in the repository's tmp/ (its spill directory). */
    const packFiles = () => readdirSync(path.join(r, 'tmp')).filter((d) => d.endsWith('.spill')).flatMap((d) => readdirSync(path.join(r, 'tmp', d)));
    try {
      await setMegabyteValues(big.port, 300);
      const child = spawn(process.execPath, [CLI, '-r', r, 'redis', 'backup', '--url', big.url, '--name', 'killed'], {
        env: { ...process.env, ...ENV, LIFEBOAT_REDIS_PASSWORD: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
      // The server dies once the backup has sealed its first blob into a pack file.
      const deadline = Date.now() + 60_000;
      while (packFiles().length === 0 && child.exitCode === null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(packFiles().length, stderr).toBeGreaterThan(0);
      await big.kill9();
      const code = await exited;
      expectError({ code, stdout, stderr }, code, /^lifeboat: /);
      expect(code).not.toBe(0);
      expect(stderr).not.toMatch(/^\s+at |Node\.js v/m);
      expect(packFiles()).toEqual([]);
      const snaps = await snapshotsJson(r, ENV.LIFEBOAT_PASSWORD);
      expect(snaps).toEqual([]);
      await cliExpecting(['-r', r, 'check'], 0, ENV);
    } finally {
      await big.stop();
    }
  });
});

