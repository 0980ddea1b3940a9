/**
 * The `postgres` kind of source: a PostgreSQL cluster backed up physically (base
 * backups), with its WAL archived by archive_command or streamed by `pg stream`, so
 * it restores to any moment. Everything generic code needs to know about it is here
 * (the Source seam, src/sources/source.ts); the work itself is in this folder.
 */
import type { z } from 'zod';
import { postgresFields, postgresOptions } from './options.js';
import * as path from 'node:path';
import type { SourceConfig } from '../../config/config.js';
import { redact } from '../../util/redact.js';
import { restoreInvocation } from '../../engine/restore-options.js';
import type { SourceKind } from '../source.js';
import { logSource, streamSource, type PgConsistency } from './names.js';
import { dsnForChild, readPasswordFile, splitDsnPassword } from './password.js';
import { pgPointSchema } from './point.js';
import { checkStartTools } from './start-tools.js';
import { ArchiveWatch } from './archive-watch.js';
import { isLifeboatError } from '../../errors.js';
import type { GraphDeclaration } from '../graph/options.js';

/** A source's DSN as it may appear on a child's argv: without its password (see childEnv). */
export function argvDsn(s: SourceConfig): string {
  return splitDsnPassword(s.dsn as string).dsn;
}

/** The port of a PostgreSQL connection string (URL form), else PostgreSQL's default. */
function dsnPort(dsn: string | undefined): string {
  try {
    return (dsn && new URL(dsn).port) || '5432';
  } catch {
    return '5432';
  }
}

async function serverProblem(dsn: string, password: string | undefined, within: <T>(p: Promise<T>, what: string) => Promise<T>, graph?: GraphDeclaration): Promise<string | undefined> {
  const { connect } = await import('./connect.js');
  try {
    const client = await within(connect(dsn, password), 'PostgreSQL');
    try {
      await client.query('select 1');
      // The declared graph's tables and columns (its queries run at backup).
      if (graph) await within((await import('./graph.js')).checkPgGraph(client, graph, 'the server'), 'PostgreSQL');
    } finally {
      await client.end().catch(() => {});
    }
    return undefined;
  } catch (err) {
    // connect() redacts the password from its messages.
    if (isLifeboatError(err) && err.hint) return `${err.message} (${err.hint})`;
    return err instanceof Error ? err.message : String(err);
  }
}

