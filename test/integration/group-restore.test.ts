/**
 * A consistency group of a real PostgreSQL cluster (WAL archived by archive_command),
 * a real redis-server (`lifeboat redis replicate`) and a SQLite file (`lifeboat sqlite
 * replicate`), all run as the postgres user as archive_command runs. A writer puts one
 * increasing counter into all three; the group's freeze hook asks it to pause and waits
 * for its acknowledgement, so at the point all three hold the same value. `group backup`
 * proves each member's archive holds its position; `group restore` brings each member
 * back to exactly that position, so the three restored counters are equal, and equal to
 * the value acknowledged at the freeze, although the writer went on writing afterwards.
 * Also: a dry run changes nothing, one unusable target starts nothing, and a stopped
 * replicator makes `group backup` fail in bounded time with nothing stored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers.js';
import { archivedCluster, lifeboatAsPostgres, restoredPort, type ScratchCluster } from '../pg-cluster.js';
import { RedisServer, stopAllRedis } from '../helpers/redis-server.js';
import { processes, waitUntil } from '../pg-streamer.js';
import type { RedisConnection } from '../../src/sources/redis/connection.js';

let base: string;
let repo: string;
let pw: string;
let cluster: ScratchCluster;
let redis: RedisServer;
let cfg: string;
let app: Database.Database;
const replicators: ChildProcess[] = [];

const lb = (args: string[]) => lifeboatAsPostgres(['--config', cfg, '--repo', 'r', ...args]);
const sqliteFile = () => path.join(base, 'meta.db');
const ids = () => ({ uid: statSync(base).uid, gid: statSync(base).gid });

interface Point {
  id: string;
  time: string;
  members: Array<{ name: string; kind: string; position: Record<string, unknown>; archived?: { at: string; reach: string } }>;
}

/** Starts a long-running lifeboat command as the postgres user; found again by `needle` in its arguments. */
function startAsPostgres(args: string[]): ChildProcess {
  const child = spawn('runuser', ['-u', 'postgres', '--', process.execPath, CLI, '--config', cfg, '--repo', 'r', ...args], { stdio: 'ignore' });
  replicators.push(child);
  return child;
}

/** Stops the node process (not runuser, which does not forward signals) whose arguments mention `needle`, and waits until it is gone. */
async function stopProcess(needle: string): Promise<void> {
  const pids = processes('node', needle);
  for (const p of pids) process.kill(p, 'SIGTERM');
  await waitUntil(`${needle} to stop`, () => processes('node', needle).length === 0, 30_000);
}

async function snapshotsOf(kind: string, name: string): Promise<number> {
  const r = await lb(['snapshots', '--json']);
  if (r.code !== 0) return 0;
  return (JSON.parse(r.stdout) as Array<{ source: { kind: string; name: string } }>).filter((s) => s.source.kind === kind && s.source.name === name).length;
}

