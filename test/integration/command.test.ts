/**
 * Dump commands as sources (`kind: command`), through the built CLI against real
 * servers: the `mariadb` preset against the machine's MariaDB (dump, dump unchanged,
 * change, dump; the first dump restored into a new database matches the table
 * checksums taken then), the generic form with pg_dumpall (a scratch PostgreSQL,
 * restored into a second one) and with `redis-cli --rdb -` (a scratch redis-server);
 * a dump that exits non-zero, is killed by a signal or is interrupted leaves no
 * snapshot and says why in one line; and bad input is refused before anything runs.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, openSync, readdirSync, readFileSync, statSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/util/tied-child.js';
import { until } from '../conformance/driver.js';
import { CLI, cleanupTmp, initRepo, runCli, tmpdir, type CliResult } from '../helpers.js';
import { RedisServer, datasetOf, datasetOfRdb } from '../helpers/redis-server.js';
import { ScratchCluster } from '../pg-cluster.js';

const run = promisify(execFile);
const MARIADB = ['--host=127.0.0.1', '--port=3306', '--user=root'];

interface SnapshotJson {
  id: string;
  time: string;
  total_size: number;
  added_size: number;
  source: { kind: string; name: string };
  point: { argv: string[]; envNames: string[]; exitCode: number; stderrTail: string; bytes: number; durationMs: number; sha256: string; preset?: string };
}

async function sql(query: string, db?: string): Promise<string> {
  const { stdout } = await run('mariadb', [...MARIADB, '-N', '-B', ...(db ? [db] : []), '-e', query], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

/** CHECKSUM TABLE of each table, by table name (without the database, so two databases compare). */
async function checksums(db: string, tables: string[]): Promise<Record<string, string>> {
  const out = await sql(`CHECKSUM TABLE ${tables.map((t) => `\`${db}\`.\`${t}\``).join(', ')}`);
  return Object.fromEntries(out.split('\n').map((l) => l.split('\t')).map(([name, sum]) => [String(name).split('.').pop(), String(sum)]));
}

function explain(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout.slice(-1500)}\nstderr: ${r.stderr.slice(-1500)}`;
}

/** A repository and a lifeboat.yaml with these sources, and the CLI bound to them. */
function setup(sources: string[]): { dir: string; repo: string; config: string; lb: (args: string[]) => Promise<CliResult> } {
  const dir = tmpdir('lb-command-');
  const repo = path.join(dir, 'repo');
  const config = path.join(dir, 'lifeboat.yaml');
  writeFileSync(config, ['repositories:', '  main:', `    stores: [${repo}]`, ...(sources.length ? ['sources:', ...sources] : []), ''].join('\n'));
  return { dir, repo, config, lb: (args) => runCli(['--config', config, '--repo', 'main', ...args]) };
}

async function backup(lb: (args: string[]) => Promise<CliResult>, args: string[]): Promise<SnapshotJson> {
  const r = await lb(['--json', 'command', 'backup', ...args]);
  expect(r.code, explain(r)).toBe(0);
  return JSON.parse(r.stdout) as SnapshotJson;
}

async function snapshotCount(lb: (args: string[]) => Promise<CliResult>): Promise<number> {
  const r = await lb(['--json', 'snapshots']);
  expect(r.code, explain(r)).toBe(0);
  return (JSON.parse(r.stdout) as unknown[]).length;
}

afterAll(() => cleanupTmp());

