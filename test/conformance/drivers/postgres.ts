/**
 * The postgres kind for the conformance suite: a scratch PostgreSQL 15 cluster on a
 * free port (test/pg-cluster.ts) whose archive_command pushes its WAL into the
 * repository with `lifeboat pg archive-push`, as production configures it. Jobs run
 * as the postgres user, as the daemon does in production (docs/daemon.md), so the
 * restored servers' restore_command can read the repository. The fingerprint is what
 * a DBA would compare: each table's row count and a hash of its rows, through SQL.
 *
 * The log (the WAL archive) runs with the server, so starting and stopping it does
 * nothing. A moment is proven restorable by a later commit whose segment the archiver
 * reports archived: recovery to a time stops at the first commit after it, so without
 * one PostgreSQL refuses to finish ("recovery ended before the target was reached").
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { archivedCluster, lifeboatAsPostgres, PG_BIN, restoredPort, writeAsPostgres, type ScratchCluster } from '../../pg-cluster.js';
import { nextMoment, until, type Fingerprint, type KindDriver, type Subject } from '../driver.js';

/** Commits that prove a moment archived: not part of the data the suite compares. */
const HEARTBEAT = 'conformance_heartbeat';

type Queryable = Pick<ScratchCluster, 'query'>;

/** Each table's row count and a hash of its rows (in a stable order). */
async function fingerprintOf(db: Queryable): Promise<Fingerprint> {
  const tables = await db.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> $1 ORDER BY 1", [HEARTBEAT]);
  const out: Record<string, { rows: number; hash: string }> = {};
  for (const { name } of tables) {
    const [row] = await db.query<{ rows: number; hash: string }>(`SELECT count(*)::int AS rows, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS hash FROM "${name}" t`);
    out[name] = row as { rows: number; hash: string };
  }
  return out;
}

export const postgresDriver: KindDriver = {
  kind: 'postgres',
  hasLog: true,
  hasPositions: true,
  async setup(): Promise<Subject> {
    const { base, repo, pw, cluster } = await archivedCluster('lb-conform-pg-');
    const config = path.join(base, 'lifeboat.yaml');
    await writeAsPostgres(
      config,
      ['repositories:', '  main:', `    stores: [${repo}]`, `    password_file: ${pw}`, 'sources:', '  main:', '    kind: postgres', `    dsn: ${cluster.dsn}`, `    bin_dir: ${PG_BIN}`, ''].join('\n'),
    );
    await cluster.query(`CREATE TABLE ${HEARTBEAT} (at timestamptz NOT NULL)`);
    await cluster.query('CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL)');
    await cluster.query("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 500) g");
    return {
      config,
      source: 'main',
      cli: (args, env = {}) => lifeboatAsPostgres(args, env),
      target: (label) => path.join(base, `restored-${label}`),
      async change(step) {
        await cluster.query(`INSERT INTO items SELECT ${step * 1000} + g, 'added in step ${step}' FROM generate_series(1, 50) g`);
        await cluster.query(`UPDATE items SET body = body || ' rewritten in step ${step}' WHERE id % 7 = ${step}`);
        await cluster.query(`DELETE FROM items WHERE id % 11 = ${step}`);
        // A table per step: a restore must bring back schema changes too.
        await cluster.query(`CREATE TABLE step_${step} AS SELECT g AS n FROM generate_series(1, ${step * 10}) g`);
      },
      fingerprint: () => fingerprintOf(cluster),
      async restored(target) {
        const copy = cluster.copy(target, await restoredPort(target));
        await copy.start();
        try {
          await copy.waitPromoted();
          return await fingerprintOf(copy);
        } finally {
          await copy.stop();
        }
      },
      async moment() {
        const t = await nextMoment();
        await cluster.query(`INSERT INTO ${HEARTBEAT} VALUES (clock_timestamp())`);
        const [seg] = await cluster.query<{ name: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS name');
        await cluster.query('SELECT pg_switch_wal()');
        let archiver: { last: string | null; failed: string | null } | undefined;
        // On timeout the message names the last segment the archiver failed on, if any.
        await until(() => `segment ${seg?.name} archived (archiver: ${JSON.stringify(archiver)})`, async () => {
          [archiver] = await cluster.query<{ last: string | null; failed: string | null }>('SELECT last_archived_wal AS last, last_failed_wal AS failed FROM pg_stat_archiver');
          return archiver?.last != null && archiver.last >= (seg?.name ?? '');
        }, 60_000, 50);
        return t;
      },
      restoresSnapshotIds: false,
      log: {
        async start() {},
        async stop() {},
        position: {
          now: async () => ((await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))[0] as { lsn: string }).lsn,
          args: (lsn) => ['--lsn', lsn],
        },
      },
      async close() {
        await cluster.destroy();
        await fs.rm(base, { recursive: true, force: true });
      },
    };
  },
};
