/**
 * Redis restores against real servers: a base RDB taken from a scratch redis-server and
 * command segments built here (strings, hashes, sorted sets, expiries past and future,
 * MULTI/EXEC across databases, FLUSHDB as the accident) are restored to several moments;
 * each dump.rdb is loaded into a stock redis-server and compared key by key with what
 * the commands give. Also: loading into a running server, checks, a gap, a stream the
 * scratch server refuses, and a local attacker on the feed's port.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drill } from '../../src/engine/drill/drill.js';
import { isLifeboatError } from '../../src/errors.js';
import '../../src/sources/all.js';
import { Repository } from '../../src/repo/repository.js';
import type { Snapshot } from '../../src/repo/snapshot/snapshot.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { redisRestore, type RedisRestoreOptions } from '../../src/sources/redis/restore.js';
import { encodeCommand } from '../../src/sources/redis/resp.js';
import { CLI, cleanupTmp, expectError, runCli, tmpdir } from '../helpers.js';
import { RedisServer, stopAllRedis } from '../helpers/redis-server.js';
import { GENERATION, storeBase, storeSegments, type Step } from '../redis-history.js';

type Db = Record<string, { type: string; value: unknown; ttl: boolean }>;

/** Every key of databases 0 and 1 with its type, value and whether it has a time to live. */
function contents(server: RedisServer): Promise<Db[]> {
  return server.withClient(async (c) => {
    const cmd = (...args: Array<string | number>) => c.ok(args);
    const out: Db[] = [];
    for (const db of [0, 1]) {
      await cmd('SELECT', db);
      const keys = ((await cmd('KEYS', '*')) as Buffer[]).map(String).sort();
      const d: Db = {};
      for (const k of keys) {
        const type = String(await cmd('TYPE', k));
        const value =
          type === 'string' ? String(await cmd('GET', k))
          : type === 'hash' ? ((await cmd('HGETALL', k)) as Buffer[]).map(String)
          : type === 'zset' ? ((await cmd('ZRANGE', k, 0, -1, 'WITHSCORES')) as Buffer[]).map(String)
          : type === 'list' ? ((await cmd('LRANGE', k, 0, -1)) as Buffer[]).map(String)
          : type;
        d[k] = { type, value, ttl: ((await cmd('PTTL', k)) as number) > 0 };
      }
      out.push(d);
    }
    return out;
  });
}

const s = (value: string, ttl = false) => ({ type: 'string', value, ttl });

/** What databases 0 and 1 hold after the first `n` steps. */
function expected(n: number): Db[] {
  const db0: Db = { a: s('1'), h: { type: 'hash', value: ['f', 'v'], ttl: false }, k: s('old'), l: { type: 'list', value: ['1', '2'], ttl: false }, z: { type: 'zset', value: ['m1', '1'], ttl: false } };
  const db1: Db = { b: s('2') };
  if (n >= 1) db0.a = s('2');
  if (n >= 2) db0.h = { type: 'hash', value: ['f', 'v', 'g', 'w'], ttl: false };
  if (n >= 3) db0.z = { type: 'zset', value: ['m1', '1', 'm2', '2'], ttl: false };
  // The master appended while k was alive, then made it persistent: a replay through a
  // normal client would see k expired and give "x".
  if (n >= 4) db0.k = s('oldx');
  if (n >= 5) db0.a = s('2', true);
  if (n >= 6) {
    db0.c = s('3');
    db1.b = s('3');
  }
  if (n >= 7) for (const k of Object.keys(db0)) delete db0[k];
  if (n >= 8) db0.after = s('1');
  return [db0, db1];
}

