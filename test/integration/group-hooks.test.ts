/**
 * The freeze and thaw forms besides commands, through the real CLI: HTTP requests (to a
 * server of the test on 127.0.0.1 that plays the application) and the members' built-in
 * holds (a scratch redis-server paused with CLIENT PAUSE WRITE, SQLite files whose write
 * lock is taken). Writers keep writing throughout and record when each write went
 * through: the holds show as gaps in their timestamps as long as the measured hold.
 * Thaw runs when freeze hangs and when reading a position fails (a PostgreSQL role that
 * may not create restore points). The log members' own archivers run throughout (a
 * point is stored once their archives hold its positions).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, cleanupTmp, expectError, initRepo, runCli, snapshotsJson, tmpdir } from '../helpers.js';
import { ScratchCluster } from '../pg-cluster.js';
import { RedisServer, stopAllRedis } from '../helpers/redis-server.js';
import { Archivers } from '../helpers/archivers.js';
import { waitUntil } from '../pg-streamer.js';
import type { RedisConnection } from '../../src/sources/redis/connection.js';

interface Point {
  id: string;
  time: string;
  hold_ms: number;
  frozen: boolean;
  members: Array<{ name: string; kind: string; position: Record<string, unknown> }>;
}

const SECRET = 'Bearer s3cr3t-token-never-logged';

let dir: string;
let cfg: string;
let redis: RedisServer;
let cluster: ScratchCluster;
let app: Server;
let appUrl: string;
/** What the application server does with the next request to a path. */
const behaviour = new Map<string, 'ok' | 'hang' | 'fail' | 'flood'>();
/** Bytes a flooding answer got out before the client went away. */
let flooded = 0;
const requests: Array<{ path: string; method: string; auth: string | undefined; body: string; at: number }> = [];
/** The application's own write gate, which its freeze endpoint closes and thaw opens. */
let gateClosed = false;

const cli = (...args: string[]) => runCli(['--config', cfg, 'group', ...args]);
const sqlite = (name: string) => path.join(dir, name);

/** The longest pause between consecutive times (ms) and where it began. */
function longestGap(times: number[]): { ms: number; from: number } {
  let best = { ms: 0, from: 0 };
  for (let i = 1; i < times.length; i++) {
    const d = (times[i] as number) - (times[i - 1] as number);
    if (d > best.ms) best = { ms: d, from: times[i - 1] as number };
  }
  return best;
}

/** A Redis writer: SETs back to back, noting when each reply came, until stopped. */
function redisWriter(conn: RedisConnection): { stop: () => Promise<number[]> } {
  const times: number[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await conn.ok(['SET', `w${i % 100}`, String(i)]);
      times.push(Date.now());
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return times;
    },
  };
}

/** A SQLite writer in a process of its own: one INSERT of its start time per write, waiting on locks up to 30 s. */
function sqliteWriter(file: string): ChildProcess {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(process.argv[1]);
    db.pragma('busy_timeout = 30000');
    const ins = db.prepare('INSERT INTO w (at) VALUES (?)');
    const nap = new Int32Array(new SharedArrayBuffer(4));
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
    (function write() { ins.run(Date.now()); Atomics.wait(nap, 0, 0, 1); setImmediate(write); })();
  `;
  return spawn(process.execPath, ['-e', script, file], { cwd: ROOT, stdio: ['pipe', 'ignore', 'inherit'] });
}

/**
 * Holds `file`'s write lock in a process of its own until `release()`; resolves once the
 * lock is held. `done` resolves with when it was let go.
 */
async function holdSqliteLock(file: string): Promise<{ done: Promise<number>; release: () => void }> {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    db.prepare('INSERT INTO w (at) VALUES (?)').run(Date.now());
    console.log('locked');
    process.stdin.on('end', () => { db.exec('COMMIT'); console.log('released ' + Date.now()); db.close(); });
    process.stdin.resume();
  `;
  const child = spawn(process.execPath, ['-e', script, file], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  let onReleased: (t: number) => void = () => {};
  const done = new Promise<number>((resolve) => (onReleased = resolve));
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (l) => {
      if (l === 'locked') resolve();
      const m = /^released (\d+)$/.exec(l);
      if (m) onReleased(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`the lock holder exited ${code}`)));
  });
  return { done, release: () => child.stdin!.end() };
}