describe('command source: the mariadb preset against the running MariaDB', () => {
  const db = `lb_cmd_${process.pid}_${Date.now() % 100000}`;
  const copy = `${db}_restored`;
  const TABLES = ['items', 'orders'];
  let s: ReturnType<typeof setup>;

  beforeAll(async () => {
    await sql(`DROP DATABASE IF EXISTS \`${db}\`; CREATE DATABASE \`${db}\``);
    // About 6 MiB of dump: 20 000 items of ~260 bytes, 20 000 orders referring to them.
    await sql(
      [
        'CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, payload TEXT NOT NULL) ENGINE=InnoDB',
        'CREATE TABLE orders (id INT PRIMARY KEY, item_id INT NOT NULL, qty INT NOT NULL, note VARCHAR(100), FOREIGN KEY (item_id) REFERENCES items(id)) ENGINE=InnoDB',
        "INSERT INTO items SELECT seq, CONCAT('item-', seq), REPEAT(SHA2(seq, 256), 4) FROM seq_1_to_20000",
        "INSERT INTO orders SELECT seq, 1 + (seq * 7919) % 20000, seq % 13, CONCAT('order ', seq) FROM seq_1_to_20000",
        'CREATE VIEW big_orders AS SELECT * FROM orders WHERE qty > 10',
      ].join('; '),
      db,
    );
    s = setup(['  shop:', '    kind: command', '    preset: mariadb', `    database: ${db}`, `    dump: [${MARIADB.join(', ')}]`, `    load: [${MARIADB.join(', ')}]`]);
    await initRepo(s.repo);
  });

  afterAll(async () => {
    await sql(`DROP DATABASE IF EXISTS \`${db}\`; DROP DATABASE IF EXISTS \`${copy}\``).catch(() => {});
  });

  it('dumps, dumps unchanged (< 1 % added), changes, dumps; the first dump restored into a new database has the checksums of then', async () => {
    const before = await checksums(db, TABLES);
    // The daemon's backup job: the dump command, its env and cwd come from lifeboat.yaml.
    const first = await backup(s.lb, ['--name', 'shop', '--tag', 'nightly']);
    expect(first.source).toEqual({ kind: 'command', name: 'shop' });
    expect(first.point.argv).toEqual(['mariadb-dump', '--single-transaction', '--routines', '--events', '--skip-dump-date', ...MARIADB, db]);
    expect(first.point.preset).toBe('mariadb');
    expect(first.point.exitCode).toBe(0);
    expect(first.point.bytes).toBe(first.total_size);
    expect(first.point.bytes).toBeGreaterThan(5_000_000);

    const unchanged = await backup(s.lb, ['--name', 'shop']);
    const share = unchanged.added_size / unchanged.total_size;
    console.log(`mariadb dump of ${unchanged.total_size} bytes, unchanged: added ${unchanged.added_size} bytes (${(share * 100).toFixed(3)} %); first dump added ${first.added_size}`);
    expect(unchanged.point.sha256).toBe(first.point.sha256);
    expect(share).toBeLessThan(0.01);

    await sql("UPDATE items SET payload = REPEAT('changed', 30) WHERE id BETWEEN 100 AND 120; DELETE FROM orders WHERE id > 19900; INSERT INTO items VALUES (20001, 'new', 'new row')", db);
    const after = await checksums(db, TABLES);
    expect(after).not.toEqual(before);
    const changed = await backup(s.lb, ['--name', 'shop']);
    console.log(`mariadb dump after changing ~140 rows: ${changed.total_size} bytes, added ${changed.added_size} bytes`);
    expect(changed.point.sha256).not.toBe(first.point.sha256);

    // The first dump into a NEW database, by its id, through a load command given after --.
    await sql(`CREATE DATABASE \`${copy}\``);
    const r = await s.lb(['--json', 'command', 'restore', 'shop', '--snapshot', first.id.slice(0, 12), '--', 'mariadb', ...MARIADB, copy]);
    expect(r.code, explain(r)).toBe(0);
    expect((JSON.parse(r.stdout) as { snapshot: string }).snapshot).toBe(first.id);
    expect(await checksums(copy, TABLES)).toEqual(before);
    expect(await sql('SELECT COUNT(*) FROM big_orders', copy)).toBe(await sql('SELECT COUNT(*) FROM orders WHERE qty > 10', copy));
    // The live database was not touched.
    expect(await checksums(db, TABLES)).toEqual(after);

    // --load: the configured load command (the preset's, into the source's database) brings it back by time.
    const back = await s.lb(['--json', 'command', 'restore', 'shop', '--time', unchanged.time, '--load']);
    expect(back.code, explain(back)).toBe(0);
    expect((JSON.parse(back.stdout) as { snapshot: string }).snapshot).toBe(unchanged.id);
    expect(await checksums(db, TABLES)).toEqual(before);
  }, 180_000);

  it('a load command that fails is a clear error naming it, its status and its last line', async () => {
    const r = await s.lb(['command', 'restore', 'shop', '--', 'mariadb', ...MARIADB, `${db}_no_such_database`]);
    expect(r.code, explain(r)).toBe(1);
    expect(r.stderr).toMatch(/the load command mariadb .* exited with status 1: .*Unknown database/);
  });

  it('a dump the server refuses leaves no snapshot: exit 19 naming the command, its status and its last stderr line', async () => {
    const count = await snapshotCount(s.lb);
    const r = await s.lb(['command', 'backup', '--name', 'shop', '--preset', 'mariadb', '--database', 'lb_cmd_missing_db', '--', ...MARIADB]);
    expect(r.code, explain(r)).toBe(19);
    expect(r.stderr.split('\n')[0]).toMatch(/^lifeboat: the dump command mariadb-dump .* exited with status 2: .*Unknown database 'lb_cmd_missing_db'/);
    expect(await snapshotCount(s.lb)).toBe(count);
  });
});