const now = Date.now();
const t0 = now - 3_600_000;
const at = (i: number) => t0 + i * 1000;
const STEPS: Step[] = [
  { cmds: [['SELECT', 0], ['SET', 'a', '2']], time: at(1) },
  { cmds: [['HSET', 'h', 'g', 'w']], time: at(2) },
  { cmds: [['ZADD', 'z', 2, 'm2']], time: at(3) },
  { cmds: [['PEXPIREAT', 'k', now - 7_200_000], ['APPEND', 'k', 'x'], ['PERSIST', 'k']], time: at(4) },
  { cmds: [['PEXPIREAT', 'a', now + 86_400_000]], time: at(5) },
  { cmds: [['MULTI'], ['SET', 'c', '3'], ['SELECT', 1], ['INCR', 'b'], ['EXEC']], time: at(6) },
  { cmds: [['SELECT', 0], ['FLUSHDB']], time: at(7) },
  { cmds: [['SET', 'after', '1']], time: at(8) },
];

let repoDir: string;
let repo: Repository;
let base: Snapshot;
let escape: string;

async function restored(opts: Omit<RedisRestoreOptions, 'name' | 'output'> & { name?: string }): Promise<{ db: Db[]; result: Awaited<ReturnType<typeof redisRestore>> }> {
  const output = path.join(tmpdir('lb-redis-out-'), 'out');
  const result = await redisRestore(repo, { name: 'cache', output, ...opts });
  const r = await RedisServer.start({ rdb: path.join(output, 'dump.rdb') });
  try {
    return { db: await contents(r), result };
  } finally {
    await r.stop();
  }
}

beforeAll(async () => {
  repoDir = path.join(tmpdir('lb-redis-repo-'), 'repo');
  repo = await Repository.init(new LocalStore(repoDir), 'test-password');
  const src = await RedisServer.start();
  await src.run(['SET', 'a', '1'], ['HSET', 'h', 'f', 'v'], ['ZADD', 'z', 1, 'm1'], ['SET', 'k', 'old'], ['RPUSH', 'l', '1', '2'], ['SELECT', 1], ['SET', 'b', '2']);
  const rdb = await src.rdb();
  const keys = await src.keys();
  expect(keys).toEqual({ db0: 5, db1: 1 });
  base = await storeBase(repo, 'cache', rdb, { offset: 1000, generation: GENERATION, keys }, new Date(t0));
  await storeSegments(repo, 'cache', GENERATION, 1000, STEPS);
  // A history with a missing segment (the second of three), and one the scratch server refuses.
  await storeBase(repo, 'gappy', rdb, { offset: 500, generation: GENERATION, keys }, new Date(t0));
  await storeSegments(repo, 'gappy', GENERATION, 500, STEPS.slice(0, 6), 2, [1]);
  // A base whose recorded memory its data does not have (values lost or truncated, the key counts intact).
  await storeBase(repo, 'hollow', rdb, { offset: 1000, generation: GENERATION, keys, datasetMemory: 64 << 20 }, new Date(t0));
  await storeBase(repo, 'broken', rdb, { offset: 1000, generation: GENERATION, keys }, new Date(t0));
  await storeSegments(repo, 'broken', GENERATION, 1000, [{ cmds: [['SELECT', 0], ['INCR', 'k']], time: at(1) }]);
  // A forged stream (someone who can write the repository): it tries to move the scratch server's files and load code.
  escape = tmpdir('lb-redis-escape-');
  await storeBase(repo, 'forged', rdb, { offset: 1000, generation: GENERATION, keys }, new Date(t0));
  await storeSegments(repo, 'forged', GENERATION, 1000, [
    { cmds: [['CONFIG', 'SET', 'dir', escape], ['CONFIG', 'SET', 'dbfilename', 'pwned.rdb'], ['MODULE', 'LOAD', path.join(escape, 'x.so')], ['SAVE']], time: at(1) },
  ]);
}, 60_000);

afterAll(async () => {
  await stopAllRedis();
  cleanupTmp();
});

