/**
 * Scratch PostgreSQL 15 clusters and the lifeboat CLI for the PostgreSQL torture
 * scenarios (bench/torture/pg-*.ts), without the test runner: a cluster on a free port
 * that archives into a repository, and the built CLI run as the postgres user (the way
 * archive_command and restore_command run it). The low-level helpers are the tests'
 * (test/pg-cluster.ts). Build first: npx tsc -p tsconfig.json.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { CLI } from '../../test/helpers.js';
import { asPostgres, freePort, PG_BIN } from '../../test/pg-cluster.js';

export { CLI } from '../../test/helpers.js';
export { asPostgres, freePort, PG_BIN, postgresDir, writeAsPostgres } from '../../test/pg-cluster.js';

export type Ran = Awaited<ReturnType<typeof asPostgres>>;

/** The lifeboat CLI over one repository, as the postgres user. */
export class Lifeboat {
  constructor(
    readonly repo: string,
    readonly passwordFile: string,
  ) {}

  run(args: string[]): Promise<Ran> {
    return asPostgres(process.execPath, [CLI, ...args, '--repo', this.repo, '--password-file', this.passwordFile]);
  }

  /** Runs and parses --json output; throws with stderr on a non-zero exit. */
  async json<T>(args: string[]): Promise<{ value: T; stderr: string }> {
    const r = await this.run([...args, '--json']);
    if (r.code !== 0) throw new Error(`lifeboat ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return { value: JSON.parse(r.stdout) as T, stderr: r.stderr };
  }

  archiveCommand(name: string): string {
    return `"${process.execPath}" "${CLI}" pg archive-push --name ${name} --repo "${this.repo}" --password-file "${this.passwordFile}" %p`;
  }
}

/** A PostgreSQL 15 cluster in DATA, listening on PORT, its socket and log in DIR. */
export class Cluster {
  constructor(
    readonly dir: string,
    readonly data: string,
    readonly port: number,
  ) {}

  static async create(dir: string, archiveCommand: string, extraConf: string[] = []): Promise<Cluster> {
    const data = path.join(dir, 'data');
    const init = await asPostgres(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    if (init.code !== 0) throw new Error(`initdb failed: ${init.stderr}`);
    const c = new Cluster(dir, data, await freePort());
    const conf = [
      `port = ${c.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${dir}'`,
      'wal_level = replica',
      'max_wal_senders = 5',
      'fsync = off',
      'archive_mode = on',
      `archive_command = '${archiveCommand.replace(/'/g, "''")}'`,
      ...extraConf,
    ];
    await fs.appendFile(path.join(data, 'postgresql.conf'), `\n${conf.join('\n')}\n`);
    return c;
  }

  /** A restored copy beside this cluster (same socket directory, its own port). */
  copy(data: string, port: number): Cluster {
    return new Cluster(this.dir, data, port);
  }

  get log(): string {
    return path.join(this.dir, `log-${path.basename(this.data)}.txt`);
  }

  async start(): Promise<void> {
    const r = await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', this.data, '-l', this.log, '-w', '-t', '300', 'start']);
    if (r.code !== 0) throw new Error(`pg_ctl start ${this.data} failed: ${r.stderr.trim()} ${(await this.logTail()).replace(/\s+/g, ' ')}`);
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', this.data, '-m', mode, '-w', '-t', '300', 'stop']);
  }

  async logTail(lines = 5): Promise<string> {
    return (await fs.readFile(this.log, 'utf8').catch(() => '')).trim().split('\n').slice(-lines).join('\n');
  }

  get dsn(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  async client(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: this.dsn });
    c.on('error', () => {});
    await c.connect();
    return c;
  }

  async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    const c = await this.client();
    try {
      return (await c.query<T>(sql, params)).rows;
    } finally {
      await c.end().catch(() => {});
    }
  }

  /** Waits until recovery has ended and the server takes writes; fails at once when the server has stopped. */
  async waitPromoted(timeoutMs = 300_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const rec = await this.query<{ rec: boolean }>('select pg_is_in_recovery() as rec').then((r) => r[0]?.rec, () => undefined);
      if (rec === false) return;
      const running = await fs.access(path.join(this.data, 'postmaster.pid')).then(() => true, () => false);
      if (!running || Date.now() > until) throw new Error(`${this.data} did not finish recovery: ${await this.logTail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Closes the current WAL segment and waits until the archiver has stored it. */
  async switchAndArchive(timeoutMs = 120_000): Promise<void> {
    const [r] = await this.query<{ name: string }>('select pg_walfile_name(pg_switch_wal()) as name');
    const until = Date.now() + timeoutMs;
    for (;;) {
      const [a] = await this.query<{ last: string | null; failed: number }>('select last_archived_wal as last, failed_count as failed from pg_stat_archiver');
      if (a?.last && a.last.slice(8) >= r!.name.slice(8)) return;
      if (Date.now() > until) throw new Error(`WAL ${r!.name} was not archived (failed ${a?.failed}): ${await this.logTail()}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}
