/**
 * Consistency groups through the real CLI (`lifeboat group backup | points`) against a
 * scratch PostgreSQL cluster, a scratch redis-server and a SQLite file an application
 * connection keeps open: the three positions recorded (each checked by another route
 * than the code under test: pg_waldump finds the restore point in the WAL, the -wal
 * file's length gives the frame count, INFO gives the offset), the hold measured between
 * the hooks' own timestamps, a freeze that hangs killed with what it started while thaw
 * still runs, a failing thaw reported, bad members refused, and the points listed.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../src/sources/all.js';
import { loadConfig } from '../../src/config/config.js';
import { openMember } from '../../src/engine/group/members.js';
import { cleanupTmp, expectError, initRepo, runCli, tmpdir } from '../helpers.js';
import { PG_BIN, ScratchCluster } from '../pg-cluster.js';
import { RedisServer, stopAllRedis } from '../helpers/redis-server.js';
import type { RedisConnection } from '../../src/sources/redis/connection.js';
import { Archivers } from '../helpers/archivers.js';
import { waitUntil } from '../pg-streamer.js';

const execFileP = promisify(execFile);

let cluster: ScratchCluster;
let redis: RedisServer;
/** A server no replica ever attached to: its offset names no position. */
let lone: RedisServer;
let dir: string;
let cfg: string;
let app: Database.Database;
const sqliteFile = () => path.join(dir, 'meta.db');

interface Point {
  id: string;
  group: string;
  hold_ms: number;
  max_hold_ms: number;
  frozen: boolean;
  members: Array<{ name: string; kind: string; position: Record<string, unknown>; archived?: { at: string; reach: string } }>;
}

const group = (...args: string[]) => runCli(['--config', cfg, 'group', ...args]);

async function points(name: string): Promise<Point[]> {
  const r = await group('points', name, '--json');
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { points: Point[] }).points;
}

async function redisOffset(): Promise<number> {
  const conn = await redis.client();
  try {
    return Number((await conn.info('replication')).get('master_repl_offset'));
  } finally {
    conn.close();
  }
}

/** The members' own archivers, run as a user would (each member's log must reach its position for a point to be stored). */
const archivers = new Archivers();
const archiver = (args: string[]): void => archivers.start(path.join(dir, 'repo'), args);

