/**
 * `lifeboat group drill` through the real CLI, run as the postgres user as in
 * production: a group of a real PostgreSQL cluster (WAL archived by archive_command), a
 * redis-server (`lifeboat redis replicate`) and a SQLite file (`lifeboat sqlite
 * replicate`), and a writer that, for each operation, inserts a row in PostgreSQL and in
 * SQLite and then caches its id in Redis, pausing while the group's freeze hook asks.
 * The drill restores all three into scratch at the point, starts what needs starting,
 * runs each member's checks and the group's cross-member checks, and records one RTO;
 * a check that does not hold fails the drill with its count; a drill killed with
 * SIGTERM or -9 leaves no scratch server behind (and -9's directory is removed by the
 * next drill).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers.js';
import { archivedCluster, lifeboatAsPostgres, type ScratchCluster } from '../pg-cluster.js';
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
const children: ChildProcess[] = [];

/** The drills' scratch parent (TMPDIR): this file's own, so that drills other test files run meanwhile do not count. */
let tmp: string;
const lb = (args: string[]) => lifeboatAsPostgres(['--config', cfg, '--repo', 'r', ...args], { TMPDIR: tmp });
const sqliteFile = () => path.join(base, 'meta.db');
const ids = () => ({ uid: statSync(base).uid, gid: statSync(base).gid });
const scratchDirs = () => readdirSync(tmp).filter((n) => n.startsWith('lifeboat-group-drill-') || n.startsWith('lifeboat-start-'));
/** Servers a drill started: their arguments name a group drill's scratch directory. */
const drillServers = () => {
  const dir = path.join(tmp, 'lifeboat-group-drill-');
  return [...processes('postgres', dir), ...processes('redis-server', dir), ...processes('setpriv', dir)];
};