describe('command source: the generic form', () => {
  it('pg_dumpall of a scratch PostgreSQL, restored through psql into a second one', async () => {
    const [a, b] = await Promise.all([ScratchCluster.create(), ScratchCluster.create()]);
    try {
      await Promise.all([a.start(), b.start()]);
      await a.query('CREATE DATABASE shop');
      const inShop = async (c: ScratchCluster, q: string) => {
        const { default: pg } = await import('pg');
        const client = new pg.Client({ connectionString: c.dsn.replace(/\/postgres$/, '/shop') });
        await client.connect();
        try {
          return (await client.query(q)).rows as Array<Record<string, unknown>>;
        } finally {
          await client.end();
        }
      };
      await inShop(a, "CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 60000) g; CREATE ROLE reporter LOGIN");
      const digest = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS h FROM t";
      const want = await inShop(a, digest);
      const s = setup([]);
      await initRepo(s.repo);
      // PostgreSQL 15.14+ opens each database's section with a random \restrict key, which
      // would change a chunk per database on every run; a fixed (secret) key keeps an
      // unchanged dump identical (docs/command.md).
      const dumpall = ['pg_dumpall', '--host=127.0.0.1', `--port=${a.port}`, '--username=postgres', '--restrict-key=lifeboatTestKey0123456789'];
      const snap = await backup(s.lb, ['--name', 'all', '--', ...dumpall]);
      expect(snap.point.argv[0]).toBe('pg_dumpall');
      expect(snap.point.bytes).toBeGreaterThan(2_000_000);
      const again = await backup(s.lb, ['--name', 'all', '--', ...dumpall]);
      console.log(`pg_dumpall of ${again.total_size} bytes, unchanged: added ${again.added_size} bytes (${((100 * again.added_size) / again.total_size).toFixed(3)} %)`);
      expect(again.point.sha256).toBe(snap.point.sha256);
      expect(again.added_size / again.total_size).toBeLessThan(0.01);
      const r = await s.lb(['command', 'restore', 'all', '--', 'psql', '--quiet', '--no-psqlrc', '--host=127.0.0.1', `--port=${b.port}`, '--username=postgres', '--dbname=postgres', '--set=ON_ERROR_STOP=0']);
      expect(r.code, explain(r)).toBe(0);
      expect(await inShop(b, digest)).toEqual(want);
      expect(await b.query("SELECT rolname FROM pg_roles WHERE rolname = 'reporter'")).toHaveLength(1);
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
    }
  }, 180_000);

  it('redis-cli --rdb - of a scratch redis-server, written to a new file that loads into another server', async () => {
    const server = await RedisServer.start({ conf: ['repl-diskless-sync-delay 0'] });
    try {
      for (let i = 0; i < 500; i++) await server.command(['SET', `k:${i}`, `value ${i} `.repeat(20)]);
      await server.command(['HSET', 'h', 'a', '1', 'b', '2']);
      await server.command(['ZADD', 'z', '1', 'one', '2', 'two']);
      const want = await datasetOf(server);
      const s = setup([]);
      await initRepo(s.repo);
      const snap = await backup(s.lb, ['--name', 'cache', '--', 'redis-cli', '-h', '127.0.0.1', '-p', String(server.port), '--rdb', '-']);
      expect(snap.point.stderrTail).toMatch(/Transfer finished with success/);
      await server.command(['FLUSHALL']);
      const out = path.join(s.dir, 'restored.rdb');
      const r = await s.lb(['command', 'restore', 'cache', '--latest', '--output', out]);
      expect(r.code, explain(r)).toBe(0);
      expect(await datasetOfRdb(out)).toEqual(want);
      // --output never replaces a file.
      const again = await s.lb(['command', 'restore', 'cache', '--output', out]);
      expect(again.code, explain(again)).toBe(21);
    } finally {
      await server.stop();
    }
  }, 120_000);
});