beforeAll(async () => {
  dir = tmpdir('lb-group-');
  [cluster, redis, lone] = await Promise.all([ScratchCluster.create(), RedisServer.start(), RedisServer.start()]);
  await cluster.start();
  const repo = path.join(dir, 'repo');
  await initRepo(repo);
  // Redis moves master_repl_offset only while it keeps a backlog: `lifeboat redis replicate`
  // attaches as a replica, and the server pings it rarely so the offset moves by writes only.
  const master = await redis.client();
  await master.ok(['CONFIG', 'SET', 'repl-ping-replica-period', '3600']);
  archiver(['redis', 'replicate', '--url', redis.url, '--name', 'hot', '--interval', '200ms']);
  archiver(['pg', 'stream', '--name', 'warm', '--dsn', cluster.dsn, '--interval', '200ms', '--bin-dir', PG_BIN, '--spool', path.join(dir, 'spool')]);
  for (const until = Date.now() + 30_000; ; ) {
    if ((await master.info('replication')).get('repl_backlog_active') === '1') break;
    if (Date.now() > until) throw new Error('the replica never attached');
    await new Promise((res) => setTimeout(res, 50));
  }
  master.close();
  await cluster.query('CREATE TABLE memories (id int PRIMARY KEY, body text)');
  // The application's connection stays open, as a live application's would.
  app = new Database(sqliteFile());
  app.pragma('journal_mode = WAL');
  app.pragma('wal_autocheckpoint = 0'); // the frame count below is the -wal file's length
  app.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
  // Never checkpoints on its own either: the frame count below stays the -wal file's length.
  archiver(['sqlite', 'replicate', sqliteFile(), '--name', 'meta', '--interval', '200ms', '--checkpoint-frames', '1000000', '--verify-interval', 'off']);
  cfg = path.join(dir, 'lifeboat.yaml');
  const sh = (script: string) => JSON.stringify(['/bin/sh', '-c', script]);
  writeFileSync(
    cfg,
    [
      'repositories:',
      `  main: { stores: [${repo}] }`,
      'sources:',
      `  warm: { kind: postgres, dsn: "${cluster.dsn}" }`,
      `  hot: { kind: redis, url: "${redis.url}" }`,
      '  meta: { kind: sqlite, path: meta.db }',
      '  dumped: { kind: command, dump: [/bin/echo, x] }',
      `  lonely: { kind: redis, url: "${lone.url}" }`,
      '  gone: { kind: postgres, dsn: "postgresql://postgres@127.0.0.1:1/postgres" }',
      'groups:',
      `  tiers: { members: [hot, warm, meta], freeze: ${sh('date +%s%N > freeze.ns')}, thaw: ${sh('sleep 0.05; date +%s%N > thaw.ns')}, max_hold: 5s }`,
      `  hang: { members: [hot, warm, meta], freeze: ${sh('sleep 30 & echo $! > sleeper.pid; wait')}, thaw: [/usr/bin/touch, thawed-hang], max_hold: 300ms }`,
      `  badthaw: { members: [hot], freeze: [/bin/true], thaw: ${sh('echo still frozen >&2; exit 3')}, max_hold: 5s }`,
      `  slowthaw: { members: [meta], freeze: [/bin/true], thaw: [/bin/sleep, "0.4"], max_hold: 200ms }`,
      '  withdump: { members: [hot, dumped] }',
      '  lone: { members: [lonely, meta] }',
      '  down: { members: [hot, gone], freeze: [/usr/bin/touch, froze-down], thaw: [/usr/bin/touch, thawed-down] }',
      '',
    ].join('\n'),
  );
}, 180_000);

afterAll(async () => {
  await archivers.stop();
  app?.close();
  await stopAllRedis();
  await cluster?.destroy();
  cleanupTmp();
});

