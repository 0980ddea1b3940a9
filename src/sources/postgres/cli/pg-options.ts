/** Option handling shared by the `pg` subcommands that restore (restore, verify). */
import { LifeboatError } from '../../../errors.js';
import type { PgTarget } from '../restore.js';
import { parseTargetTime } from '../../../engine/target-time.js';
import { parseLsn } from '../wal.js';
import type { GlobalOptions } from '../../../cli/context.js';
import { selfCommand } from '../../../cli/self-command.js';

export interface TargetFlags {
  time?: string;
  lsn?: string;
  xid?: string;
  restorePoint?: string;
  latest?: boolean;
  timeline?: string;
}

/** --timeline N: a timeline id (decimal, or the 8 hex digits of its WAL file names). */
export function timelineOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d{1,10}$/.test(text) ? Number(text) : /^[0-9A-Fa-f]{8}$/.test(text) ? parseInt(text, 16) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) {
    throw new LifeboatError('USAGE', `"${text}" is not a timeline id`, { hint: 'a number such as 2 (`lifeboat pg timelines --name NAME` lists them)' });
  }
  return n;
}

export function portOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new LifeboatError('USAGE', `"${text}" is not a TCP port`, { hint: 'a number from 1 to 65535' });
  return n;
}

export function targetOf(f: TargetFlags): PgTarget {
  const given = [f.time, f.lsn, f.xid, f.restorePoint, f.latest].filter((v) => v !== undefined);
  if (given.length > 1) throw new LifeboatError('USAGE', 'give only one recovery target (--time, --lsn, --xid, --restore-point or --latest)');
  if (f.time !== undefined) return { kind: 'time', time: parseTargetTime(f.time) };
  if (f.lsn !== undefined) {
    parseLsn(f.lsn);
    return { kind: 'lsn', lsn: f.lsn };
  }
  if (f.xid !== undefined) {
    if (!/^\d+$/.test(f.xid)) throw new LifeboatError('USAGE', `"${f.xid}" is not a transaction id`);
    return { kind: 'xid', xid: f.xid };
  }
  if (f.restorePoint !== undefined) return { kind: 'name', name: f.restorePoint };
  return { kind: 'latest' };
}

/**
 * The argv of the restore_command PostgreSQL will run (or, with `call`, the
 * archive_command a restored copy would need once it is the primary): this very CLI,
 * through cli/self-command.ts (absolute paths, the repository, a password file).
 * recovery-conf.ts quotes it once, with the one quoting helper (util/shell.ts).
 */
export async function archiveGetCommand(g: GlobalOptions, verb: string, call: 'archive-get' | 'archive-push' = 'archive-get'): Promise<(name: string) => string[]> {
  const self = await selfCommand(g, `pg ${verb}`);
  return (name) => self(['pg', call, '--name', name]);
}
