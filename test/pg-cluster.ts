/**
 * Scratch PostgreSQL 15 clusters for tests: initdb in a temp directory as the
 * `postgres` user (initdb refuses root), a free port on 127.0.0.1, archive_command
 * pointed at the real lifeboat CLI, started and stopped by the test.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, promises as fs, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { CLI } from './helpers.js';

const run = promisify(execFile);
export const PG_BIN = '/usr/lib/postgresql/15/bin';
const isRoot = process.getuid?.() === 0;
let pgIds: { uid: number; gid: number } | undefined;

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  if (!pgIds) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    pgIds = { uid, gid };
  }
  return pgIds;
}

/** Runs a command as the postgres user when we are root, else as ourselves. */
export function asPostgres(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const [c, a] = isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(c, a, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The lifeboat CLI as the postgres user (as archive_command runs it). */
export function lifeboatAsPostgres(args: string[], env: Record<string, string> = {}) {
  return asPostgres(process.execPath, [CLI, ...args], env);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** A directory the postgres user owns (for clusters, repositories, password files). */
export async function postgresDir(prefix: string): Promise<string> {
  const d = mkdtempSync(path.join('/tmp', prefix));
  if (isRoot) {
    const { uid, gid } = await postgresIds();
    chownSync(d, uid, gid);
  }
  chmodSync(d, 0o700);
  return d;
}

export async function writeAsPostgres(file: string, text: string): Promise<void> {
  writeFileSync(file, text, { mode: 0o600 });
  if (isRoot) {
    const { uid, gid } = await postgresIds();
    chownSync(file, uid, gid);
  }
}

export interface ClusterOptions {
  /** archive_command, or none for archive_mode=off. */
  archiveCommand?: string;
  extraConf?: string[];
}

export class ScratchCluster {
  private constructor(
    readonly dir: string,
    readonly data: string,
    readonly port: number,
  ) {}

  /**
   * A restored copy of this cluster in DATA listening on PORT (its sockets land in
   * the same directory, under their own port). Never destroy() a copy: the directory
   * is this cluster's.
   */
  copy(data: string, port: number): ScratchCluster {
    return new ScratchCluster(this.dir, data, port);
  }

  get dsn(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async create(opts: ClusterOptions = {}): Promise<ScratchCluster> {
    const dir = await postgresDir('lb-pg-');
    const data = path.join(dir, 'data');
    const init = await asPostgres(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    if (init.code !== 0) throw new Error(`initdb failed: ${init.stderr}`);
    const port = await freePort();
    const c = new ScratchCluster(dir, data, port);
    await c.configure(opts);
    return c;
  }

  /** Writes the settings a test cluster needs into postgresql.conf and pg_hba.conf. */
  async configure(opts: ClusterOptions, data = this.data): Promise<void> {
    const conf = [
      `port = ${this.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${this.dir}'`,
      'wal_level = replica',
      'max_wal_senders = 5',
      'fsync = off',
      ...(opts.archiveCommand ? ['archive_mode = on', `archive_command = '${opts.archiveCommand.replace(/'/g, "''")}'`, 'archive_timeout = 0'] : []),
      ...(opts.extraConf ?? []),
    ];
    await fs.appendFile(path.join(data, 'postgresql.conf'), `\n${conf.join('\n')}\n`);
    await fs.appendFile(path.join(data, 'pg_hba.conf'), '\nhost replication all 127.0.0.1/32 trust\n');
  }

  async start(data = this.data): Promise<void> {
    const r = await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', path.join(this.dir, `log-${path.basename(data)}.txt`), '-w', '-t', '120', 'start']);
    if (r.code !== 0) {
      const log = await fs.readFile(path.join(this.dir, `log-${path.basename(data)}.txt`), 'utf8').catch(() => '');
      throw new Error(`pg_ctl start failed: ${r.stderr}\n${log.slice(-3000)}`);
    }
  }

  async stop(data = this.data): Promise<void> {
    await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
  }

  async log(data = this.data): Promise<string> {
    return fs.readFile(path.join(this.dir, `log-${path.basename(data)}.txt`), 'utf8').catch(() => '');
  }

  async query<T extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: this.dsn });
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  /** Waits until recovery has finished and the server accepts writes. */
  async waitPromoted(timeoutMs = 120_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        const [r] = await this.query<{ rec: boolean }>('select pg_is_in_recovery() as rec');
        if (r && !r.rec) return;
      } catch {
        // starting up
      }
      if (Date.now() > until) throw new Error(`cluster did not finish recovery:\n${(await this.log()).slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async destroy(): Promise<void> {
    await this.stop().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The port a restored data directory will listen on: the last `port` in postgresql.auto.conf. */
export async function restoredPort(data: string): Promise<number> {
  const text = await fs.readFile(path.join(data, 'postgresql.auto.conf'), 'utf8');
  const port = [...text.matchAll(/^port = (\d+)$/gm)].at(-1)?.[1];
  if (!port) throw new Error(`no port in ${data}/postgresql.auto.conf`);
  return Number(port);
}

/**
 * The usual starting point of a PostgreSQL test: a postgres-owned directory with a
 * repository and its password file, and a running scratch cluster whose
 * archive_command pushes into that repository as source `main`.
 */
export async function archivedCluster(prefix: string): Promise<{ base: string; repo: string; pw: string; cluster: ScratchCluster }> {
  const base = await postgresDir(prefix);
  const repo = path.join(base, 'repo');
  const pw = path.join(base, 'password');
  await writeAsPostgres(pw, `${prefix}password\n`);
  const init = await lifeboatAsPostgres(['init', '--repo', repo, '--password-file', pw]);
  if (init.code !== 0) throw new Error(`lifeboat init failed: ${init.stderr}`);
  const cluster = await ScratchCluster.create({
    archiveCommand: `"${process.execPath}" "${CLI}" pg archive-push --name main --repo "${repo}" --password-file "${pw}" %p`,
  });
  await cluster.start();
  return { base, repo, pw, cluster };
}