describe('group backup', () => {
  it('records the PostgreSQL, SQLite and Redis positions while frozen, measures the hold and stores one point', async () => {
    await cluster.query("INSERT INTO memories SELECT g, 'm' || g FROM generate_series(1, 100) g");
    const [before] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    for (let i = 0; i < 5; i++) app.prepare('INSERT INTO notes (body) VALUES (?)').run(`note ${i}`);
    const conn = await redis.client();
    for (let i = 0; i < 20; i++) await conn.ok(['SET', `k${i}`, `v${i}`]);
    conn.close();
    const offsetBefore = await redisOffset();

    const r = await group('backup', 'tiers', '--json');
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as Point;
    expect(p.group).toBe('tiers');
    expect(p.frozen).toBe(true);
    expect(p.members.map((m) => [m.name, m.kind])).toEqual([
      ['hot', 'redis'],
      ['warm', 'postgres'],
      ['meta', 'sqlite'],
    ]);
    const pos = Object.fromEntries(p.members.map((m) => [m.name, m.position]));
    // Stored only once each member's own archiver had stored its position.
    const reach = Object.fromEntries(p.members.map((m) => [m.name, m.archived?.reach]));
    expect(reach.warm).toMatch(/^WAL segment [0-9A-F]{24} streamed/);
    expect(reach.hot).toBe(`generation ${reach.hot?.split(' ')[1]?.replace(',', '')}, offset ${String(pos.hot!.offset)}`);
    expect(reach.meta).toMatch(new RegExp(`^generation [0-9a-f]+, cycle 0, frame ${String(pos.meta!.frame)}$`));

    // Redis: the offset the server was at (nothing was written between).
    expect(pos.hot!.offset).toBe(offsetBefore);
    expect(offsetBefore).toBeGreaterThan(0);

    // PostgreSQL: the restore point is a record in the WAL, past what was written before.
    const name = pos.warm!.restore_point as string;
    expect(name).toBe(`lifeboat-${p.id}-tiers`);
    const [cmp] = await cluster.query<{ d: string }>('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text AS d', [pos.warm!.lsn, before!.lsn]);
    expect(Number(cmp!.d)).toBeGreaterThan(0);
    await cluster.query('SELECT pg_switch_wal()'); // flushes the WAL to the files pg_waldump reads
    const dump = await execFileP(path.join(PG_BIN, 'pg_waldump'), ['-p', path.join(cluster.data, 'pg_wal'), '-s', before!.lsn, '-r', 'XLOG']).catch((e: { stdout: string }) => e);
    expect(dump.stdout).toMatch(new RegExp(`RESTORE_POINT.*${name}`));

    // SQLite: every committed frame (no checkpoint ran): the -wal file's length.
    const pageSize = app.pragma('page_size', { simple: true }) as number;
    const frames = (statSync(`${sqliteFile()}-wal`).size - 32) / (pageSize + 24);
    expect(pos.meta!.frame).toBe(frames);
    expect(frames).toBeGreaterThan(5);

    // The hold covers both hooks (their own clocks), and stays under max_hold.
    const freezeNs = BigInt(readFileSync(path.join(dir, 'freeze.ns'), 'utf8').trim());
    const thawNs = BigInt(readFileSync(path.join(dir, 'thaw.ns'), 'utf8').trim());
    expect(p.hold_ms).toBeGreaterThanOrEqual(Number(thawNs - freezeNs) / 1e6);
    expect(p.hold_ms).toBeLessThan(p.max_hold_ms);

    // The human form prints the point and the hold.
    const human = await group('backup', 'tiers');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^point [0-9a-f]{12}-[0-9a-f]{8} of group tiers: writes held \d+\.\d ms \(max_hold 5000 ms\)/);
    expect(human.stdout).toMatch(/warm \(postgres\): restore point lifeboat-\S+-tiers at [0-9A-F]+\/[0-9A-F]+/);

    // Both points are listed, newest first, and they are what backup printed.
    const listed = await points('tiers');
    expect(listed.map((x) => x.id)).toEqual([human.stdout.split(' ')[1], p.id]);
    expect(listed[1]).toEqual(p);
    const text = await group('points', 'tiers');
    expect(text.stdout.trim().split('\n')).toHaveLength(2);
    expect(text.stdout).toContain(p.id);
  }, 120_000);

  it('kills a freeze that hangs past max_hold (and what it started), still runs thaw, fails cleanly and stores nothing', async () => {
    const t0 = Date.now();
    const r = await group('backup', 'hang');
    expectError(r, 47, /group "hang": freeze was killed after running past its limit \(max_hold 300 ms\)/);
    expect(Date.now() - t0).toBeLessThan(20_000); // not the 30 s the hook would have taken
    expect(existsSync(path.join(dir, 'thawed-hang'))).toBe(true);
    // The hook's own child went with it.
    const sleeper = Number(readFileSync(path.join(dir, 'sleeper.pid'), 'utf8'));
    const deadline = Date.now() + 10_000;
    for (;;) {
      let alive = true;
      try {
        process.kill(sleeper, 0);
        alive = !/^State:\s+Z/m.test(readFileSync(`/proc/${sleeper}/status`, 'utf8'));
      } catch {
        alive = false;
      }
      if (!alive) break;
      expect(Date.now(), 'the freeze hook\'s sleep outlived it').toBeLessThan(deadline);
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(await points('hang')).toEqual([]);
  }, 60_000);

  it('fails when thaw makes the hold exceed max_hold, after thaw ran', async () => {
    const r = await group('backup', 'slowthaw');
    expectError(r, 47, /group "slowthaw": writes were held \d+\.\d ms, more than max_hold \(200 ms\); no point was stored/);
    expect(await points('slowthaw')).toEqual([]);
  }, 60_000);

  it('reports a thaw that fails, with what it said, and stores nothing', async () => {
    const r = await group('backup', 'badthaw');
    expectError(r, 1, /group "badthaw": thaw failed \(exit status 3\): still frozen; writes may still be held/);
    expect(await points('badthaw')).toEqual([]);
  }, 60_000);

  it('refuses a member kind that has no position yet, before anything runs', async () => {
    const r = await group('backup', 'withdump');
    expectError(r, 2, /kind command cannot join a group yet \(source "dumped" in group "withdump"\)/);
  });

  it('refuses a Redis member whose offset does not move (no replication backlog), before anything runs', async () => {
    const r = await group('backup', 'lone');
    expectError(r, 2, /redis source "lonely" keeps no replication offset \(repl_backlog_active is not 1\)/);
    expect(await points('lone')).toEqual([]);
  });

  it('refuses, before holding any write, a group whose member database is down', async () => {
    const r = await group('backup', 'down');
    expectError(r, 19, /cannot reach PostgreSQL for source "gone"/);
    // Connections are opened before the freeze: nothing was held, so there was nothing to thaw.
    expect(existsSync(path.join(dir, 'froze-down'))).toBe(false);
    expect(existsSync(path.join(dir, 'thawed-down'))).toBe(false);
    expect(await points('down')).toEqual([]);
  });

  it('refuses a group naming a source that does not exist, at its line', async () => {
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(cfg, 'utf8').replace('members: [hot, dumped]', 'members: [hot, nope]'));
    const line = readFileSync(bad, 'utf8').split('\n').findIndex((l) => l.includes('nope')) + 1;
    const r = await runCli(['--config', bad, 'group', 'points', 'tiers']);
    expectError(r, 2, new RegExp(`bad\\.yaml:${line}: group "withdump" names source "nope", which is not defined`));
    const r2 = await group('backup', 'missing');
    expectError(r2, 2, /no group "missing" in .*lifeboat\.yaml/);
  });
});