/** How often Redis has run CLIENT PAUSE (the built-in freeze of a Redis member). */
async function pauses(): Promise<number> {
  const conn = await redis.client();
  try {
    const line = (await conn.info('commandstats')).get('cmdstat_client|pause') ?? '';
    return Number(/calls=(\d+)/.exec(line)?.[1] ?? 0);
  } finally {
    conn.close();
  }
}

async function stopWriter(child: ChildProcess): Promise<number[]> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin!.end();
  await exited;
  const db = new Database(sqlite('b.db'), { readonly: true });
  try {
    return (db.prepare('SELECT at FROM w ORDER BY id').all() as Array<{ at: number }>).map((r) => r.at);
  } finally {
    db.close();
  }
}

/** The members' own archivers (each member's log must reach its position for a point to be stored). */
const archivers = new Archivers();
const archiver = (args: string[]): void => archivers.start(path.join(dir, 'repo'), args);

beforeAll(async () => {
  dir = tmpdir('lb-group-hooks-');
  [redis, cluster] = await Promise.all([RedisServer.start(), ScratchCluster.create()]);
  await cluster.start();
  // A role that may log in but not create restore points: its position cannot be read.
  await cluster.query('CREATE ROLE weak LOGIN');
  const repo = path.join(dir, 'repo');
  await initRepo(repo);
  // Each log member's own archiver, as a user runs it: a point is stored only once the
  // members' archives hold their positions. The Redis one also gives the server its backlog.
  const master = await redis.client();
  await master.ok(['CONFIG', 'SET', 'repl-ping-replica-period', '3600']);
  archiver(['redis', 'replicate', '--url', redis.url, '--name', 'hot', '--interval', '200ms']);
  for (const until = Date.now() + 30_000; ; ) {
    if ((await master.info('replication')).get('repl_backlog_active') === '1') break;
    if (Date.now() > until) throw new Error('the replica never attached');
    await new Promise((res) => setTimeout(res, 50));
  }
  master.close();
  for (const f of ['a.db', 'b.db']) {
    const db = new Database(sqlite(f));
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE w (id INTEGER PRIMARY KEY, at INTEGER)');
    db.close();
    archiver(['sqlite', 'replicate', sqlite(f), '--name', f.replace('.db', ''), '--interval', '200ms', '--verify-interval', 'off']);
  }

  // A point is provable only after each archiver stored its first snapshot (a base at or before the point).
  for (const until = Date.now() + 120_000; ; ) {
    const listed = await snapshotsJson(repo).catch(() => []);
    const have = new Set(listed.map((x) => `${x.source.kind}:${x.source.name}`));
    if (['redis:hot', 'sqlite:a', 'sqlite:b'].every((k) => have.has(k))) break;
    if (Date.now() > until) throw new Error(`the archivers stored no first snapshot: ${[...have].join(', ')}`);
    await new Promise((res) => setTimeout(res, 200));
  }

  app = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const p = req.url ?? '';
      requests.push({ path: p, method: req.method ?? '', auth: req.headers.authorization, body, at: Date.now() });
      const what = behaviour.get(p) ?? 'ok';
      if (what === 'hang') return; // never answers
      if (what === 'fail') {
        res.statusCode = 503;
        return res.end('busy\nnot now: replication lag');
      }
      if (what === 'flood') {
        // An answer without end (a broken proxy, a compromised application): written for as long as anyone reads.
        res.statusCode = 503;
        const line = Buffer.from(`${'x'.repeat(1023)}\n`.repeat(64));
        const more = () => {
          while (!res.destroyed && res.write(line)) flooded += line.length;
        };
        res.on('drain', more);
        more();
        return;
      }
      if (p.startsWith('/freeze')) gateClosed = true;
      if (p.startsWith('/thaw')) gateClosed = false;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  appUrl = `http://127.0.0.1:${(app.address() as { port: number }).port}`;
  writeFileSync(path.join(dir, 'app.headers'), `# the application's token\nAuthorization: ${SECRET}\n`, { mode: 0o600 });

  const http = (p: string) => `{ http: { url: "${appUrl}${p}?token=x", headers_file: app.headers, timeout: 2s } }`;
  cfg = path.join(dir, 'lifeboat.yaml');
  writeFileSync(
    cfg,
    [
      'repositories:',
      `  main: { stores: [${repo}] }`,
      'sources:',
      `  hot: { kind: redis, url: "${redis.url}" }`,
      '  b: { kind: sqlite, path: b.db }',
      '  a: { kind: sqlite, path: a.db }',
      `  weakpg: { kind: postgres, dsn: "postgresql://weak@127.0.0.1:${cluster.port}/postgres" }`,
      'groups:',
      `  web: { members: [hot, b], freeze: ${http('/freeze')}, thaw: ${http('/thaw')}, max_hold: 5s }`,
      `  webhang: { members: [hot], freeze: ${http('/freeze-hang')}, thaw: ${http('/thaw-hang')}, max_hold: 3s }`,
      `  webfail: { members: [hot], freeze: ${http('/freeze-fail')}, thaw: ${http('/thaw-fail')}, max_hold: 5s }`,
      `  webflood: { members: [hot], freeze: ${http('/freeze-flood')}, thaw: ${http('/thaw-flood')}, max_hold: 5s }`,
      `  webpos: { members: [hot, weakpg], freeze: ${http('/freeze-pos')}, thaw: ${http('/thaw-pos')}, max_hold: 5s }`,
      '  held: { members: [hot, b, a], freeze: builtin, thaw: builtin, max_hold: 10s }',
      '  heldhang: { members: [hot, b, a], freeze: builtin, thaw: builtin, max_hold: 1500ms }',
      '  heldpos: { members: [hot, b, weakpg], freeze: builtin, thaw: builtin, max_hold: 20s }',
      '  crash: { members: [hot, b, a], freeze: builtin, thaw: builtin, max_hold: 3s }',
      '',
    ].join('\n'),
  );
}, 180_000);