describe('redis restore to a moment', () => {
  it('gives the base alone before the first command, checked against the recorded key counts', async () => {
    const { db, result } = await restored({ time: new Date(at(1) - 1) });
    expect(db).toEqual(expected(0));
    expect(result.segments).toBe(0);
    expect(result.offset).toBe(1000);
    expect(result.checks.find((c) => c.name === 'keys')?.detail).toMatch(/as recorded at backup time/);
    expect(result.checks.find((c) => c.name === 'redis-check-rdb')?.ok).toBe(true);
  });

  it('fails a restore whose data takes far less memory than was recorded at backup time, though the key counts agree', async () => {
    const err = await restored({ name: 'hollow', time: new Date(at(1) - 1) }).catch((e: unknown) => e);
    expect(isLifeboatError(err, 'RECOVERY_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/fails memory: the restored data takes 0\.\d MiB, at backup time 64\.0 MiB/);
  });

  for (const n of [1, 3, 4, 5, 6, 8]) {
    it(`gives exactly the state after step ${n} at its time`, async () => {
      const { db, result } = await restored({ time: new Date(at(n)) });
      expect(db).toEqual(expected(n));
      expect(result.restoredTo.getTime()).toBe(at(n));
      expect(result.warnings).toEqual([]);
    });
  }

  it('never cuts inside MULTI/EXEC: just before it, none of the transaction', async () => {
    const { db } = await restored({ time: new Date(at(6) - 1) });
    expect(db).toEqual(expected(5));
  });

  it('gives every key back just before the FLUSHDB, and the newest data by default', async () => {
    const before = await restored({ time: new Date(at(7) - 1) });
    expect(before.db).toEqual(expected(6));
    expect(Object.keys(before.db[0] ?? {}).length).toBe(6);
    expect((await restored({ time: new Date(at(7)) })).db).toEqual(expected(7));
    const latest = await restored({});
    expect(latest.db).toEqual(expected(8));
    expect(latest.result.keys).toEqual({ db0: 1, db1: 1 });
  });

  it('restores a snapshot alone with --snapshot', async () => {
    const { db, result } = await restored({ snapshot: base.id });
    expect(db).toEqual(expected(0));
    expect(result.segments).toBe(0);
  });

  it('stops at a gap with a warning naming the window', async () => {
    const { db, result } = await restored({ name: 'gappy' });
    expect(db).toEqual(expected(2));
    expect(result.warnings.join('\n')).toMatch(new RegExp(`gap after offset .*between ${new Date(at(2)).toISOString()} and ${new Date(at(5)).toISOString()}`));
  });

  it('fails with RECOVERY_FAILED when the scratch server refuses a command of the stream', async () => {
    const err = await restored({ name: 'broken' }).catch((e: unknown) => e);
    expect(isLifeboatError(err, 'RECOVERY_FAILED'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/refused 1 command/);
  });

  it('refuses a forged stream that tries to move the scratch server\'s files or load a module: RECOVERY_FAILED, nothing written outside', async () => {
    const err = await restored({ name: 'forged' }).catch((e: unknown) => e);
    expect(isLifeboatError(err, 'RECOVERY_FAILED'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/refused [3-9] command/);
    expect(readdirSync(escape)).toEqual([]);
  });

  it('fails with RECOVERY_FAILED, naming what the scratch server said, when the base RDB does not load', async () => {
    await storeBase(repo, 'damaged', Buffer.from('REDIS0010' + 'x'.repeat(200)), { offset: 1, generation: GENERATION }, new Date(t0));
    const err = await restored({ name: 'damaged' }).catch((e: unknown) => e);
    expect(isLifeboatError(err, 'RECOVERY_FAILED'), String(err)).toBe(true);
    expect((err as { hint?: string }).hint).toMatch(/log says: .*(Short read|Unrecoverable|RDB)/);
  });

  it('stops its scratch server and removes its directory when interrupted', async () => {
    const stop = new AbortController();
    let pid: number | undefined;
    const parent = tmpdir('lb-redis-scratch-');
    const err = await restored({
      scratchParent: parent,
      signal: stop.signal,
      onEvent: (e) => {
        if (e.kind !== 'scratch') return;
        pid = e.pid;
        stop.abort();
      },
    }).catch((e: unknown) => e);
    expect(isLifeboatError(err, 'INTERRUPTED'), String(err)).toBe(true);
    expect(pid).toBeGreaterThan(0);
    expect(() => process.kill(pid as number, 0)).toThrow(/ESRCH/);
    expect(await import('node:fs').then((fs) => fs.promises.readdir(parent))).toEqual([]);
  });

  it('leaves no scratch server behind when the restore is killed with -9, and the next restore removes its directory', async () => {
    const dir = tmpdir('lb-redis-kill-');
    const parent = path.join(dir, 'tmp');
    mkdirSync(parent);
    // In place of redis-server: a process that notes its pid and never answers, so the restore is surely still waiting for it.
    const pidFile = path.join(dir, 'pid');
    const fake = path.join(dir, 'never-ready');
    writeFileSync(fake, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 600\n`, { mode: 0o755 });
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'test-password', TMPDIR: parent };
    const child = spawn(process.execPath, [CLI, '-r', repoDir, 'redis', 'restore', 'cache', '--latest', '-o', path.join(dir, 'out'), '--redis-server', fake], { env, stdio: 'ignore' });
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    let pid = 0;
    for (const deadline = Date.now() + 60_000; !pid; await sleep(20)) {
      if (Date.now() > deadline) throw new Error('the restore never started its scratch server');
      if (existsSync(pidFile)) pid = Number(readFileSync(pidFile, 'utf8').trim()) || 0;
    }
    expect(alive(pid)).toBe(true);
    child.kill('SIGKILL');
    for (const deadline = Date.now() + 30_000; alive(pid); await sleep(20)) {
      if (Date.now() > deadline) throw new Error(`the scratch server (pid ${pid}) outlived the restore`);
    }
    expect(readdirSync(parent)).toHaveLength(1);
    // The next restore, using the same temporary directory, removes the orphan's directory and restores.
    const again = await runCli(['-r', repoDir, 'redis', 'restore', 'cache', '--latest', '-o', path.join(dir, 'out2')], { TMPDIR: parent });
    expect(again.code, again.stderr).toBe(0);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('runs checks on the restored data', async () => {
    const { result } = await restored({ time: new Date(at(6)), checks: ['GET c => 3', 'ZRANGE z 0 -1 => m1\\nm2', 'HGET h "g" => w', 'GET nothing => (nil)', 'EXISTS a c => 2'] });
    expect(result.checks.filter((c) => c.name.startsWith('check ')).map((c) => c.ok)).toEqual([true, true, true, true, true]);
    const err = await restored({ checks: ['GET after => 2'] }).catch((e: unknown) => e);
    expect(isLifeboatError(err, 'RECOVERY_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/check GET after => 2: got "1", expected "2"/);
  });

  it('gives a local user on the feed port nothing, and restores all the same', async () => {
    const seen: Buffer[] = [];
    const sockets: net.Socket[] = [];
    const { db } = await restored({
      time: new Date(at(4)),
      onEvent: async (e) => {
        if (e.kind !== 'feed') return;
        const cmd = (...args: string[]) => encodeCommand(args);
        const attempts = [
          undefined, // connects and waits
          Buffer.from('PSYNC ? -1\r\n'), // inline, as a telnet user would
          cmd('PSYNC', '?', '-1'),
          Buffer.concat([cmd('AUTH', 'guess'), cmd('PSYNC', '?', '-1')]),
          Buffer.concat([cmd('PING'), cmd('REPLCONF', 'capa', 'eof'), cmd('PSYNC', '?', '-1')]),
        ];
        for (const send of attempts) {
          const sock = net.connect(e.port, '127.0.0.1');
          sock.on('data', (d: Buffer) => seen.push(d));
          sock.on('error', () => {});
          await new Promise((r) => sock.once('connect', r));
          if (send) sock.write(send);
          sockets.push(sock);
        }
        // Their answers have arrived (or they were dropped) before the scratch server connects.
        await new Promise((r) => setTimeout(r, 200));
      },
    });
    expect(db).toEqual(expected(4));
    for (const sock of sockets) sock.destroy();
    const got = Buffer.concat(seen).toString('latin1');
    expect(got).not.toMatch(/FULLRESYNC|REDIS00/);
    expect(got).toMatch(/NOAUTH|WRONGPASS/);
  });
});

describe('redis restore --to a running server', () => {
  it('loads into an empty server, key by key with their expiries', async () => {
    const target = await RedisServer.start();
    const result = await redisRestore(repo, { name: 'cache', to: target.url, time: new Date(at(6)) });
    expect(await contents(target)).toEqual(expected(6));
    expect(result.loaded).toEqual({ db0: 6, db1: 1 });
    expect(result.checks.find((c) => c.name === 'target keys')?.ok).toBe(true);
  });

  it('refuses a server that holds keys (TARGET_EXISTS) unless --force', async () => {
    const target = await RedisServer.start();
    await target.command(['SET', 'mine', 'x']);
    const r = await runCli(['-r', repoDir, 'redis', 'restore', 'cache', '--to', target.url]);
    expectError(r, 21, /already holds 1 keys/);
    expect(await target.keys()).toEqual({ db0: 1 });
    const forced = await runCli(['-r', repoDir, '--json', 'redis', 'restore', 'cache', '--to', target.url, '--force', '--time', new Date(at(3)).toISOString()]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ loaded: { db0: 5, db1: 1 }, restored_to: new Date(at(3)).toISOString() });
    const db = await contents(target);
    expect(db[0]?.mine).toEqual(s('x'));
    delete db[0]?.mine;
    expect(db).toEqual(expected(3));
  });
});

describe('redis restore --to a server with a password', () => {
  it('logs in with LIFEBOAT_REDIS_PASSWORD or --redis-password-file; a wrong one is a clear SOURCE_UNAVAILABLE', async () => {
    const target = await RedisServer.start({ password: 'sesame' });
    const wrong = await runCli(['-r', repoDir, 'redis', 'restore', 'cache', '--to', target.url], { LIFEBOAT_REDIS_PASSWORD: 'guess' });
    expectError(wrong, 19, /refused the login/);
    expectError(await runCli(['-r', repoDir, 'redis', 'restore', 'cache', '--to', target.url]), 19, /refused the login|needs a password|NOAUTH/);
    const file = path.join(tmpdir('lb-redis-pw-'), 'pw');
    await import('node:fs').then((fs) => fs.promises.writeFile(file, 'sesame\n', { mode: 0o600 }));
    const ok = await runCli(['-r', repoDir, '--json', 'redis', 'restore', 'cache', '--to', target.url, '--redis-password-file', file]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await contents(target)).toEqual(expected(8));
    expect(ok.stdout + ok.stderr).not.toContain('sesame');
  });

  it('says so when the target cannot be reached', async () => {
    const dead = await RedisServer.start();
    const url = dead.url;
    await dead.stop();
    expectError(await runCli(['-r', repoDir, 'redis', 'restore', 'cache', '--to', url]), 19, /cannot reach Redis/);
  });
});

describe('redis restore of a larger history', () => {
  it('streams a multi-chunk RDB and 30000 commands, and gives the digest of the server that ran them', async () => {
    const src = await RedisServer.start();
    await src.command(['DEBUG', 'POPULATE', 200_000, 'key', 64]);
    const rdb = await src.rdb();
    expect(rdb.length).toBeGreaterThan(4 << 20); // several chunks of the repository
    const snap = await storeBase(repo, 'big', rdb, { offset: 0, generation: GENERATION, keys: await src.keys() }, new Date(t0));
    const steps: Step[] = [];
    for (let i = 0; i < 300; i++) {
      const cmds: Array<Array<string | number>> = i === 0 ? [['SELECT', 0]] : [];
      for (let j = 0; j < 100; j++) cmds.push(j % 2 ? ['SET', `key:${(i * 100 + j) * 7}`, `v${i}-${j}`.repeat(8)] : ['HSET', `h:${i % 50}`, `f${j}`, i]);
      steps.push({ cmds, time: at(1) + i });
    }
    await storeSegments(repo, 'big', GENERATION, 0, steps, 100);
    // The same commands on the server itself (pipelined: one connection keeps their order).
    await src.withClient(async (c) => {
      for (const st of steps) await Promise.all(st.cmds.map((cmd) => c.ok(cmd)));
    });
    const output = path.join(tmpdir('lb-redis-out-'), 'out');
    const result = await redisRestore(repo, { name: 'big', output });
    expect(result.snapshot.id).toBe(snap.id);
    expect(result.segments).toBe(3);
    const restoredServer = await RedisServer.start({ rdb: path.join(output, 'dump.rdb') });
    try {
      expect(await restoredServer.keys()).toEqual(await src.keys());
      expect(String(await restoredServer.command(['DEBUG', 'DIGEST']))).toBe(String(await src.command(['DEBUG', 'DIGEST'])));
    } finally {
      await restoredServer.stop();
    }
  }, 120_000);
});

describe('redis drill', () => {
  it('restores the newest data, checks it and measures RPO from the last replayed command', async () => {
    const record = await drill(repo, { kind: 'redis', name: 'cache' }, { lifeboat: () => [], record: false });
    expect(record.ok, record.error).toBe(true);
    expect(record.snapshot).toBe(base.id);
    expect(record.checks.map((c) => c.name)).toEqual(['keys', 'redis-check-rdb', 'history']);
    expect(record.rpo_seconds).toBeGreaterThanOrEqual((Date.now() - at(8)) / 1000 - 60);
    expect(record.rpo_seconds).toBeLessThanOrEqual((Date.now() - at(8)) / 1000);
    const gappy = await drill(repo, { kind: 'redis', name: 'gappy' }, { lifeboat: () => [], record: false });
    expect(gappy.ok).toBe(false);
    expect(gappy.error).toMatch(/^history: .*gap/);
  });

  it("runs the source's own checks (lifeboat drill --check, as the daemon's drill job passes them): a failing one fails the drill", async () => {
    const ok = await runCli(['-r', repoDir, '--json', 'drill', '--source', 'cache', '--check', 'GET after => 1', '--check', 'EXISTS a => 0']);
    expect(ok.code, ok.stderr).toBe(0);
    const record = JSON.parse(ok.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean }> };
    expect(record.checks.filter((c) => c.name.startsWith('check ')).map((c) => [c.name, c.ok])).toEqual([['check GET after => 1', true], ['check EXISTS a => 0', true]]);
    const bad = await runCli(['-r', repoDir, 'drill', '--source', 'cache', '--check', 'GET after => 2']);
    expectError(bad, 1, /drill of .*cache failed/);
    expectError(await runCli(['-r', repoDir, 'drill', '--check', 'GET after => 1']), 2, /--check needs --source/);
  });
});

describe('lifeboat redis restore (CLI)', () => {
  it('writes dump.rdb into a new directory and refuses an existing one', async () => {
    const out = path.join(tmpdir('lb-redis-cli-'), 'restored');
    const ok = await runCli(['-r', repoDir, '--json', 'redis', 'restore', 'cache', '--output', out, '--latest']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ output: out, keys: { db0: 1, db1: 1 }, generation: GENERATION });
    expectError(await runCli(['-r', repoDir, 'redis', 'restore', 'cache', '--output', out]), 21, /already exists/);
  });

  it('fails a check with RECOVERY_FAILED and writes nothing; refuses conflicting flags', async () => {
    const out = path.join(tmpdir('lb-redis-cli-'), 'restored');
    expectError(await runCli(['-r', repoDir, 'redis', 'restore', 'cache', '--output', out, '--check', 'GET after => 2']), 36, /fails check GET after => 2/);
    await expect(import('node:fs').then((fs) => fs.promises.lstat(out))).rejects.toThrow(/ENOENT/);
    expectError(await runCli(['-r', repoDir, 'redis', 'restore', 'cache', '--output', out, '--latest', '--snapshot', base.id]), 2, /one of --time, --latest, --snapshot, --txn and --before-txn, not --latest and --snapshot/);
    expectError(await runCli(['-r', repoDir, 'redis', 'restore', 'cache']), 2, /--output DIR or --to/);
    expectError(await runCli(['-r', repoDir, 'redis', 'restore', 'cache', '--output', out, '--check', 'FLUSHALL => OK']), 2, /may not/);
  });
});