describe('a PostgreSQL member read again inside the hold', () => {
  const xmax = async () => BigInt((await cluster.query<{ x: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x'))[0]!.x);
  const analyzed = async () => Number((await cluster.query<{ n: string }>("SELECT autoanalyze_count AS n FROM pg_stat_user_tables WHERE relname = 'probe'"))[0]?.n ?? 0);
  /** As a capture asks: inside the hold, then after thaw. */
  const writes = async (m: Awaited<ReturnType<typeof openMember>>) => (await m.writesSince!()) ?? (await m.writesOnCloserLook!());
  const reload = async (...settings: string[]) => {
    for (const s of settings) await cluster.query(s);
    await cluster.query('SELECT pg_reload_conf()');
  };

  it("counts a commit as a write, not autovacuum's ANALYZE nor an aborted transaction; says when it cannot tell ANALYZE apart", async () => {
    // Autovacuum is off until the point is taken (ALTER SYSTEM takes no transaction id, ALTER TABLE does).
    await reload('ALTER SYSTEM SET autovacuum = off');
    await cluster.query('CREATE TABLE probe (id int, body text)');
    await cluster.query('INSERT INTO probe SELECT g, md5(g::text) FROM generate_series(1, 1000) AS g');
    await cluster.query('ALTER TABLE probe SET (autovacuum_analyze_threshold = 0, autovacuum_analyze_scale_factor = 0)');
    await cluster.query('CREATE ROLE lb_limited LOGIN');
    await cluster.query('CREATE DATABASE lb_other');
    await cluster.query('GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO lb_limited');
    const config = loadConfig(cfg);
    const member = await openMember(config.sources.get('warm')!, cfg);
    try {
      await member.position('lb_probe_point');
      const atPoint = await xmax();
      // Autovacuum comes back and analyzes probe on its own: a transaction that commits after the point.
      await reload("ALTER SYSTEM SET autovacuum_naptime = '1s'", 'ALTER SYSTEM RESET autovacuum');
      await waitUntil('autovacuum to analyze probe', async () => (await analyzed()) > 0, 120_000, 200);
      expect(await xmax()).toBeGreaterThan(atPoint);
      expect(await writes(member)).toBeUndefined();
      // A transaction that wrote and rolled back changed nothing.
      const pgc = new (await import('pg')).default.Client({ connectionString: cluster.dsn });
      await pgc.connect();
      try {
        await pgc.query('BEGIN');
        await pgc.query("INSERT INTO probe VALUES (0, 'rolled back')");
        await pgc.query('ROLLBACK');
        expect(await writes(member)).toBeUndefined();
        // A committed write is one.
        await pgc.query("INSERT INTO probe VALUES (0, 'written while frozen')");
      } finally {
        await pgc.end();
      }
      expect(await writes(member)).toMatch(/^transactions ended after its restore point \(next transaction id \d+ → \d+\): 1 committed that was not an ANALYZE \(id \d+\), \d+ ANALYZE not counted$/);
    } finally {
      await member.close();
      await reload('ALTER SYSTEM RESET autovacuum_naptime', 'ALTER SYSTEM RESET autovacuum');
    }
    // A write to another database of the cluster is in the same restore: it counts.
    const other = await openMember(config.sources.get('warm')!, cfg);
    try {
      await other.position('lb_probe_other');
      const c = new (await import('pg')).default.Client({ connectionString: cluster.dsn.replace(/\/postgres$/, '/lb_other') });
      await c.connect();
      await c.query('CREATE TABLE elsewhere AS SELECT 1 AS one').finally(() => c.end());
      expect(await writes(other)).toMatch(/^transactions ended after its restore point \(next transaction id \d+ → \d+\): 1 committed that was not an ANALYZE \(id \d+\)$/);
    } finally {
      await other.close();
    }
    // A role that may not read pg_statistic cannot tell an ANALYZE apart, and says so.
    const limited = await openMember({ ...config.sources.get('warm')!, dsn: cluster.dsn.replace('postgres@', 'lb_limited@') }, cfg);
    try {
      await limited.position('lb_probe_limited');
      await cluster.query('ANALYZE probe');
      expect(await writes(limited)).toMatch(
        /: 1 committed that was not an ANALYZE \(id \d+\); not looked in: postgres, lb_other, template1 \(the role may not read pg_statistic: GRANT SELECT ON pg_statistic, pg_statistic_ext_data to it\)$/,
      );
    } finally {
      await limited.close();
    }
  }, 180_000);
});

describe('a Redis member read again inside the hold', () => {
  // Each save writes a key every 2 ms, so a save of the 1000 keys below runs for about 2 s.
  const saving = async (c: RedisConnection) => (await c.info('persistence')).get('rdb_bgsave_in_progress') === '1';

  it('is not fooled by a save that ends inside the hold: writes before the position are not counted again, one inside it is', async () => {
    const c = await redis.client();
    const member = await openMember(loadConfig(cfg).sources.get('hot')!, cfg);
    try {
      await c.call(['MSET', ...Array.from({ length: 1000 }, (_, i) => [`bulk${i}`, 'x']).flat()]);
      await c.ok(['CONFIG', 'SET', 'rdb-key-save-delay', '2000']);
      // A save starts, the application writes on, then freezes: the position is read while the save runs.
      await c.call(['BGSAVE']);
      await c.ok(['SET', 'before', '1']);
      await member.position('');
      expect(await saving(c)).toBe(true);
      await waitUntil('the save to end', async () => !(await saving(c)), 60_000, 20);
      // The count restarted from the save's start and still holds the write made before the position.
      expect((await c.info('persistence')).get('rdb_changes_since_last_save')).not.toBe('0');
      expect(await member.writesSince!()).toBeUndefined();
      // The same, with a write inside the hold.
      await c.call(['BGSAVE']);
      await member.position('');
      await c.ok(['SET', 'inside', '1']);
      await waitUntil('the save to end', async () => !(await saving(c)), 60_000, 20);
      expect(await member.writesSince!()).toMatch(/^keys changed after its offset \(a save ended meanwhile, so the replication offset tells: \d+ → \d+\)$/);
      // Without a save, the count tells.
      await member.position('');
      await c.ok(['SET', 'inside', '2']);
      expect(await member.writesSince!()).toMatch(/^keys changed after its offset \(changes since the last save \d+ → \d+\)$/);
    } finally {
      await c.ok(['CONFIG', 'SET', 'rdb-key-save-delay', '0']);
      c.close();
      await member.close();
    }
  }, 120_000);
});