afterAll(async () => {
  await archivers.stop();
  await new Promise((resolve) => app?.close(resolve));
  await stopAllRedis();
  await cluster?.destroy();
  cleanupTmp();
});

describe('HTTP freeze and thaw', () => {
  it('requests freeze and thaw with the headers file, holds the application\'s writes for the hold, and never prints the token', async () => {
    // The application writes only while its gate is open, as an application that honours its freeze endpoint does.
    const times: number[] = [];
    let running = true;
    const writer = (async () => {
      while (running) {
        if (!gateClosed) times.push(Date.now());
        await new Promise((res) => setImmediate(res));
      }
    })();
    const before = requests.length;
    const r = await cli('backup', 'web', '--json');
    running = false;
    await writer;
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as Point;
    const [freeze, thaw] = requests.slice(before);
    expect(freeze).toMatchObject({ path: '/freeze?token=x', method: 'POST', auth: SECRET });
    expect(JSON.parse(freeze!.body)).toEqual({ group: 'web', point: p.id, action: 'freeze' });
    expect(thaw).toMatchObject({ path: '/thaw?token=x', auth: SECRET });
    expect(JSON.parse(thaw!.body)).toMatchObject({ action: 'thaw', point: p.id });
    expect(p.frozen).toBe(true);
    // The writer stood still from freeze to thaw: no write between the two requests.
    expect(times.filter((t) => t > freeze!.at && t < thaw!.at)).toEqual([]);
    expect(longestGap(times).ms).toBeGreaterThanOrEqual(thaw!.at - freeze!.at);
    expect(r.stdout + r.stderr).not.toContain('s3cr3t');
  }, 60_000);

  it('gives up on a freeze that does not answer within max_hold, still requests thaw, and fails cleanly', async () => {
    behaviour.set('/freeze-hang?token=x', 'hang');
    const before = requests.length;
    const r = await cli('backup', 'webhang');
    // The request's own timeout (2 s) is shorter than max_hold (3 s), and generous: on a loaded machine the request must reach the application first.
    expectError(r, 47, /group "webhang": freeze got no answer from POST http:\/\/127\.0\.0\.1:\d+ within 2000 ms \(max_hold 3000 ms\)/);
    expect(requests.slice(before).map((q) => q.path)).toEqual(['/freeze-hang?token=x', '/thaw-hang?token=x']);
    expect(r.stdout + r.stderr).not.toMatch(/s3cr3t|token=x/);
    expect((await cli('points', 'webhang', '--json')).stdout).toMatch(/"points": \[\]/);
  }, 60_000);

  it('fails on a non-2xx answer with the end of what the application said, after requesting thaw', async () => {
    behaviour.set('/freeze-fail?token=x', 'fail');
    const before = requests.length;
    const r = await cli('backup', 'webfail');
    expectError(r, 1, /group "webfail": freeze failed \(POST http:\/\/127\.0\.0\.1:\d+ answered HTTP 503\): not now: replication lag/);
    expect(requests.slice(before).map((q) => q.path)).toEqual(['/freeze-fail?token=x', '/thaw-fail?token=x']);
  }, 60_000);

  it('reads at most 64 KiB of an answer that does not end, fails at once, and requests thaw', async () => {
    behaviour.set('/freeze-flood?token=x', 'flood');
    const before = requests.length;
    const r = await cli('backup', 'webflood');
    // Not a timeout after 2 s of reading whatever came: the answer's status, at once.
    expectError(r, 1, /group "webflood": freeze failed \(POST http:\/\/127\.0\.0\.1:\d+ answered HTTP 503\)/);
    expect(requests.slice(before).map((q) => q.path)).toEqual(['/freeze-flood?token=x', '/thaw-flood?token=x']);
    expect(flooded, 'bytes the endless answer got out').toBeLessThan(64 * 1024 * 1024);
  }, 60_000);

  it('requests thaw when reading a position fails', async () => {
    const before = requests.length;
    const r = await cli('backup', 'webpos');
    expectError(r, 18, /source "weakpg": cannot create a restore point: permission denied/);
    expect(requests.slice(before).map((q) => q.path)).toEqual(['/freeze-pos?token=x', '/thaw-pos?token=x']);
  }, 60_000);

  it('refuses bad hook forms at their line', async () => {
    const bad = path.join(dir, 'bad.yaml');
    const text = readFileSync(cfg, 'utf8');
    const cases: Array<[string, RegExp]> = [
      [text.replace("max_hold: 10s }", "max_hold: 10s, snapshots: { hot: { create: [x], release: [y] } } }"), /"snapshots" of group "held": "hot" is not a files source/],
      [text.replace('thaw: builtin, max_hold: 10s', 'thaw: [/bin/true], max_hold: 10s'), /group "held": "freeze: builtin" goes with "thaw: builtin"/],
      [text.replace(`url: "${appUrl}/freeze?token=x"`, 'url: "ftp://x"'), /"freeze" must be an http\(s\) URL/],
      [`${text}  tiered: { members: [hot], freeze: builtin, thaw: builtin }\nsources2: x\n`.replace('sources2: x\n', '').replace("  b: { kind: sqlite, path: b.db }", "  b: { kind: sqlite, path: b.db }\n  d: { kind: files, paths: [x] }").replace('tiered: { members: [hot]', 'tiered: { members: [hot, d]'), /group "tiered": "freeze: builtin" cannot hold the writes of "d" \(files\)/],
    ];
    for (const [yaml, message] of cases) {
      writeFileSync(bad, yaml);
      const r = await runCli(['--config', bad, 'group', 'points', 'held']);
      expectError(r, 2, new RegExp(`bad\\.yaml:\\d+: ${message.source}`));
    }
  });
});

