/** Option handling shared by the `pg` subcommands that restore (restore, verify). */
import { realpathSync } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import type { PgTarget } from '../../engine/postgres/restore.js';
import { parseLsn } from '../../sources/postgres/wal.js';
import { parseLocation } from '../../storage/registry.js';
import { repoLocation, type GlobalOptions } from '../context.js';
import { parseTime } from './options.js';

export interface TargetFlags {
  time?: string;
  lsn?: string;
  xid?: string;
  restorePoint?: string;
  latest?: boolean;
}

export function targetOf(f: TargetFlags): PgTarget {
  const given = [f.time, f.lsn, f.xid, f.restorePoint, f.latest].filter((v) => v !== undefined);
  if (given.length > 1) throw new LifeboatError('USAGE', 'give only one recovery target (--time, --lsn, --xid, --restore-point or --latest)');
  if (f.time !== undefined) return { kind: 'time', time: parseTime(f.time) };
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
 * The restore_command PostgreSQL will run: this very CLI, with absolute paths, the
 * repository and a password file (the server cannot be handed a password otherwise).
 */
export function archiveGetCommand(g: GlobalOptions, name: string, verb: string): string {
  const pwFile = g.passwordFile ?? process.env.LIFEBOAT_PASSWORD_FILE;
  if (!pwFile) {
    throw new LifeboatError('USAGE', `pg ${verb} needs --password-file (or LIFEBOAT_PASSWORD_FILE)`, {
      hint: "PostgreSQL's restore_command runs `lifeboat pg archive-get`, which must read the password from a file",
    });
  }
  let repo = repoLocation(g);
  if (parseLocation(repo).scheme === 'local') repo = path.resolve(parseLocation(repo).rest);
  const cli = realpathSync(process.argv[1] ?? 'lifeboat');
  const q = (s: string) => `"${s.replace(/(["\\$`])/g, '\\$1')}"`;
  return `${q(process.execPath)} ${q(cli)} pg archive-get --name ${q(name)} --repo ${q(repo)} --password-file ${q(path.resolve(pwFile))}`;
}
