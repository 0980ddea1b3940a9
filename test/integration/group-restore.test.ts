/**
 * A consistency group of a real PostgreSQL cluster (WAL archived by archive_command),
 * a real redis-server (`lifeboat redis replicate`), a SQLite file (`lifeboat sqlite
 * replicate`) and a directory (a files member, copied while frozen), all run as the
 * postgres user as archive_command runs. A writer puts one increasing counter into all
 * four; the group's freeze hook asks it to pause and waits for its acknowledgement, so
 * at the point all four hold the same value. `group backup` proves each log member's
 * archive holds its position; `group restore` brings each member back to exactly that
 * position, so the four restored counters are equal, and equal to the value
 * acknowledged at the freeze, although the writer went on writing afterwards.
 * Also: a dry run changes nothing, one unusable target starts nothing, and a stopped
 * replicator makes `group backup` fail in bounded time with nothing stored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers.js';
import { archivedCluster, asPostgres, lifeboatAsPostgres, PG_BIN, restoredPort, type ScratchCluster } from '../pg-cluster.js';
import { RedisServer, stopAllRedis } from '../helpers/redis-server.js';
import { processes, waitUntil } from '../pg-streamer.js';
import type { RedisConnection } from '../../src/sources/redis/connection.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';

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
/** A files member: copied while frozen (it has no log). */
const docsDir = () => path.join(base, 'docs');
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
    /** Acknowledges the freeze, then "restarts": the new process does not know it is frozen and writes on. */
    private readonly restartsWhenFrozen = false,
  ) {
    this.done = this.run();
  }
  private async run(): Promise<void> {
    const req = path.join(base, 'freeze.req');
    const ack = path.join(base, 'freeze.ack');
    const set = app.prepare('UPDATE counter SET n = ? WHERE id = 1');
    while (!this.stopped) {
      if (existsSync(req) && !(this.restartsWhenFrozen && this.acked.length > 0)) {
        this.acked.push(this.n);
        writeFileSync(ack, String(this.n));
        if (this.restartsWhenFrozen) continue;
        while (existsSync(req) && !this.stopped) await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const v = ++this.n;
      await this.pgc.query('UPDATE counter SET n = $1 WHERE id = 1', [v]);
      await this.rc.ok(['SET', 'counter', String(v)]);
      set.run(v);
      writeFileSync(path.join(docsDir(), 'counter.txt'), String(v));
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
  mkdirSync(docsDir());
  writeFileSync(path.join(docsDir(), 'counter.txt'), '0');
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
      `  docs: { kind: files, paths: [${docsDir()}] }`,
      `  bulk: { kind: files, paths: [${path.join(base, 'bulk')}] }`,
      'groups:',
      // Thaw runs once the positions are read: its file tells the test so.
      '  hotonly: { members: [hot], freeze: [/bin/true], thaw: [/usr/bin/touch, hotonly.thawed], max_hold: 5s }',
      '  pgonly: { members: [main], freeze: [/bin/true], thaw: [/usr/bin/touch, pgonly.thawed], max_hold: 5s }',
      `  tiers: { members: [main, hot, meta, docs], freeze: ${sh('rm -f freeze.ack; touch freeze.req; while [ ! -f freeze.ack ]; do sleep 0.005; done')}, thaw: [/bin/rm, -f, freeze.req], max_hold: 5s }`,
      // Its files member is copied while frozen: the hold lasts long enough to see writes that should not be there.
      `  restart: { members: [main, hot, meta, bulk], freeze: ${sh('rm -f freeze.ack; touch freeze.req; while [ ! -f freeze.ack ]; do sleep 0.005; done')}, thaw: [/bin/rm, -f, freeze.req], max_hold: 60s }`,
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

  it('stores a point only once every log member archive holds it, while a writer writes to all four members', async () => {
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
    expect(point.members.map((m) => m.name)).toEqual(['main', 'hot', 'meta', 'docs']);
    // The files member's data is the snapshot copied while frozen: nothing to prove.
    expect(point.members[3]!.position).toMatchObject({ kind: 'files', method: 'frozen-copy' });
    expect(point.members[3]!.archived).toBeUndefined();
    const logMembers = point.members.slice(0, 3);
    for (const m of logMembers) {
      expect(m.archived, m.name).toBeDefined();
      expect(Date.parse(m.archived!.at)).toBeGreaterThan(0);
    }
    const proofMs = logMembers.map((m) => `${m.name} ${Date.parse(m.archived!.at) - Date.parse(point.time)} ms`);
    console.log(`group backup: each archive proven, after the freeze began: ${proofMs.join(', ')}`);
    const by = Object.fromEntries(logMembers.map((m) => [m.name, m.archived!.reach]));
    expect(by.main).toMatch(/^WAL segment [0-9A-F]{24} archived$/);
    expect(by.hot).toMatch(new RegExp(`offset ${String(point.members[1]!.position.offset)}$`));
    expect(by.meta).toMatch(/^generation \S+, cycle \d+, frame \d+$/);
  }, 240_000);

  it('a dry run prints the plan and changes nothing', async () => {
    const dir = path.join(base, 'dry');
    mkdirSync(dir);
    chownSync(dir, ids().uid, ids().gid);
    // The replicators go on shipping into logs/ (and use tmp/): everything else must stay as
    // it was. Those two are left out before anything in them is looked at (a temporary can
    // go between the listing and its stat).
    const listing = (d: string, skip: (f: string) => boolean = () => false): string[] =>
      readdirSync(d, { recursive: true, withFileTypes: false }).map(String).filter((f) => !skip(f)).sort().map((f) => `${f}:${statSync(path.join(d, f)).mtimeMs}`);
    const repoListing = () => listing(repo, (f) => f.startsWith('logs') || f.startsWith('tmp'));
    const before = { dir: listing(dir), repo: repoListing() };
    const r = await lb(['group', 'restore', 'tiers', '--point', point.id, '--dry-run', '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`, '--target', `docs=${dir}/docs`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^plan \\(dry run: nothing is changed\\): group tiers to point ${point.id}`));
    expect(r.stdout).toMatch(/main \(postgres\): restore point lifeboat-\S+-tiers \(\S+\) -> \S+\/dry\/pg/);
    expect(r.stdout).toMatch(/recovery_target_name/);
    expect(r.stdout).toMatch(/hot \(redis\): offset \d+ of [0-9a-f]{8} -> \S+\/dry\/redis/);
    expect(r.stdout).toMatch(/meta \(sqlite\): WAL frame \d+ of cycle/);
    expect(r.stdout).toMatch(/docs \(files\): snapshot [0-9a-f]{8} -> \S+\/dry\/docs/);
    // --time picks the newest point at or before it, and says so.
    const t = new Date(Date.parse(point.time) + 1).toISOString();
    const byTime = await lb(['group', 'restore', 'tiers', '--time', t, '--dry-run', '--json', '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`, '--target', `docs=${dir}/docs`]);
    expect(byTime.code, byTime.stderr).toBe(0);
    const plan = JSON.parse(byTime.stdout) as { point: string; chosen: string; dry_run: boolean; plan: Array<{ member: string; target: string }>; members: unknown[] };
    expect(plan).toMatchObject({ point: point.id, dry_run: true, members: [] });
    expect(plan.chosen).toBe(`--time ${t}: the newest point at or before it, ${point.id} of ${point.time}`);
    expect(plan.plan.map((m) => m.member)).toEqual(['main', 'hot', 'meta', 'docs']);
    expect({ dir: listing(dir), repo: repoListing() }).toEqual(before);
  }, 120_000);

  it('a point stored before proofs existed still plans; the plan says its archive was not proven then', async () => {
    // Such a point, as an older version stored it: no `archived` (written here through the repository API).
    const id = `${(Date.parse(point.time) + 1).toString(16).padStart(12, '0')}-00000000`;
    const old = { ...point, id, members: point.members.map(({ archived: _, ...m }) => m) };
    const r = await Repository.open(new LocalStore(repo), readFileSync(pw, 'utf8').trim());
    await r.putLog('group.tiers', 'points', id, Buffer.from(JSON.stringify(old)));
    for (const f of readdirSync(path.join(repo, 'logs', 'group.tiers'), { recursive: true })) chownSync(path.join(repo, 'logs', 'group.tiers', String(f)), ids().uid, ids().gid);
    const dir = path.join(base, 'old');
    mkdirSync(dir);
    chownSync(dir, ids().uid, ids().gid);
    const plan = await lb(['group', 'restore', 'tiers', '--point', id, '--dry-run', '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`, '--target', `docs=${dir}/docs`]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/archive: not proven at capture; now WAL segment [0-9A-F]{24} archived/);
    expect(plan.stdout).toMatch(/note: the archive of member "meta" was not proven when the point was taken \(a point of an older version\); checked now: generation \S+, cycle \d+, frame \d+/);
    expect(readdirSync(dir)).toEqual([]);
  }, 120_000);

  it('one unusable target starts nothing', async () => {
    const dir = path.join(base, 'bad');
    mkdirSync(path.join(dir, 'redis'), { recursive: true });
    writeFileSync(path.join(dir, 'redis', 'precious'), 'keep me');
    for (const d of [dir, path.join(dir, 'redis')]) chownSync(d, ids().uid, ids().gid);
    const r = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`, '--target', `docs=${dir}/docs`]);
    expect(r.code, r.stderr).toBe(21);
    expect(r.stderr).toMatch(/the target of member "hot", \S+\/bad\/redis, is not empty; nothing was started/);
    expect(readdirSync(dir).sort()).toEqual(['redis']);
    // A member without a target, and targets inside each other, are refused the same way.
    const r2 = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/x`]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/no --target for members "meta", "docs" of group "tiers"; nothing was started/);
    const r3 = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/pg/redis`, '--target', `meta=${dir}/sqlite`, '--target', `docs=${dir}/docs`]);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/the target of member "hot" \(\S+\) is inside the target of "main"/);
    expect(readdirSync(dir).sort()).toEqual(['redis']);
  }, 120_000);

  it('restores all four members to exactly the point: the four counters are equal', async () => {
    const dir = path.join(base, 'restored');
    // PostgreSQL and Redis into empty directories that exist, SQLite into one that does not.
    for (const d of [dir, path.join(dir, 'pg'), path.join(dir, 'redis')]) {
      mkdirSync(d, { mode: 0o700 });
      chownSync(d, ids().uid, ids().gid);
    }
    const r = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`, '--target', `docs=${dir}/docs`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^plan: group tiers to point/);
    expect(r.stdout).toMatch(/all 4 members of group tiers restored to point/);
    console.log(`group restore:\n${r.stdout.split('\n').filter((l) => /^ {2}\w+: .*\(\d+\.\d s\)$|^all /.test(l)).join('\n')}`);

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
    // The files member: the snapshot copied while frozen, below its target as `lifeboat restore` writes it (TARGET/PATH).
    const filesN = Number(readFileSync(path.join(dir, 'docs', docsDir(), 'counter.txt'), 'utf8'));
    expect({ pg: pgN, redis: redisN, sqlite: sqliteN, files: filesN }).toEqual({ pg: expected, redis: expected, sqlite: expected, files: expected });
  }, 300_000);

  it('refuses the point when the application restarts while frozen and writes on (49): a freeze hook is shown kept, not trusted', async () => {
    const bulk = path.join(base, 'bulk');
    mkdirSync(bulk);
    // Incompressible data, so that copying it while frozen takes a while even on a quiet machine.
    for (let i = 0; i < 200; i++) writeFileSync(path.join(bulk, `f${i}`), randomBytes(200_000));
    const pgc = new pg.Client({ connectionString: cluster.dsn });
    await pgc.connect();
    const rc = await redis.client();
    const w = new Writer(pgc, rc, true);
    let r: Awaited<ReturnType<typeof lb>>;
    try {
      await waitUntil('the writer to get going', () => w.n > 10);
      r = await lb(['group', 'backup', 'restart', '--json']);
    } finally {
      await w.stop();
      rc.close();
      await pgc.end();
    }
    expect(w.acked).toHaveLength(1);
    expect(r.code, r.stderr).toBe(49);
    expect(r.stderr).toMatch(/group "restart": writes reached members while the freeze held them: .*"(main|hot|meta)" \((postgres|redis|sqlite)\): .*; thaw ran and no point was stored/);
    console.log(`application restarted while frozen: ${r.stderr.split('\n')[0]}`);
    const listed = await lb(['group', 'points', 'restart', '--json']);
    expect((JSON.parse(listed.stdout) as { points: Point[] }).points).toEqual([]);
    // What the frozen copy stored for the refused point is gone again.
    expect(await snapshotsOf('files', 'bulk')).toBe(0);
  }, 180_000);

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
      r = await lb(['group', 'backup', 'tiers', '--wait', '10s']);
      took = Date.now() - t0;
    } finally {
      await w.stop();
      rc.close();
      await pgc.end();
    }
    expect(r.code, r.stderr).toBe(48);
    // Only SQLite's archiver is down (on a loaded machine PostgreSQL's may also still be behind: then both are named).
    expect(r.stderr).toMatch(/group "tiers": the archives? of members? .*"meta" \(sqlite.* did not reach the point's positions? within 10 s.*; no point was stored/);
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
    const r = await lb(['group', 'restore', 'tiers', '--point', point.id, '--target', `main=${dir}/pg`, '--target', `hot=${dir}/redis`, '--target', `meta=${dir}/sqlite`, '--target', `docs=${dir}/docs`]);
    expect(r.code, r.stderr).toBe(48);
    expect(r.stderr).toMatch(new RegExp(`member "hot" \\(redis\\) of point ${point.id}: its stored history no longer reaches the point \\(.*\\); nothing was started`));
    expect(readdirSync(dir)).toEqual([]);
  }, 120_000);

  it('refuses the point when the member server restarts before its archiver stored the position, even where the new history passes that offset', async () => {
    // The archiver is down while the writes of the point are made: they are not archived.
    await stopProcess(redis.url);
    await redis.withClient(async (c) => {
      for (let i = 0; i < 50; i++) await c.ok(['SET', `lost${i}`, 'x'.repeat(100)]);
    });
    const thawed = path.join(base, 'hotonly.thawed');
    const backup = lb(['group', 'backup', 'hotonly', '--wait', '20s', '--json']);
    await waitUntil('the position to be recorded (thaw ran)', () => existsSync(thawed), 60_000, 20);
    // The server crashes (its data was only in memory) and comes back empty, with a new
    // replication id; its archiver starts a new generation and the new history's offsets
    // grow past the recorded one. None of that holds the point's data.
    const pointOffset = await redis.withClient(async (c) => Number((await c.info('replication')).get('master_repl_offset')));
    const bases = await snapshotsOf('redis', 'hot');
    await redis.kill9();
    redis = await redis.restart();
    startAsPostgres(['redis', 'replicate', '--url', redis.url, '--name', 'hot', '--interval', '200ms']);
    await redis.withClient(async (c) => {
      // The new generation starts (its base stored) before the writes that carry its offsets past the point's.
      await waitUntil('the new generation to start', async () => (await snapshotsOf('redis', 'hot')) > bases, 60_000, 200);
      for (let i = 0; (Number((await c.info('replication')).get('master_repl_offset')) || 0) <= pointOffset + 10_000; i++) await c.ok(['SET', `new${i}`, 'y'.repeat(1000)]);
    });
    const r = await backup;
    expect(r.code, r.stderr).toBe(48);
    expect(r.stderr).toMatch(/group "hotonly": the archive of member "hot" \(redis\) did not reach the point's position within 20 s \(.*offset \d+ of generation \S+ belongs to replication id [0-9a-f]{8}, not [0-9a-f]{8} \(the server's history changed\).*\); no point was stored/);
    const listed = await lb(['group', 'points', 'hotonly', '--json']);
    expect((JSON.parse(listed.stdout) as { points: Point[] }).points).toEqual([]);
  }, 180_000);

  /** Restores point `id` of group pgonly into a fresh directory, starts it, and returns the rows of crash_marks. */
  async function restoredMarks(id: string, dirName: string): Promise<string[]> {
    const dir = path.join(base, dirName);
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, ids().uid, ids().gid);
    const rr = await lb(['group', 'restore', 'pgonly', '--point', id, '--target', `main=${dir}`]);
    expect(rr.code, rr.stderr).toBe(0);
    const copy = cluster.copy(dir, await restoredPort(dir));
    await copy.start(dir);
    try {
      await copy.waitPromoted();
      return (await copy.query<{ v: string }>('SELECT v FROM crash_marks ORDER BY v')).map((x) => x.v);
    } finally {
      await copy.stop(dir);
    }
  }

  const pgonlyPoints = async () => (JSON.parse((await lb(['group', 'points', 'pgonly', '--json'])).stdout) as { points: Point[] }).points.length;

  /** Kills the cluster at once (no shutdown checkpoint, WAL not switched) and starts it again. */
  async function crashAndRestart(): Promise<void> {
    await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', cluster.data, '-m', 'immediate', '-w', 'stop']);
    await cluster.start();
  }

  // Found by this test: pg_create_restore_point's record is not flushed when it returns (it
  // commits asynchronously), and a commit that wrote no WAL flushes nothing either; a crash
  // soon after took the record back, the segment at its LSN was rewritten without it and
  // archived, so the point was refused (48) after the whole wait, or, before the proof read
  // the segment, stored and unreachable.
  it('PostgreSQL crashing after the restore point reached disk: the point is stored and restores', async () => {
    await cluster.query('CREATE TABLE IF NOT EXISTS crash_marks (v text)');
    await cluster.query("INSERT INTO crash_marks VALUES ('a: before the durable point')");
    rmSync(path.join(base, 'pgonly.thawed'), { force: true });
    const backup = lb(['group', 'backup', 'pgonly', '--wait', '90s', '--json']);
    // Lifeboat asks for the WAL segment's name only once it has seen the record flushed.
    await waitUntil(
      'the capture to have shown its restore point durable',
      async () => (await cluster.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'lifeboat-group' AND query LIKE '%wal_segment_size%'"))[0]!.n !== '0',
      60_000,
      5,
    );
    await crashAndRestart();
    const r = await backup;
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as Point;
    expect(p.members[0]!.archived?.reach).toMatch(/^WAL segment [0-9A-F]{24} archived$/);
    await cluster.query("INSERT INTO crash_marks VALUES ('c: after the point')");
    expect(await restoredMarks(p.id, 'crash-durable')).toEqual(['a: before the durable point']);
  }, 240_000);

  it('PostgreSQL crashing before the restore point reached disk: nothing is stored (19), never a point no restore reaches', async () => {
    // The WAL writer wakes every 10 s: the restore point's record (an asynchronous commit) waits that long for disk.
    await cluster.query("ALTER SYSTEM SET wal_writer_delay = '10s'");
    await cluster.query('SELECT pg_reload_conf()');
    try {
      await cluster.query("INSERT INTO crash_marks VALUES ('b: before the lost point')");
      const thawed = path.join(base, 'pgonly.thawed');
      rmSync(thawed, { force: true });
      const stored = await pgonlyPoints();
      const before = (await cluster.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn'))[0]!.lsn;
      const backup = lb(['group', 'backup', 'pgonly', '--wait', '60s', '--json']);
      await waitUntil('the position to be recorded (thaw ran)', () => existsSync(thawed), 60_000, 5);
      const [at] = await cluster.query<{ flushed: boolean }>('SELECT pg_current_wal_flush_lsn() > $1::pg_lsn AS flushed', [before]);
      await crashAndRestart();
      const r = await backup;
      console.log(`PostgreSQL crashed right after the point (WAL ${at!.flushed ? 'already' : 'not yet'} flushed past it): group backup exited ${r.code}${r.code ? `: ${r.stderr.split('\n')[0]}` : ''}`);
      if (at!.flushed && r.code === 0) {
        // The WAL writer happened to flush first: then the point must restore.
        expect(await restoredMarks((JSON.parse(r.stdout) as Point).id, 'crash-lucky')).toContain('b: before the lost point');
        return;
      }
      expect(r.code, r.stderr).toBe(19);
      expect(r.stderr).toMatch(/the restore point could not be shown durable .*no point was stored/);
      expect(await pgonlyPoints()).toBe(stored);
    } finally {
      await cluster.query('ALTER SYSTEM RESET wal_writer_delay');
      await cluster.query('SELECT pg_reload_conf()');
    }
  }, 240_000);
});