export const postgres: SourceKind<PgConsistency> = {
  name: 'postgres',
  get options() {
    return postgresOptions();
  },
  // The reader parsed the keys with postgresOptions: they are its output.
  fields: (o) => postgresFields(o as z.output<ReturnType<typeof postgresOptions>>),
  get point() {
    return pgPointSchema();
  },

  async reach(s, probe) {
    const out: Array<string | undefined> = [];
    if (s.binDir) out.push(probe.file(s.binDir, 'directory')?.replace(/^/, 'bin_dir '));
    if (s.pgdata) out.push(probe.file(s.pgdata, 'directory')?.replace(/^/, 'pgdata '));
    // The password the jobs would use (childEnv): a missing or unreadable file is the problem, not a refused login.
    const pwFile = s.passwordFile === undefined ? undefined : probe.resolve(s.passwordFile);
    let password: string | undefined;
    let pwProblem = pwFile === undefined ? undefined : probe.file(pwFile, 'file')?.replace(/^/, 'password file ');
    if (pwFile !== undefined && !pwProblem) {
      try {
        password = readPasswordFile(pwFile);
      } catch (err) {
        pwProblem = err instanceof Error ? err.message : String(err);
      }
    }
    out.push(pwProblem);
    if (s.dsn && !pwProblem) out.push(await serverProblem(s.dsn, password, probe.within, s.graph));
    return out.filter((m): m is string => m !== undefined);
  },

  jobs: {
    backup: (s) => ({
      command: ['pg', 'backup'],
      options: [['--name', s.name], ['--dsn', argvDsn(s)], ['--pgdata', s.pgdata || undefined], ['--bin-dir', s.binDir || undefined], ['--tag', s.tags]],
    }),
    // With the dsn a PostgreSQL drill measures RPO against the server's WAL position.
    drill: (s) => ({ command: ['drill'], options: [['--source', s.name], ['--dsn', s.dsn ? argvDsn(s) : undefined], ['--check', s.checks]] }),
  },

  /**
   * A PostgreSQL password (from the source's password_file, else from its DSN) in
   * PGPASSWORD, never on argv, where `ps` shows it to every local user.
   */
  childEnv(s, configFile) {
    if (s.dsn === undefined) return {};
    const pw = s.passwordFile === undefined ? undefined : readPasswordFile(path.resolve(path.dirname(configFile), s.passwordFile));
    return dsnForChild(s.dsn, pw).env;
  },

  restore: {
    command: ['pg', 'restore'],
    options: [
      { flag: '--name', from: 'name' },
      { flag: '--target-dir', from: 'target' },
      { flag: '--time', from: 'time' },
      { flag: '--bin-dir', from: 'bin_dir' },
      { flag: '--port', from: 'port' },
      { flag: '--start', from: 'start', boolean: true },
      { flag: '--keep-running', from: 'keep_running', boolean: true },
      // The source's checks, run on the started copy (repeated: one flag per query).
      { flag: '--check', from: 'checks' },
    ],
    // A restore is started, checked and promoted, so the job measures the RTO of a real
    // recovery (then the server is stopped: the operator moves it into place).
    startByDefault: true,
    measuresRto: true,
    targetExample: 'e.g. /var/tmp/restore-1',
    fieldsHint: 'give "time" (RFC 3339), or nothing for the newest data',
    check(s, p) {
      // The daemon starts restored clusters (pg restore --start) with bin_dir's binaries.
      if (s.binDir !== undefined && p.start !== false) checkStartTools(s.binDir);
    },
  },

  recover: {
    switchOver: (target, _live, r, sh) => {
      const port = typeof r.port === 'number' ? r.port : undefined;
      return [
        '# the restored cluster is stopped, fully recovered and promoted; either start it where it is:',
        `pg_ctl -D ${sh(target)} start${port !== undefined ? `   # listens on port ${port}` : ''}`,
        '# or stop the damaged server, move its data directory aside and this one into its place',
        '# (set port in postgresql.auto.conf), then start it; point the applications at it.',
        '# It does not archive: turn archive_mode back on (postgresql.auto.conf says how) once it is the primary.',
      ];
    },
  },

  drill: {
    nameOf: (s) => s.source.name,
    run: async (repo, name, ctx) => (await import('./drill.js')).drillPostgres(repo, name, ctx),
  },

  log: {
    // archive_command's WAL and pg stream's are kept apart (names.ts says why).
    sources: (name) => [logSource(name), streamSource(name)],
    trim: async (repo, name, after, cutoff, opts) => (await import('./log-retention.js')).trimPostgres(repo, name, after, cutoff, opts),
    reportAs: 'wal',
  },

  window: async (repo, name) => (await import('./window.js')).pgWindow(repo, name),

  checkWarnings: async (repo) => {
    const { archiveWarnings } = await import('./timeline-archive.js');
    return archiveWarnings(repo).catch((err: unknown) => [`WAL timelines not checked: ${err instanceof Error ? err.message : String(err)}`]);
  },

  continuous: {
    method: 'stream',
    // Received WAL is spooled under the daemon's state directory.
    invocation: (s, stateDir) => ({
      command: ['pg', 'stream'],
      options: [['--name', s.name], ['--dsn', argvDsn(s)], ['--spool', path.join(stateDir, 'spool', s.name)], ['--bin-dir', s.binDir || undefined]],
    }),
    reportsShipLag: false,
    phrase: 'WAL is streamed',
  },
  // Without `stream: true` the server's archive_command archives; the daemon watches it.
  archiveWatch: (config, onChange, clock) => new ArchiveWatch(config, onChange, clock),

  runbook: {
    what: (s) => `the cluster at \`${redact(s.dsn ?? '')}\``,
    steps(s, { g, cmd, shell }) {
      const dir = s.pgdata ? `${s.pgdata}.restored` : `/var/lib/postgresql/restore-${s.name}`;
      const port = dsnPort(s.dsn);
      return [
        '1. Stop the damaged server if it still runs.',
        '2. Restore the newest base backup and replay all archived WAL (add `--time 2026-01-31T14:30:00Z` to stop at a moment);',
        `   \`--start\` starts it, waits for recovery and promotion, checks it and prints the measured RTO; \`--keep-running\``,
        `   then leaves it running with its own settings on \`--port ${port}\`, where clients look (leave that out for a copy beside a server that still runs):`,
        '',
        '   ```sh',
        `   ${g} ${cmd(restoreInvocation(s, { target: dir, port: Number(port), start: true, keepRunning: true }))}`,
        '   ```',
        `3. It runs as the data directory's owner with archiving off; \`pg_ctl -D ${shell(dir)} stop|start\` (as the postgres user) from here on.`,
        `4. If it is production from now on: follow the comment at the end of \`${dir}/postgresql.auto.conf\` (archiving on, replication settings back), restart it, and take a base backup at once (\`${g} pg backup --name ${s.name} --dsn …\`): restores follow its new timeline only from that backup.`,
        `5. Check: \`${g} pg verify --name ${s.name}\` restores into a scratch place and runs amcheck, without touching the server.`,
      ];
    },
  },

  commands: { words: ['pg'], load: () => import('./cli/pg.js') },
};