describe('built-in freeze and thaw', () => {
  it('pauses Redis writes and holds the SQLite write lock for the whole hold (a slow member makes it long), then lets both go', async () => {
    const conn = await redis.client();
    const writer = redisWriter(conn);
    const sq = sqliteWriter(sqlite('b.db'));
    await new Promise((res) => setTimeout(res, 300)); // both writers under way (their timestamps show it below)
    // The application holds a.db's write lock 2.5 s into the freeze: the built-in freeze
    // waits for it, with Redis already paused (it is the first member) and b.db locked.
    const lock = await holdSqliteLock(sqlite('a.db'));
    const paused = await pauses();
    const run = cli('backup', 'held', '--json');
    await waitUntil('the freeze to pause Redis', async () => (await pauses()) > paused, 60_000, 20);
    await new Promise((res) => setTimeout(res, 2500)); // the application's transaction, not a wait for a condition
    lock.release();
    const r = await run;
    const released = await lock.done;
    await new Promise((res) => setTimeout(res, 300));
    const redisTimes = await writer.stop();
    const sqliteTimes = await stopWriter(sq);
    conn.close();
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as Point;
    expect(p.frozen).toBe(true);
    expect(p.hold_ms).toBeGreaterThan(300);
    const start = Date.parse(p.time);
    // Each writer stood still for most of the hold, and the gap lies within it. (The
    // margins are the time the PAUSE and the lock take to arrive, and the UNPAUSE after
    // thaw: tens of ms here, more on a loaded machine.)
    for (const [who, times] of [['redis', redisTimes], ['sqlite', sqliteTimes]] as const) {
      const gap = longestGap(times);
      const what = `${who}: longest gap ${gap.ms} ms from ${gap.from - start} ms after the point's start, hold ${p.hold_ms} ms`;
      expect(gap.ms, what).toBeGreaterThanOrEqual(p.hold_ms * 0.7);
      expect(gap.from, what).toBeLessThanOrEqual(start + p.hold_ms * 0.2);
      expect(gap.from + gap.ms, what).toBeGreaterThanOrEqual(start + p.hold_ms * 0.8);
      expect(times.filter((t) => t > start + p.hold_ms * 0.2 && t < start + p.hold_ms * 0.8), what).toEqual([]);
    }
    // The hold ended once a.db's lock came free, not at max_hold.
    expect(start + p.hold_ms).toBeGreaterThanOrEqual(released - 5);
    expect(p.hold_ms).toBeLessThan(10_000);
  }, 120_000);

  it('gives up when a member\'s hold cannot be taken within max_hold, and releases those already taken', async () => {
    const sq = sqliteWriter(sqlite('b.db'));
    const lock = await holdSqliteLock(sqlite('a.db'));
    const r = await cli('backup', 'heldhang');
    const ended = Date.now();
    // a.db stays locked past the failed capture, whatever the machine's load made it last.
    setTimeout(lock.release, 3000);
    expectError(r, 47, /group "heldhang": freeze ran past max_hold \(1500 ms\)/);
    // b.db's writer went on long before a.db's lock came free: thaw released b.db.
    await new Promise((res) => setTimeout(res, 300));
    const released = await lock.done;
    const times = await stopWriter(sq);
    expect(times.some((t) => t > ended - 100 && t < released - 1000), 'b.db was written after the failed capture, before a.db came free').toBe(true);
    expect((await cli('points', 'heldhang', '--json')).stdout).toMatch(/"points": \[\]/);
  }, 120_000);

  it('unpauses Redis and unlocks SQLite at once when reading a position fails (not when max_hold runs out)', async () => {
    const r = await cli('backup', 'heldpos');
    const ended = Date.now();
    expectError(r, 18, /source "weakpg": cannot create a restore point: permission denied/);
    // The pause would last 20 s by itself; a write goes through at once.
    const conn = await redis.client();
    await conn.ok(['SET', 'after', '1']);
    conn.close();
    expect(Date.now() - ended).toBeLessThan(3000);
    const db = new Database(sqlite('b.db'));
    db.pragma('busy_timeout = 0');
    db.prepare('INSERT INTO w (at) VALUES (?)').run(Date.now());
    db.close();
  }, 60_000);

  it('lets go of both holds when Lifeboat is killed while holding: the SQLite lock at once, the Redis pause after max_hold', async () => {
    const lock = await holdSqliteLock(sqlite('a.db'));
    const child = spawn(process.execPath, [CLI, '--config', cfg, 'group', 'backup', 'crash'], { env: { ...process.env, LIFEBOAT_PASSWORD: 'test-password' }, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Held once a write to Redis no longer goes through (the capture then waits for a.db's lock).
    const conn = await redis.client();
    let pending: Promise<unknown> | undefined;
    for (const until = Date.now() + 30_000; ; ) {
      pending = conn.ok(['SET', 'probe', String(Date.now())]);
      const through = await Promise.race([pending.then(() => true), new Promise((res) => setTimeout(() => res(false), 250))]);
      if (!through) break;
      expect(Date.now(), 'the capture never paused Redis').toBeLessThan(until);
    }
    const paused = Date.now();
    process.kill(child.pid!, 'SIGKILL');
    await exited;
    // b.db's lock went with the process.
    const db = new Database(sqlite('b.db'));
    db.pragma('busy_timeout = 0');
    db.prepare('INSERT INTO w (at) VALUES (?)').run(Date.now());
    db.close();
    // The pause ends by itself, within max_hold (3 s) of when it began, long before a.db is let go.
    await pending;
    const through = Date.now();
    conn.close();
    expect(through - paused).toBeLessThan(3500);
    // a.db is let go only now: the pause ended by itself, not because the capture got its lock.
    lock.release();
    await lock.done;
  }, 120_000);
});
