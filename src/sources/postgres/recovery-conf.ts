/**
 * What `pg restore` writes into the restored data directory's postgresql.auto.conf
 * (read after postgresql.conf, so these settings win): how to fetch WAL, what to
 * recover to and along which timeline, and what keeps the copy from acting as the
 * primary it was restored from.
 *
 * A restored copy is most often started beside its primary (to look at old data,
 * to test, to extract a table). With the primary's settings it would archive its
 * new timeline into the primary's archive under the same source name and, where
 * the port is free, take the primary's clients; its subscriptions would consume the
 * real subscriber's changes. So it comes up with archiving off, on a port of its own,
 * with no logical replication workers and no synchronous standbys; a comment says how
 * to turn these back on once the copy really becomes the primary.
 */
import { createServer } from 'node:net';
import { escapePercent, pgConfQuote, shellJoin, shellQuote } from '../../util/shell.js';
import type { PgTarget } from './restore.js';

/** A string value in postgresql.auto.conf (throws UnquotableError for NUL or line breaks). */
export const quoteConf = pgConfQuote;

/**
 * restore_command: a segment already prefetched is taken with a plain `mv` (the
 * shell starts in a millisecond, Node in ~60); only a miss runs lifeboat, which
 * fetches it and prefetches the next ones.
 *
 * PostgreSQL runs it with `sh -c` after replacing %f (a WAL file name: hex digits)
 * and %p (a path relative to the data directory, such as pg_wal/RECOVERYXLOG).
 * Every other word comes from paths an operator or an API client chose, so each is
 * single-quoted for the shell and its % doubled (util/shell.ts); the result is
 * quoted once more for the configuration file by the caller.
 */
export function restoreCommand(archiveGet: readonly string[], prefetchDir?: string): string {
  const get = escapePercent(shellJoin(archiveGet));
  if (!prefetchDir) return `${get} %f "%p"`;
  const dir = escapePercent(shellQuote(prefetchDir));
  const inDir = escapePercent(shellQuote(`${prefetchDir}/`));
  return `test -f ${inDir}%f && mv ${inDir}%f "%p" || ${get} --prefetch ${dir} %f "%p"`;
}

/**
 * The recovery settings. The timeline is always named: 'latest' would follow the
 * newest timeline in the archive, whoever wrote it (timelines.ts decides which one
 * is production's).
 */
export function recoverySettings(target: PgTarget, command: string, timeline: number): string[] {
  const lines = [`restore_command = ${quoteConf(command)}`, `recovery_target_timeline = '${timeline}'`];
  switch (target.kind) {
    case 'time':
      // PostgreSQL does not take "T…Z"; it does take "YYYY-MM-DD HH:MM:SS.sss+00".
      lines.push(`recovery_target_time = ${quoteConf(target.time.toISOString().replace('T', ' ').replace('Z', '+00'))}`);
      break;
    case 'lsn':
      lines.push(`recovery_target_lsn = ${quoteConf(target.lsn)}`);
      break;
    case 'xid':
      lines.push(`recovery_target_xid = ${quoteConf(target.xid)}`);
      break;
    case 'name':
      lines.push(`recovery_target_name = ${quoteConf(target.name)}`);
      break;
    case 'latest':
      return lines;
  }
  lines.push(`recovery_target_action = 'promote'`);
  return lines;
}

/**
 * The settings that keep the copy to itself, with the comment an operator needs
 * when the copy is to become the primary. `pushCommand` is archive-push without %p.
 */
export function copySettings(name: string, port: number, pushCommand: readonly string[] | undefined): string[] {
  const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ');
  const push = pushCommand ? `${escapePercent(shellJoin(pushCommand))} %p` : oneLine(`lifeboat pg archive-push --name ${name} --repo … --password-file … %p`);
  return [
    `# Archiving is off: this copy must not push its own timeline into the archive of "${oneLine(name)}",`,
    '# where restores of the primary would have to tell it apart. Once this copy becomes the',
    '# primary (the old one is gone for good), replace the line below with',
    '#   archive_mode = on',
    `#   archive_command = ${quoteConf(push)}`,
    `# restart it, and take a base backup at once (lifeboat pg backup --name ${oneLine(name)} --dsn …):`,
    '# restores follow a new timeline from its first base backup (docs/postgres.md).',
    'archive_mode = off',
    `port = ${port}`,
    // Subscriptions would connect to their publishers and consume the real subscriber's
    // changes; synchronous standbys that will never connect would make every write wait.
    // Once this copy is the primary, remove these two lines (and ALTER SUBSCRIPTION ... ENABLE as needed).
    'max_logical_replication_workers = 0',
    `synchronous_standby_names = ''`,
  ];
}

/**
 * A port for the copy that is free now on every interface and is not the one the
 * primary is configured for (nor the default), so the copy cannot take the
 * primary's place even if the primary is down at the moment.
 */
export async function choosePort(avoid: number[]): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.on('error', reject);
      srv.listen(0, () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    if (!avoid.includes(port)) return port;
  }
}
