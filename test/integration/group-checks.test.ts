/**
 * A group's cross-member checks (engine/group/checks.ts, restored.ts) on real copies of
 * each kind of member, as `group drill` opens them after a restore: a SQLite file, a
 * stopped PostgreSQL data directory started again by startRestored, a dump.rdb loaded
 * into a scratch redis-server, a directory. The stores hold known breakage (ids cached
 * in Redis with no row, rows with no blob) and the checks must count exactly that; the
 * `checks:` form in lifeboat.yaml is refused at the line at fault.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../src/sources/all.js';
import { parseConfig } from '../../src/config/config.js';
import { runCrossChecks } from '../../src/engine/group/checks.js';
import { withRestoredMembers } from '../../src/engine/group/restored.js';
import { cleanupTmp, tmpdir } from '../helpers.js';
import { ScratchCluster } from '../pg-cluster.js';
import { RedisServer, stopAllRedis } from '../helpers/redis-server.js';

let dir: string;
let cluster: ScratchCluster;

const yaml = (extra = '') => `repositories:
  main: { stores: [/nonexistent] }
sources:
  hot: { kind: redis, url: "redis://127.0.0.1:1" }
  warm: { kind: sqlite, path: warm.db }
  pg: { kind: postgres, dsn: "postgresql://postgres@127.0.0.1:1/app", checks: ["SELECT count(*) = 4 FROM pg_database"] }
  cold: { kind: files, paths: [/srv/cold] }
groups:
  tiers:
    members: [hot, warm, pg, cold]
    checks:
      - name: cached ids are rows
        every: { member: hot, redis: [SMEMBERS, active] }
        in: { member: warm, sql: "SELECT id FROM memories" }
      - name: rows have blobs
        every: { member: warm, sql: "SELECT id FROM memories" }
        in: { member: cold, files: blobs, match: '^(\\d+)\\.bin$' }
      - name: pg rows are cached
        every: { member: pg, sql: "SELECT id FROM memories WHERE id <= 30" }
        in: { member: hot, redis: [KEYS, "mem:*"], match: '^mem:(.*)$' }
${extra}`;

beforeAll(async () => {
  dir = tmpdir('lb-gchecks-');
  // warm: rows 1..40
  const db = new Database(path.join(dir, 'warm.db'));
  db.exec('CREATE TABLE memories (id INTEGER PRIMARY KEY, body TEXT)');
  const ins = db.prepare('INSERT INTO memories VALUES (?, ?)');
  for (let i = 1; i <= 40; i++) ins.run(i, `m${i}`);
  db.close();
  // hot: ids 1..45 active (41..45 have no row), mem:1..28 cached (29, 30 missing)
  const redis = await RedisServer.start();
  await redis.withClient(async (c) => {
    for (let i = 1; i <= 45; i++) await c.ok(['SADD', 'active', String(i)]);
    for (let i = 1; i <= 28; i++) await c.ok(['SET', `mem:${i}`, 'x']);
  });
  mkdirSync(path.join(dir, 'hot'));
  writeFileSync(path.join(dir, 'hot', 'dump.rdb'), await redis.rdb());
  await redis.stop();
  // cold: blobs of rows 1..37 (38, 39, 40 missing), one file that does not match, one in a subdirectory
  const blobs = path.join(dir, 'cold', 'srv', 'cold', 'blobs');
  mkdirSync(path.join(blobs, 'old'), { recursive: true });
  for (let i = 1; i <= 37; i++) writeFileSync(path.join(blobs, `${i}.bin`), 'b');
  writeFileSync(path.join(blobs, 'README'), 'x');
  writeFileSync(path.join(blobs, 'old', '39.bin'), 'b'); // old/39.bin is not 39.bin
  // pg: a stopped cluster with rows 1..40 in database app
  cluster = await ScratchCluster.create();
  await cluster.start();
  await cluster.query('CREATE DATABASE app');
  const app = cluster.copy(cluster.data, cluster.port);
  const pg = await import('pg');
  const client = new pg.default.Client({ connectionString: app.dsn.replace(/\/postgres$/, '/app') });
  await client.connect();
  await client.query('CREATE TABLE memories (id int PRIMARY KEY)');
  await client.query('INSERT INTO memories SELECT generate_series(1, 40)');
  await client.end();
  await cluster.stop();
}, 180_000);

afterAll(async () => {
  await stopAllRedis();
  await cluster?.destroy();
  cleanupTmp();
});

describe('cross-member checks on restored members', () => {
  it('counts what each check finds missing, with examples, and runs each member\'s own checks', async () => {
    const config = parseConfig(yaml(), path.join(dir, 'lifeboat.yaml'));
    const group = config.groups.get('tiers')!;
    const members = [
      { source: config.sources.get('hot')!, target: path.join(dir, 'hot') },
      { source: config.sources.get('warm')!, target: path.join(dir, 'warm.db') },
      { source: config.sources.get('pg')!, target: cluster.data },
      { source: config.sources.get('cold')!, target: path.join(dir, 'cold') },
    ];
    const { results, own } = await withRestoredMembers(members, async (opened) => ({ results: await runCrossChecks(group.checks!, opened.readers), own: opened.checks }));

    const [cached, blobs, pgRows] = results;
    expect(cached).toMatchObject({ name: 'cached ids are rows', ok: false, violations: 5, every: { member: 'hot', values: 45 }, in: { member: 'warm', values: 40 } });
    expect([...cached!.examples].sort()).toEqual(['41', '42', '43', '44', '45']);
    expect(blobs).toMatchObject({ ok: false, violations: 3, every: { values: 40 }, in: { values: 37 } });
    expect([...blobs!.examples].sort()).toEqual(['38', '39', '40']);
    expect(pgRows).toMatchObject({ ok: false, violations: 2, examples: ['29', '30'], every: { values: 30 }, in: { values: 28 } });
    expect(cached!.detail).toMatch(/^5 of the 45 values of hot not found among the 40 of warm, e.g. "4\d"/);

    // Each member's own checks: the restored SQLite file, the started cluster (recovered, its source check), the loaded dump, the directory.
    expect(own.get('warm')).toEqual([{ name: 'quick_check', ok: true, detail: 'ok' }]);
    expect(own.get('pg')!.map((c) => [c.name, c.ok])).toEqual([['start', true], ['select 1', true], ['databases', true], ['query SELECT count(*) = 4 FROM pg_database', true]]);
    expect(own.get('hot')![0]).toMatchObject({ name: 'load', ok: true, detail: 'loaded 29 keys in db0' });
    expect(own.get('cold')).toEqual([{ name: 'files', ok: true, detail: '39 files restored' }]);
    // Every scratch server is gone: no scratch Redis directory is left beside the restored one.
    expect(readdirSync(dir).filter((n) => n.startsWith('lifeboat-redis-'))).toEqual([]);
    expect(existsSync(path.join(cluster.data, 'postmaster.pid'))).toBe(false);
  }, 180_000);

  it('passes a check whose values are all there, and fails (not throws) a check whose query fails', async () => {
    const config = parseConfig(
      yaml().replace('SELECT id FROM memories WHERE id <= 30', 'SELECT id FROM memories WHERE id <= 28').replace('"SELECT id FROM memories" }', '"SELECT id FROM no_such_table" }'),
      path.join(dir, 'lifeboat.yaml'),
    );
    const group = config.groups.get('tiers')!;
    const members = ['hot', 'warm', 'pg'].map((n) => ({ source: config.sources.get(n)!, target: n === 'hot' ? path.join(dir, 'hot') : n === 'warm' ? path.join(dir, 'warm.db') : cluster.data }));
    const results = await withRestoredMembers(members, (opened) => runCrossChecks(group.checks!, opened.readers));
    expect(results[0]).toMatchObject({ ok: false, violations: null, detail: expect.stringMatching(/^a query failed: no such table: no_such_table/) });
    expect(results[1]).toMatchObject({ ok: false, violations: null, detail: expect.stringMatching(/member "cold" was not restored/) });
    expect(results[2]).toMatchObject({ ok: true, violations: 0, detail: 'all 28 values of pg found among the 28 of hot' });
  }, 180_000);

  it('refuses checks that do not fit, at their line', () => {
    const bad = (from: string, to: string, message: RegExp, marker = to) => {
      const text = yaml().replace(from, to);
      const line = text.split('\n').findLastIndex((l) => l.includes(marker)) + 1;
      expect(() => parseConfig(text, '/x/lifeboat.yaml')).toThrow(new RegExp(`^/x/lifeboat\\.yaml:${line}: ${message.source}`));
    };
    bad('redis: [SMEMBERS, active]', 'redis: [DEL, active]', /check "cached ids are rows": Redis command DEL is not one a check reads with/);
    bad('in: { member: warm, sql', 'in: { member: nope, sql', /check "cached ids are rows" of group "tiers" reads "nope", which is not a member of the group/);
    bad('in: { member: warm, sql: "SELECT id FROM memories" }', 'in: { member: warm, files: blobs }', /check "cached ids are rows": "in" needs exactly one query, "sql", for sqlite member "warm" \(it has "files"\)/);
    bad("match: '^(\\d+)\\.bin$'", "match: '(a)(b)'", /check "rows have blobs": "match" has 2 groups/);
    bad('files: blobs,', 'files: ../etc,', /check "rows have blobs": "files" must be a directory relative to the restored data, without "\.\."/);
    bad('- name: rows have blobs', '- name: cached ids are rows', /group "tiers" has two checks named "cached ids are rows"/);
    bad('      - name: pg rows are cached', '      - name: pg rows are cached\n        also: 1', /unknown key "also" in a check of group "tiers"/, 'also: 1');
  });
});