async function points(): Promise<Point[]> {
  const r = await lb(['group', 'points', 'tiers', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { points: Point[] }).points;
}

/**
 * The writer: one counter, written to PostgreSQL, Redis and SQLite in turn, as fast as
 * they answer. When the freeze hook's request file appears it acknowledges with the last
 * value written to all three and waits until thaw removes the request.
 */
class Writer {
  n = 0;
  acked: number[] = [];
  private stopped = false;
  private done: Promise<void>;
  constructor(
    private readonly pgc: pg.Client,
    private readonly rc: RedisConnection,
  ) {
    this.done = this.run();
  }
  private async run(): Promise<void> {
    const req = path.join(base, 'freeze.req');
    const ack = path.join(base, 'freeze.ack');
    const set = app.prepare('UPDATE counter SET n = ? WHERE id = 1');
    while (!this.stopped) {
      if (existsSync(req)) {
        this.acked.push(this.n);
        writeFileSync(ack, String(this.n));
        while (existsSync(req) && !this.stopped) await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const v = ++this.n;
      await this.pgc.query('UPDATE counter SET n = $1 WHERE id = 1', [v]);
      await this.rc.ok(['SET', 'counter', String(v)]);
      set.run(v);
    }
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-grs-'));
  redis = await RedisServer.start();
  await cluster.query('CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL)');
  await cluster.query('INSERT INTO counter VALUES (1, 0)');
  app = new Database(sqliteFile());
  app.pragma('journal_mode = WAL');
  app.exec('CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counter VALUES (1, 0)');
  // The replicator (postgres) shares the files with the application (root).
  for (const f of ['', '-wal', '-shm']) chownSync(sqliteFile() + f, ids().uid, ids().gid);
  cfg = path.join(base, 'lifeboat.yaml');
  const sh = (script: string) => JSON.stringify(['/bin/sh', '-c', script]);
  writeFileSync(
    cfg,
    [
      'repositories:',
      `  r: { stores: [${repo}], password_file: ${pw} }`,
      'sources:',
      `  main: { kind: postgres, dsn: "${cluster.dsn}" }`,
      `  hot: { kind: redis, url: "${redis.url}" }`,
      `  meta: { kind: sqlite, path: ${sqliteFile()} }`,
      'groups:',
      `  tiers: { members: [main, hot, meta], freeze: ${sh('rm -f freeze.ack; touch freeze.req; while [ ! -f freeze.ack ]; do sleep 0.005; done')}, thaw: [/bin/rm, -f, freeze.req], max_hold: 5s }`,
      '',
    ].join('\n'),
  );
  chownSync(cfg, ids().uid, ids().gid);
  const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
  expect(b.code, b.stderr).toBe(0);
  startAsPostgres(['redis', 'replicate', '--url', redis.url, '--name', 'hot', '--interval', '200ms']);
  startAsPostgres(['sqlite', 'replicate', sqliteFile(), '--name', 'meta', '--interval', '200ms', '--checkpoint-frames', '200']);
  await waitUntil('both replicators to store their base snapshots', async () => (await snapshotsOf('redis', 'hot')) > 0 && (await snapshotsOf('sqlite', 'meta')) > 0, 120_000, 500);
}, 300_000);

afterAll(async () => {
  // Only what this file started: their arguments name its config file.
  if (cfg) for (const p of processes('node', cfg)) process.kill(p, 'SIGKILL');
  app?.close();
  await stopAllRedis();
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('group backup proves, group restore returns to the point', () => {
  let point: Point;
  let expected: number;

  it('stores a point only once every member archive holds it, while a writer writes to all three', async () => {
    const pgc = new pg.Client({ connectionString: cluster.dsn });
    await pgc.connect();
    const rc = await redis.client();
    const w = new Writer(pgc, rc);
    try {
      await waitUntil('the writer to get going', () => w.n > 50);
      const r = await lb(['group', 'backup', 'tiers', '--json']);
      expect(r.code, r.stderr).toBe(0);
      point = JSON.parse(r.stdout) as Point;
      expect(w.acked).toHaveLength(1);
      expected = w.acked[0] as number;
      // Writing goes on past the point: a restore that overshoots would show it.
      await waitUntil('more writes after the point', () => w.n > expected + 50);
    } finally {
      await w.stop();
      rc.close();
      await pgc.end();
    }
    expect(point.members.map((m) => m.name)).toEqual(['main', 'hot', 'meta']);
    for (const m of point.members) {
      expect(m.archived, m.name).toBeDefined();
      expect(Date.parse(m.archived!.at)).toBeGreaterThan(0);
    }
    const by = Object.fromEntries(point.members.map((m) => [m.name, m.archived!.reach]));
    expect(by.main).toMatch(/^WAL segment [0-9A-F]{24} archived$/);
    expect(by.hot).toMatch(new RegExp(`offset ${String(point.members[1]!.position.offset)}$`));
    expect(by.meta).toMatch(/^generation \S+, cycle \d+, frame \d+$/);
  }, 240_000);

  it('a dry run prints the plan and changes nothing', async () => {
    const dir = path.join(base, 'dry');
    mkdirSync(dir);
    chownSync(dir, ids().uid, ids().gid);
    const listing = (d: string): string[] =>
      readdirSync(d, { recursive: true, withFileTypes: false }).map(String).sort().map((f) => `${f}:${statSync(path.join(d, f)).mtimeMs}`);
    // The replicators go on shipping into logs/ (and use tmp/): everything else must stay as it was.
    const repoListing = () => listing(repo).filter((f) => !f.startsWith('logs') && !f.startsWith('tmp'));
    const before = { dir: listing(dir), repo: repoListing() };
    const r = await lb(['group', 'restore', 'tiers', '--point', point.id, '--dry-run', '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^plan \\(dry run: nothing is changed\\): group tiers to point ${point.id}`));
    expect(r.stdout).toMatch(/main \(postgres\): restore point lifeboat-\S+-tiers \(\S+\) -> \S+\/dry\/pg/);
    expect(r.stdout).toMatch(/recovery_target_name/);
    expect(r.stdout).toMatch(/hot \(redis\): offset \d+ of [0-9a-f]{8} -> \S+\/dry\/redis/);
    expect(r.stdout).toMatch(/meta \(sqlite\): WAL frame \d+ of cycle/);
    // --time picks the newest point at or before it, and says so.
    const t = new Date(Date.parse(point.time) + 1).toISOString();
    const byTime = await lb(['group', 'restore', 'tiers', '--time', t, '--dry-run', '--json', '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`]);
    expect(byTime.code, byTime.stderr).toBe(0);
    const plan = JSON.parse(byTime.stdout) as { point: string; chosen: string; dry_run: boolean; plan: Array<{ member: string; target: string }>; members: unknown[] };
    expect(plan).toMatchObject({ point: point.id, dry_run: true, members: [] });
    expect(plan.chosen).toBe(`--time ${t}: the newest point at or before it, ${point.id} of ${point.time}`);
    expect(plan.plan.map((m) => m.member)).toEqual(['main', 'hot', 'meta']);
    expect({ dir: listing(dir), repo: repoListing() }).toEqual(before);
  }, 120_000);

  it('one unusable target starts nothing', async () => {
    const dir = path.join(base, 'bad');
    mkdirSync(path.join(dir, 'redis'), { recursive: true });
    writeFileSync(path.join(dir, 'redis', 'precious'), 'keep me');
    for (const d of [dir, path.join(dir, 'redis')]) chownSync(d, ids().uid, ids().gid);
    const r = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`]);
    expect(r.code, r.stderr).toBe(21);
    expect(r.stderr).toMatch(/the target of member "hot", \S+\/bad\/redis, is not empty; nothing was started/);
    expect(readdirSync(dir).sort()).toEqual(['redis']);
    // A member without a target, and targets inside each other, are refused the same way.
    const r2 = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/x`]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/no --target for member "meta" of group "tiers"; nothing was started/);
    const r3 = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/pg/redis`, '--target', `meta=${dir}/sqlite`]);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/the target of member "hot" \(\S+\) is inside the target of "main"/);
    expect(readdirSync(dir).sort()).toEqual(['redis']);
  }, 120_000);

  it('restores all three members to exactly the point: the three counters are equal', async () => {
    const dir = path.join(base, 'restored');
    // PostgreSQL and Redis into empty directories that exist, SQLite into one that does not.
    for (const d of [dir, path.join(dir, 'pg'), path.join(dir, 'redis')]) {
      mkdirSync(d, { mode: 0o700 });
      chownSync(d, ids().uid, ids().gid);
    }
    const r = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^plan: group tiers to point/);
    expect(r.stdout).toMatch(/all 3 members of group tiers restored to point/);

    // SQLite: the file as of the recorded commit.
    const db = new Database(path.join(dir, 'sqlite', 'meta.db'), { readonly: true });
    const sqliteN = (db.prepare('SELECT n FROM counter WHERE id = 1').get() as { n: number }).n;
    db.close();
    // Redis: dump.rdb as of the recorded offset.
    const restoredRedis = await RedisServer.start({ rdb: path.join(dir, 'redis', 'dump.rdb') });
    const redisN = await restoredRedis.withClient(async (c) => Number(String(await c.call(['GET', 'counter']))));
    await restoredRedis.stop();
    // PostgreSQL: started, it recovers to the restore point and promotes.
    const copy = cluster.copy(path.join(dir, 'pg'), await restoredPort(path.join(dir, 'pg')));
    await copy.start(path.join(dir, 'pg'));
    let pgN: number;
    try {
      await copy.waitPromoted();
      pgN = Number((await copy.query<{ n: string }>('SELECT n FROM counter WHERE id = 1'))[0]!.n);
    } finally {
      await copy.stop(path.join(dir, 'pg'));
    }
    expect({ pg: pgN, redis: redisN, sqlite: sqliteN }).toEqual({ pg: expected, redis: expected, sqlite: expected });
  }, 300_000);

  it('refuses the point in bounded time when a member replicator is stopped, and stores nothing', async () => {
    const before = (await points()).length;
    await stopProcess(sqliteFile());
    // The writer answers the freeze hook, and moves the SQLite position past what was shipped.
    const pgc = new pg.Client({ connectionString: cluster.dsn });
    await pgc.connect();
    const rc = await redis.client();
    const w = new Writer(pgc, rc);
    let r: Awaited<ReturnType<typeof lb>>;
    let took: number;
    try {
      await waitUntil('the writer to get going', () => w.n > 10);
      const t0 = Date.now();
      r = await lb(['group', 'backup', 'tiers', '--wait', '3s']);
      took = Date.now() - t0;
    } finally {
      await w.stop();
      rc.close();
      await pgc.end();
    }
    expect(r.code, r.stderr).toBe(48);
    expect(r.stderr).toMatch(/group "tiers": the archive of member "meta" \(sqlite\) did not reach the point's position within 3 s .*; no point was stored/);
    expect(r.stderr).toMatch(/is `lifeboat sqlite replicate --name meta` running for it\?/);
    expect(took).toBeLessThan(30_000);
    expect(await points()).toHaveLength(before);
  }, 120_000);

  it('refuses, before starting anything, to restore a point whose member log no longer reaches it', async () => {
    // The Redis segment holding the point's offset goes (as a forget or a damaged store would take it).
    const offset = Number(point.members[1]!.position.offset);
    const logs = path.join(repo, 'logs', 'redis.hot');
    const holder = readdirSync(logs, { recursive: true })
      .map(String)
      .find((f) => {
        const m = /([0-9a-f]{16})-([0-9a-f]{16})-[0-9a-f]{12}$/.exec(f);
        return m !== null && parseInt(m[1]!, 16) < offset && parseInt(m[2]!, 16) >= offset;
      });
    expect(holder).toBeDefined();
    rmSync(path.join(logs, holder!));
    const dir = path.join(base, 'gone');
    mkdirSync(dir);
    chownSync(dir, ids().uid, ids().gid);
    const r = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`]);
    expect(r.code, r.stderr).toBe(48);
    expect(r.stderr).toMatch(new RegExp(`member "hot" \\(redis\\) of point ${point.id}: its stored history no longer reaches the point \\(.*\\); nothing was started`));
    expect(readdirSync(dir)).toEqual([]);
  }, 120_000);
});
