/**
 * Logical dumps (`pg dump` / `pg restore-dump`) against a real PostgreSQL 15 scratch
 * cluster, through the built CLI: what is restored matches what was dumped row for
 * row, table selection restores only that table, an unchanged second dump costs
 * little, and every failure leaves no snapshot behind and exits with its code.
 */
import { cpSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTmp, expectError, runCli, tmpdir } from '../helpers.js';
import { ScratchCluster } from '../pg-cluster.js';

let cluster: ScratchCluster;
let env: Record<string, string>;
let firstDump: Snapshot;

interface Snapshot {
  id: string;
  tags: string[];
  paths: string[];
  source: { kind: string; name?: string };
  consistency: Record<string, unknown>;
  total_size: number;
  added_size: number;
}

const TABLES = ['customers', 'orders', 'events'];
const lb = (args: string[]) => runCli(args, env);

/** The cluster's DSN pointing at another database. */
const dsnOf = (db: string) => cluster.dsn.replace(/\/postgres$/, `/${db}`);

async function queryIn<T extends Record<string, unknown>>(db: string, sql: string): Promise<T[]> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: dsnOf(db) });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Row count and a checksum over every row, in key order, for each table. */
async function contents(db: string): Promise<Record<string, { n: number; sum: string }>> {
  const out: Record<string, { n: number; sum: string }> = {};
  for (const t of TABLES) {
    const [r] = await queryIn<{ n: number; sum: string }>(
      db,
      `select count(*)::int as n, md5(coalesce(string_agg(t::text, ',' order by id), '')) as sum from ${t} t`,
    );
    out[t] = r!;
  }
  return out;
}

