/**
 * Scratch PostgreSQL 15 clusters and the lifeboat CLI for the PostgreSQL torture
 * scenarios (bench/torture/pg-*.ts), without the test runner: a postgres-owned
 * directory under /tmp, a cluster on a free port that archives into a repository
 * there, and the built CLI run as the postgres user (the way archive_command and
 * restore_command run it). Build first: npx tsc -p tsconfig.json.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, promises as fs } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'bin', 'lifeboat.js');
export const PG_BIN = '/usr/lib/postgresql/15/bin';
const isRoot = process.getuid?.() === 0;

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program as the postgres user when we are root (PostgreSQL refuses root), else as ourselves. */
export function asPostgres(cmd: string, args: string[]): Promise<Ran> {
  const [c, a] = isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A 0700 directory under /tmp that the postgres user owns. */
export async function postgresDir(prefix: string): Promise<string> {
  const d = mkdtempSync(path.join('/tmp', prefix));
  if (isRoot) {
    const { uid, gid } = await postgresIds();
    chownSync(d, uid, gid);
  }
  chmodSync(d, 0o700);
  return d;
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => Number((await asPostgres('id', [flag])).stdout.trim());
  return { uid: await id('-u'), gid: await id('-g') };
}

/** Writes a 0600 file the postgres user owns (a password file archive_command can read). */
export async function writeAsPostgres(file: string, text: string): Promise<void> {
  await fs.writeFile(file, text, { mode: 0o600 });
  if (isRoot) {
    const { uid, gid } = await postgresIds();
    chownSync(file, uid, gid);
  }
}

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