function startAsPostgres(args: string[]): ChildProcess {
  const child = spawn('runuser', ['-u', 'postgres', '--', process.execPath, CLI, '--config', cfg, '--repo', 'r', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
  children.push(child);
  return child;
}

async function snapshotsOf(kind: string, name: string): Promise<number> {
  const r = await lb(['snapshots', '--json']);
  if (r.code !== 0) return 0;
  return (JSON.parse(r.stdout) as Array<{ source: { kind: string; name: string } }>).filter((s) => s.source.kind === kind && s.source.name === name).length;
}

/** One id per operation: a row in PostgreSQL, a row in SQLite, then SADD in Redis; paused while freeze.req exists. */
class Writer {
  /** Ids go on from one writer to the next (the tables keep their rows). */
  static last = 0;
  n = Writer.last;
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
    const ins = app.prepare('INSERT INTO memories (id) VALUES (?)');
    while (!this.stopped) {
      if (existsSync(req)) {
        this.acked.push(this.n);
        writeFileSync(ack, String(this.n));
        while (existsSync(req) && !this.stopped) await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const v = ++this.n;
      await this.pgc.query('INSERT INTO memories (id) VALUES ($1)', [v]);
      ins.run(v);
      await this.rc.ok(['SADD', 'active', String(v)]);
    }
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    Writer.last = this.n;
  }
}

/** Runs the writer until `more` operations past a capture of GROUP; returns the point id and the value acknowledged at its freeze. */
async function capture(group: string, more = 50): Promise<{ point: string; acked: number }> {
  const pgc = new pg.Client({ connectionString: cluster.dsn });
  await pgc.connect();
  const rc = await redis.client();
  const w = new Writer(pgc, rc);
  try {
    await waitUntil('the writer to get going', () => w.n > Writer.last + 50);
    const r = await lb(['group', 'backup', group, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const acked = w.acked.at(-1) as number;
    await waitUntil('more writes after the point', () => w.n > acked + more);
    return { point: (JSON.parse(r.stdout) as { id: string }).id, acked };
  } finally {
    await w.stop();
    rc.close();
    await pgc.end();
  }
}

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-gdr-'));
  tmp = path.join(base, 'tmp');
  mkdirSync(tmp, { mode: 0o700 });
  chownSync(tmp, statSync(base).uid, statSync(base).gid);
  redis = await RedisServer.start();
  await cluster.query('CREATE TABLE memories (id int PRIMARY KEY)');
  app = new Database(sqliteFile());
  app.pragma('journal_mode = WAL');
  app.exec('CREATE TABLE memories (id INTEGER PRIMARY KEY)');
  for (const f of ['', '-wal', '-shm']) chownSync(sqliteFile() + f, ids().uid, ids().gid);
  cfg = path.join(base, 'lifeboat.yaml');
  const sh = (script: string) => JSON.stringify(['/bin/sh', '-c', script]);
  const freeze = `freeze: ${sh('rm -f freeze.ack; touch freeze.req; while [ ! -f freeze.ack ]; do sleep 0.005; done')}\n    thaw: [/bin/rm, -f, freeze.req]\n    max_hold: 5s`;
  writeFileSync(
    cfg,
    [
      'repositories:',
      `  r: { stores: [${repo}], password_file: ${pw} }`,
      'sources:',
      `  main: { kind: postgres, dsn: "${cluster.dsn}", checks: ["SELECT count(*) > 0 FROM memories"] }`,
      `  hot: { kind: redis, url: "${redis.url}", checks: ["TYPE active => set"] }`,
      `  meta: { kind: sqlite, path: ${sqliteFile()} }`,
      'groups:',
      '  tiers:',
      '    members: [main, hot, meta]',
      `    ${freeze}`,
      '    checks:',
      '      - { name: cached ids are rows, every: { member: hot, redis: [SMEMBERS, active] }, in: { member: main, sql: "SELECT id FROM memories" } }',
      '      - { name: rows agree, every: { member: main, sql: "SELECT id FROM memories" }, in: { member: meta, sql: "SELECT id FROM memories" } }',
      '  cache:',
      '    members: [hot, meta]',
      `    ${freeze}`,
      '    checks:',
      '      - { name: cached ids are even rows, every: { member: hot, redis: [SMEMBERS, active] }, in: { member: meta, sql: "SELECT id FROM memories WHERE id % 2 = 0" } }',
      '',
    ].join('\n'),
  );
  chownSync(cfg, ids().uid, ids().gid);
  const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
  expect(b.code, b.stderr).toBe(0);
  startAsPostgres(['redis', 'replicate', '--url', redis.url, '--name', 'hot', '--interval', '200ms']);
  startAsPostgres(['sqlite', 'replicate', sqliteFile(), '--name', 'meta', '--interval', '200ms']);
  await waitUntil('both replicators to store their base snapshots', async () => (await snapshotsOf('redis', 'hot')) > 0 && (await snapshotsOf('sqlite', 'meta')) > 0, 120_000, 500);
}, 300_000);

afterAll(async () => {
  if (cfg) for (const p of processes('node', cfg)) process.kill(p, 'SIGKILL');
  app?.close();
  await stopAllRedis();
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

interface Drill {
  group: string;
  point: string;
  ok: boolean;
  rto_ms: number | null;
  rpo_seconds: number;
  members: Array<{ name: string; kind: string; ok: boolean; restore_ms: number; checks: Array<{ name: string; ok: boolean; detail: string }> }>;
  checks: Array<{ name: string; ok: boolean; violations: number; examples: string[]; every: { values: number }; in: { values: number } }>;
  error?: string;
}

describe('group drill', () => {
  it('restores every member at the point into scratch, checks each and all together, and records one RTO', async () => {
    const { point, acked } = await capture('tiers');
    const before = scratchDirs();
    const r = await lb(['group', 'drill', 'tiers', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as Drill;
    expect(d).toMatchObject({ group: 'tiers', point, ok: true });
    console.log(`group drill of tiers (PostgreSQL, Redis, SQLite; ${acked} ids): RTO ${d.rto_ms} ms (restores ${d.members.map((m) => `${m.name} ${m.restore_ms} ms`).join(', ')})`);
    expect(d.rto_ms).toBeGreaterThan(0);
    // One RTO for the group covers every member's restore.
    expect(d.rto_ms!).toBeGreaterThanOrEqual(d.members.reduce((n, m) => n + m.restore_ms, 0));
    expect(d.members.map((m) => [m.name, m.ok])).toEqual([['main', true], ['hot', true], ['meta', true]]);
    const checks = Object.fromEntries(d.members.map((m) => [m.name, m.checks.map((c) => c.name)]));
    expect(checks.main).toEqual(['restore', 'start', 'select 1', 'databases', 'query SELECT count(*) > 0 FROM memories']);
    expect(checks.hot).toEqual(['restore', 'load', 'check TYPE active => set']);
    expect(checks.meta).toEqual(['restore', 'quick_check']);
    // At the point the three tiers held exactly the acknowledged ids, although writing went on.
    expect(d.checks.map((c) => [c.name, c.ok, c.violations, c.every.values, c.in.values])).toEqual([
      ['cached ids are rows', true, 0, acked, acked],
      ['rows agree', true, 0, acked, acked],
    ]);
    // Nothing of the drill is left: its scratch directory and servers are gone.
    expect(scratchDirs()).toEqual(before);
    expect(drillServers()).toEqual([]);
    // Recorded as every drill is.
    const h = await lb(['drill', '--history', '--json']);
    expect(h.code, h.stderr).toBe(0);
    const rec = (JSON.parse(h.stdout) as Array<{ source: string; kind: string; ok: boolean; snapshot: string; rto_seconds: number; checks: Array<{ name: string }> }>).filter((x) => x.source === 'group:tiers');
    expect(rec).toHaveLength(1);
    expect(rec[0]).toMatchObject({ kind: 'group', ok: true, snapshot: point, rto_seconds: d.rto_ms! / 1000 });
    expect(rec[0]!.checks.map((c) => c.name)).toContain('check: cached ids are rows');
    // The human form.
    const human = await lb(['group', 'drill', 'tiers', '--point', point]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^ok {6}group tiers {2}point ${point} {2}RTO \\d+\\.\\d s {2}RPO \\d+\\.\\d s`));
    expect(human.stdout).toMatch(/✓ check cached ids are rows: all \d+ values of hot found among the \d+ of main/);
  }, 300_000);

  it('fails with the count and examples when a cross-member check does not hold', async () => {
    const { acked } = await capture('cache', 5);
    const r = await lb(['group', 'drill', 'cache', '--json']);
    expect(r.code).toBe(1);
    const d = JSON.parse(r.stdout) as Drill;
    expect(d.ok).toBe(false);
    expect(d.rto_ms).toBeNull();
    expect(d.members.every((m) => m.ok)).toBe(true);
    const odd = Math.ceil(acked / 2);
    expect(d.checks[0]).toMatchObject({ name: 'cached ids are even rows', ok: false, violations: odd });
    for (const e of d.checks[0]!.examples) expect(Number(e) % 2).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`group drill of cache failed: cached ids are even rows: ${odd} of the ${acked} values of hot not found among the ${acked - odd} of meta`));
    // A request that cannot be met is refused before any work, and not recorded.
    const bad = await lb(['group', 'drill', 'cache', '--point', 'nope']);
    expect(bad.code, bad.stderr).toBe(15);
    expect(bad.stderr).toMatch(/no point "nope" of group "cache"/);
    const both = await lb(['group', 'drill', 'cache', '--point', 'x', '--time', '2026-01-01T00:00:00Z']);
    expect(both.code).toBe(2);
  }, 300_000);

  it('killed with SIGTERM while its servers run, stops them, removes its directory and records nothing; killed with -9, its servers die with it and the next drill removes the directory', async () => {
    const history = async () => (JSON.parse((await lb(['drill', '--history', '--json'])).stdout) as unknown[]).length;
    const recorded = await history();
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const before = scratchDirs();
      const child = startAsPostgres(['group', 'drill', 'tiers']);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      let ended: string | undefined;
      const exited = new Promise<number | null>((resolve) =>
        child.on('close', (code, sig) => {
          ended = `exited ${code ?? sig}`;
          resolve(code ?? (sig ? -1 : null));
        }),
      );
      // Once the PostgreSQL scratch server runs (the restores are done, the members are being
      // opened). A drill that ends before that fails the wait at once, with what it said.
      await waitUntil(
        'the drill\'s PostgreSQL scratch server',
        () => {
          if (ended !== undefined) throw new Error(`the drill ${ended} before its PostgreSQL scratch server was seen: ${stderr.slice(-2000)}`);
          return processes('postgres', path.join(tmp, 'lifeboat-group-drill-')).length > 0;
        },
        120_000,
        20,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; the drill's stderr so far: ${stderr.slice(-2000)}`);
      });
      // (Not the restore_command calls and read-ahead fetcher of its scratch server, whose arguments name cfg and the drill's directory.)
      const drill = processes('node', 'drill').filter((p) => processes('node', cfg).includes(p) && !processes('node', 'replicate').includes(p) && !processes('node', 'archive-').includes(p));
      expect(drill).toHaveLength(1);
      process.kill(drill[0]!, signal);
      const code = await exited;
      if (signal === 'SIGTERM') expect(code).toBe(130);
      await waitUntil('the drill\'s servers to stop', () => drillServers().length === 0, 30_000);
      if (signal === 'SIGTERM') expect(scratchDirs()).toEqual(before);
      else expect(scratchDirs().length).toBe(before.length + 1);
    }
    expect(await history()).toBe(recorded);
    // The next drill removes the directory the killed one left.
    const r = await lb(['group', 'drill', 'cache', '--json']);
    expect(r.code).toBe(1); // its check fails by design; what matters is the cleanup
    expect(scratchDirs()).toEqual([]);
  }, 300_000);
});