async function snapshots(): Promise<Snapshot[]> {
  const r = await lb(['snapshots', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Snapshot[];
}

let dumped: Record<string, { n: number; sum: string }>;

beforeAll(async () => {
  env = { LIFEBOAT_REPOSITORY: path.join(tmpdir('lb-pgdump-'), 'repo') };
  const init = await lb(['init']);
  expect(init.code, init.stderr).toBe(0);
  cluster = await ScratchCluster.create();
  await cluster.start();
  await cluster.query('create database app');
  for (const sql of [
    'create table customers (id int primary key, name text not null)',
    'create table orders (id int primary key, customer_id int not null references customers(id), amount numeric(10,2), placed timestamptz)',
    // Wide rows (~600 bytes) make the dump ~30 MiB, many chunks: enough to see what dedup saves.
    'create table events (id bigint primary key, kind text, payload text)',
    "insert into customers select g, 'customer ' || g from generate_series(1, 1000) g",
    "insert into orders select g, 1 + g % 1000, (g % 997) * 1.25, timestamptz '2024-01-01' + g * interval '1 minute' from generate_series(1, 5000) g",
    "insert into events select g, 'k' || (g % 7), (select string_agg(md5(g::text || ':' || i), '') from generate_series(1, 18) i) from generate_series(1, 50000) g",
  ]) {
    await queryIn('app', sql);
  }
  dumped = await contents('app');
  const r = await lb(['pg', 'dump', '--name', 'app', '--dsn', cluster.dsn, '--db', 'app', '--json']);
  expect(r.code, r.stderr).toBe(0);
  firstDump = JSON.parse(r.stdout) as Snapshot;
}, 120_000);

afterAll(async () => {
  await cluster?.destroy();
  cleanupTmp();
});

describe('pg dump and restore-dump', () => {
  it('records the dump as one file of a postgres-dump snapshot', () => {
    expect(firstDump.source).toEqual({ kind: 'postgres-dump', name: 'app' });
    expect(firstDump.tags).toContain('pgdump:app');
    expect(firstDump.paths).toEqual(['/postgres-dump/app/app.dump']);
    expect(firstDump.consistency).toMatchObject({ db: 'app', pgMajor: 15, format: 'custom' });
    expect(Number(firstDump.consistency.pgVersion)).toBeGreaterThanOrEqual(150000);
    expect(Date.parse(String(firstDump.consistency.dumpedAt))).toBeGreaterThan(Date.now() - 600_000);
    expect(firstDump.total_size).toBeGreaterThan(25 * 1024 * 1024);
  });

  it('a second dump of the unchanged database adds little to the repository', async () => {
    const r = await lb(['pg', 'dump', '--name', 'app', '--dsn', dsnOf('app'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const second = JSON.parse(r.stdout) as Snapshot;
    expect(second.id).not.toBe(firstDump.id);
    expect(second.total_size).toBe(firstDump.total_size);
    // What changes is pg_dump's header (its timestamp): the chunk holding it, a tree, a snapshot.
    expect(second.added_size, `first added ${firstDump.added_size}, second ${second.added_size}`).toBeLessThan(firstDump.added_size * 0.1);
  });

  it('restores every row into a fresh database, and with --clean over a modified one', async () => {
    await queryIn('app', 'delete from orders where id % 3 = 0');
    await queryIn('app', "update events set payload = 'changed' where id < 100");
    await queryIn('app', 'drop table customers cascade');
    await cluster.query('create database fresh');
    const r = await lb(['pg', 'restore-dump', '--name', 'app', '--dsn', cluster.dsn, '--db', 'fresh', '--snapshot', firstDump.id.slice(0, 8)]);
    expect(r.code, r.stderr).toBe(0);
    expect(await contents('fresh')).toEqual(dumped);
    const fk = await queryIn<{ n: number }>('fresh', "select count(*)::int as n from pg_constraint where contype = 'f' and conrelid = 'orders'::regclass");
    expect(fk[0]!.n).toBe(1);

    const c = await lb(['pg', 'restore-dump', '--name', 'app', '--dsn', dsnOf('app'), '--clean']);
    expect(c.code, c.stderr).toBe(0);
    expect(await contents('app')).toEqual(dumped);
  });

  it('restores only the tables named with --table', async () => {
    await cluster.query('create database only_events');
    const r = await lb(['pg', 'restore-dump', '--name', 'app', '--dsn', cluster.dsn, '--db', 'only_events', '--table', 'events']);
    expect(r.code, r.stderr).toBe(0);
    const [row] = await queryIn<{ c: string | null; o: string | null; n: number; sum: string }>(
      'only_events',
      `select to_regclass('customers')::text as c, to_regclass('orders')::text as o, count(*)::int as n,
              md5(coalesce(string_agg(t::text, ',' order by id), '')) as sum from events t`,
    );
    expect(row).toEqual({ c: null, o: null, ...dumped.events });
  });

  it('into a database that already has the tables fails cleanly without --clean and changes nothing', async () => {
    await queryIn('only_events', 'delete from events where id > 10');
    const r = await lb(['pg', 'restore-dump', '--name', 'app', '--dsn', dsnOf('only_events')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^lifeboat: pg_restore into database "only_events" failed: .*already exists/);
    expect(r.stderr).toMatch(/hint: .*--clean/);
    const [row] = await queryIn<{ c: string | null; n: number }>('only_events', "select to_regclass('customers')::text as c, count(*)::int as n from events");
    expect(row).toEqual({ c: null, n: 10 });
  });

  it('fails with its own exit code, and saves no snapshot, when the source is wrong', async () => {
    const before = (await snapshots()).length;

    const down = await lb(['pg', 'dump', '--name', 'app', '--dsn', 'postgresql://postgres@127.0.0.1:1/postgres']);
    expect(down.code).toBe(19);
    expect(down.stderr).toMatch(/^lifeboat: cannot reach PostgreSQL at postgresql:\/\/postgres@127\.0\.0\.1:1\/postgres: .*ECONNREFUSED/);

    const missing = await lb(['pg', 'dump', '--name', 'app', '--dsn', cluster.dsn, '--db', 'no_such_db']);
    expect(missing.code).toBe(15);
    expect(missing.stderr).toMatch(/^lifeboat: database "no_such_db" does not exist/);

    // pg_dump itself fails (the role may log in but not read the tables): its error, one line.
    await queryIn('app', 'create role weak login');
    const weak = await lb(['pg', 'dump', '--name', 'app', '--dsn', dsnOf('app').replace('postgres@', 'weak@')]);
    expect(weak.code).toBe(1);
    expect(weak.stderr).toMatch(/^lifeboat: pg_dump of database "app" failed: query failed: ERROR: +permission denied for table \w+\n/);

    const badName = await lb(['pg', 'dump', '--name', '../x', '--dsn', dsnOf('app')]);
    expect(badName.code).toBe(2);

    expect((await snapshots()).length).toBe(before);

    const none = await lb(['pg', 'restore-dump', '--name', 'ghost', '--dsn', dsnOf('fresh')]);
    expect(none.code).toBe(15);
    expect(none.stderr).toMatch(/^lifeboat: no dump of PostgreSQL source "ghost"/);

    const typo = await lb(['pg', 'restore-dump', '--name', 'app', '--dsn', dsnOf('fresh'), '--table', 'evnts']);
    expect(typo.code).toBe(15);
    expect(typo.stderr).toMatch(/^lifeboat: pg_restore into database "fresh" failed: table "evnts" not found\n/);
  });

  it('stops at a damaged blob with CORRUPT and leaves the target database untouched', async () => {
    const copy = path.join(tmpdir('lb-pgdump-bad-'), 'repo');
    cpSync(env.LIFEBOAT_REPOSITORY!, copy, { recursive: true });
    const packs: Array<{ file: string; size: number }> = [];
    for (const dir of await fs.readdir(path.join(copy, 'data'))) {
      for (const f of await fs.readdir(path.join(copy, 'data', dir))) {
        const file = path.join(copy, 'data', dir, f);
        packs.push({ file, size: (await fs.stat(file)).size });
      }
    }
    // The largest pack holds the dump's data; a byte in its middle belongs to some chunk.
    const { file, size } = packs.sort((a, b) => b.size - a.size)[0]!;
    const fh = await fs.open(file, 'r+');
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, Math.floor(size / 2));
    byte[0] = byte[0]! ^ 0xff;
    await fh.write(byte, 0, 1, Math.floor(size / 2));
    await fh.close();

    await cluster.query('create database damaged');
    const r = await runCli(['pg', 'restore-dump', '--name', 'app', '--dsn', dsnOf('damaged')], { LIFEBOAT_REPOSITORY: copy });
    expect(r.code, r.stderr).toBe(13);
    expect(r.stderr).toMatch(/^lifeboat: blob [0-9a-f]+ in data\/.* (failed authentication|does not match)/);
    const [row] = await queryIn<{ n: number }>('damaged', "select count(*)::int as n from pg_class where relnamespace = 'public'::regnamespace");
    expect(row!.n).toBe(0);
  });

  it('a server that goes down while pg_dump streams: the dump fails with the reason, no snapshot, the repository checks clean', async () => {
    const before = (await snapshots()).length;
    const run = lb(['pg', 'dump', '--name', 'app', '--dsn', cluster.dsn, '--db', 'app']);
    let settled = false;
    void run.finally(() => (settled = true));
    // pg_dump has written its header and the first tables, and is copying the largest:
    // its server process is stopped there, then killed, and PostgreSQL restarts without
    // it (every session ends). Stopping it first means the copy cannot finish in between.
    let backend: number | undefined;
    while (backend === undefined && !settled) {
      const rows = await queryIn<{ pid: number }>('postgres', "select pid from pg_stat_activity where application_name = 'pg_dump' and query like 'COPY public.events %'");
      backend = rows[0]?.pid;
    }
    expect(backend, 'the dump ended before it was seen copying').toBeDefined();
    process.kill(backend!, 'SIGSTOP');
    process.kill(backend!, 'SIGKILL');
    const r = await run;
    expectError(r, 19, /^lifeboat: pg_dump of database "app" failed: .* \(.*server closed the connection unexpectedly.*\)$/);
    expect(r.stderr).toMatch(/hint: the server went down or ended the session \(its log says why\); nothing was saved/);
    // The server is back (crash recovery), and nothing of the broken dump is a snapshot.
    await cluster.waitPromoted();
    expect((await snapshots()).length).toBe(before);
    const check = await lb(['check']);
    expect(check.code, check.stderr).toBe(0);
  }, 120_000);
});