describe('command source: a dump that does not finish leaves no snapshot', () => {
  let s: ReturnType<typeof setup>;
  beforeAll(async () => {
    s = setup([]);
    await initRepo(s.repo);
    // One good snapshot, so "no snapshot" below means "no new one".
    await backup(s.lb, ['--name', 'gen', '--', 'head', '-c', '100000', '/dev/zero']);
  });

  it('exits non-zero: exit 19, one line naming the command, its status and the last line of its stderr', async () => {
    const r = await s.lb(['command', 'backup', '--name', 'gen', '--', 'sh', '-c', 'head -c 2000000 /dev/urandom; echo "first complaint" >&2; echo "dumper: error: access denied for user" >&2; exit 3']);
    expect(r.code, explain(r)).toBe(19);
    const [line, hint] = r.stderr.trim().split('\n');
    expect(line).toMatch(/^lifeboat: the dump command sh -c .* exited with status 3: dumper: error: access denied for user$/);
    expect(hint).toMatch(/no snapshot was saved/);
    expect(await snapshotCount(s.lb)).toBe(1);
  });

  it('killed by a signal mid-dump: exit 19 naming the signal', async () => {
    const pidFile = path.join(s.dir, 'dump.pid');
    // exec: the pid written is the process that holds stdout, so killing it ends the stream.
    const running = s.lb(['command', 'backup', '--name', 'gen', '--', 'sh', '-c', `echo $$ > ${pidFile}; head -c 3000000 /dev/urandom; exec sleep 60`]);
    await until(() => 'the dump to start', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'));
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    const r = await running;
    expect(r.code, explain(r)).toBe(19);
    expect(r.stderr).toMatch(/^lifeboat: the dump command sh -c .* was killed by SIGKILL/);
    expect(await snapshotCount(s.lb)).toBe(1);
  });

  it.each([
    ['stops on SIGTERM', ''],
    ['ignores SIGTERM (SIGKILL after the grace period)', 'trap "" TERM; '],
  ])('interrupted (SIGTERM to lifeboat), a dump that %s: exit 130, the dump is stopped, no snapshot', async (_what, trap) => {
    const pidFile = path.join(s.dir, `interrupted-${trap ? 'trap' : 'plain'}.pid`);
    const child = spawn(process.execPath, [CLI, '--config', s.config, '--repo', 'main', 'command', 'backup', '--name', 'gen', '--', 'sh', '-c', `${trap}echo $$ > ${pidFile}; head -c 3000000 /dev/urandom; exec sleep 60`], {
      env: { ...process.env, LIFEBOAT_PASSWORD: 'test-password' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await until(() => 'the dump to start', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'));
    const dumpPid = Number(readFileSync(pidFile, 'utf8'));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(130);
    expect(stderr).toMatch(/^lifeboat: the backup of command source gen was interrupted; the dump was stopped and no snapshot was saved/);
    expect(isAlive(dumpPid), 'the dump process was stopped').toBe(false);
    expect(await snapshotCount(s.lb)).toBe(1);
  }, 30_000);
});

describe('command source: bad input is refused before anything runs', () => {
  let s: ReturnType<typeof setup>;
  beforeAll(async () => {
    s = setup([]);
    await initRepo(s.repo);
    await backup(s.lb, ['--name', 'gen', '--', 'echo', 'hello']);
  });

  it('an unknown preset', async () => {
    const r = await s.lb(['command', 'backup', '--name', 'x', '--preset', 'oracle']);
    expect(r.code, explain(r)).toBe(2);
    expect(r.stderr).toMatch(/unknown preset "oracle"[\s\S]*presets: mariadb, neo4j, mongodb, etcd/);
  });

  it('no dump command (empty argv) and no such source in lifeboat.yaml', async () => {
    const r = await s.lb(['command', 'backup', '--name', 'x', '--']);
    expect(r.code, explain(r)).toBe(2);
    expect(r.stderr).toMatch(/no dump command given/);
  });

  it('a dump or load command that is not on the PATH', async () => {
    const d = await s.lb(['command', 'backup', '--name', 'x', '--', 'lifeboat-no-such-dumper', '--all']);
    expect(d.code, explain(d)).toBe(2);
    expect(d.stderr).toMatch(/the dump command lifeboat-no-such-dumper is not on the PATH/);
    const l = await s.lb(['command', 'restore', 'gen', '--', 'lifeboat-no-such-loader']);
    expect(l.code, explain(l)).toBe(2);
    expect(l.stderr).toMatch(/the load command lifeboat-no-such-loader is not on the PATH/);
    expect(await snapshotCount(s.lb)).toBe(1);
  });

  it('a restore with nowhere to go, or two places', async () => {
    const none = await s.lb(['command', 'restore', 'gen']);
    expect(none.code, explain(none)).toBe(2);
    expect(none.stderr).toMatch(/nothing to restore to/);
    const two = await s.lb(['command', 'restore', 'gen', '--output', path.join(s.dir, 'x'), '--', 'cat']);
    expect(two.code, explain(two)).toBe(2);
  });
});

describe('command source: a stored chunk that fails authentication during a restore', () => {
  it('kills the load command before its stdin closes: it never sees a clean end of a cut dump', async () => {
    const s = setup([]);
    await initRepo(s.repo);
    // ~20 chunks in two packs.
    await backup(s.lb, ['--name', 'big', '--', 'head', '-c', '20000000', '/dev/urandom']);
    const packs = readdirSync(path.join(s.repo, 'data'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name))
      .sort((a, b) => statSync(b).size - statSync(a).size);
    expect(packs.length).toBeGreaterThan(0);
    // One byte inside the biggest pack's data: the blob there fails its MAC when loaded.
    const fd = openSync(packs[0] as string, 'r+');
    writeSync(fd, Buffer.from([0xff ^ (readFileSync(packs[0] as string)[5_000_000] ?? 0)]), 0, 1, 5_000_000);
    closeSync(fd);
    const out = path.join(s.dir, 'loaded');
    const done = path.join(s.dir, 'load-saw-eof');
    // `cat` ends only at EOF; `touch` runs only if it does.
    const r = await s.lb(['command', 'restore', 'big', '--', 'sh', '-c', 'cat > "$0" && touch "$1"', out, done]);
    expect(r.code, explain(r)).toBe(13);
    expect(existsSync(done), 'the load command saw a clean end of input').toBe(false);
    expect(existsSync(out) ? statSync(out).size : 0).toBeLessThan(20_000_000);
  }, 60_000);
});
