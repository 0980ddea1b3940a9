/**
 * Where the API may restore to. A restore job runs as the daemon's user (often root),
 * so a target is a write anywhere that user can write: the API allows targets only
 * below `server.restore_roots`, reached without a symlink, never inside a repository
 * store or the state directory, and named with characters no shell or configuration
 * file gives a meaning to. Without restore roots only an admin token restores. A
 * restore's snapshot must be one of the named source's.
 */
import { lstatSync, realpathSync } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../errors.js';
import type { LifeboatConfig, SourceConfig } from '../config/config.js';
import { parseLocation } from '../storage/registry.js';
import type { Role } from './auth.js';
import { sourceLabelOf, type SourceOf } from '../repo/snapshot/select.js';

/**
 * Letters and digits of any script, space and `._-+@%,=:/`. Everything else (`$`,
 * backquote, quotes, backslash, `;|&<>(){}[]*?!#~`, newline and every control
 * character) is refused: a PostgreSQL target ends up in restore_command, and a name
 * that means nothing to a shell cannot be made to mean something there.
 */
const SAFE_TARGET = /^[\p{L}\p{N}\p{M} ._+@%,=:/-]+$/u;

const under = (child: string, parent: string) => child === parent || child.startsWith(parent === '/' ? '/' : `${parent}/`);

/** The real location of a path that may not exist yet: its deepest existing ancestor resolved, the rest appended. */
function realLocation(p: string): string {
  const rest: string[] = [];
  let cur = p;
  for (;;) {
    try {
      return path.join(realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return p;
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

/** Local repository stores and the state directory: a restore must never write into them. */
function protectedPlaces(config: LifeboatConfig): Array<[what: string, real: string]> {
  const base = path.dirname(path.resolve(config.file));
  const out: Array<[string, string]> = [['the state directory', realLocation(path.resolve(base, config.server.stateDir))]];
  for (const r of config.repositories.values()) {
    for (const store of r.stores) {
      const { scheme, rest } = parseLocation(store);
      if (scheme === 'local' || scheme === 'file') out.push([`repository ${r.name}`, realLocation(path.resolve(base, scheme === 'file' ? rest.replace(/^\/\//, '') : rest))]);
    }
  }
  return out;
}

/**
 * Checks an API restore target for a caller of that role; returns it normalized, or
 * throws USAGE (malformed) or RESTORE_NOT_ALLOWED (a place the API does not restore to).
 */
export function checkRestoreTarget(config: LifeboatConfig, role: Role, target: unknown): string {
  if (typeof target !== 'string' || !path.isAbsolute(target)) {
    throw new LifeboatError('USAGE', 'a restore needs "target": an absolute path that does not exist yet', { hint: 'e.g. /var/tmp/restore-1' });
  }
  if (!SAFE_TARGET.test(target)) {
    throw new LifeboatError('USAGE', `the restore target ${JSON.stringify(target)} has characters the API does not restore to`, { hint: 'use letters, digits, space and ._-+@%,=: in restore targets' });
  }
  const normal = path.normalize(target).replace(/(.)\/+$/, '$1');
  const roots = config.server.restoreRoots;
  let real: string;
  if (roots.length === 0) {
    if (role !== 'admin') {
      throw new LifeboatError('RESTORE_NOT_ALLOWED', 'restores through the API need an admin token while no restore roots are set', { hint: `set server.restore_roots in ${config.file} to the directories operators may restore into` });
    }
    real = realLocation(normal);
  } else {
    const root = roots.find((r) => normal !== r && under(normal, r));
    if (!root) {
      throw new LifeboatError('RESTORE_NOT_ALLOWED', `the restore target ${normal} is outside the restore roots`, { hint: `restore below ${roots.join(', ')} (server.restore_roots)` });
    }
    // Nothing below the root may be a symlink: a link another user planted there would carry the write elsewhere.
    let cur = root;
    for (const part of path.relative(root, normal).split(path.sep)) {
      cur = path.join(cur, part);
      let isLink: boolean;
      try {
        isLink = lstatSync(cur).isSymbolicLink();
      } catch {
        break; // the rest does not exist yet
      }
      if (isLink) throw new LifeboatError('RESTORE_NOT_ALLOWED', `${cur} is a symbolic link; restores never follow one below a restore root`, { hint: `restore to a path below ${root} made of real directories` });
    }
    real = path.join(realLocation(root), path.relative(root, normal));
  }
  for (const [what, place] of protectedPlaces(config)) {
    if (under(real, place)) throw new LifeboatError('RESTORE_NOT_ALLOWED', `the restore target ${normal} is inside ${what} (${place})`, { hint: 'restore to a new directory outside every repository and the state directory' });
  }
  return normal;
}

interface ListedSnapshot {
  id: string;
  time: string;
  paths?: string[];
  source?: { kind: string; name?: string };
}

/** The source a listed snapshot belongs to, as `kind:name`: the rule `restore --source` uses. */
function sourceKey(s: ListedSnapshot): string {
  return sourceLabelOf({ source: s.source ?? { kind: '' }, paths: s.paths ?? [] } as SourceOf);
}

/**
 * The full id of the snapshot a restore names (an id prefix, or "latest": the newest
 * of this source), refusing one that belongs to another source.
 */
export function snapshotOfSource(listing: unknown, source: SourceConfig, snapshot: string): string {
  const snaps = (Array.isArray(listing) ? listing : []) as ListedSnapshot[];
  const mine = (s: ListedSnapshot) => sourceKey(s) === `${source.kind}:${source.name}`;
  if (snapshot === 'latest') {
    const newest = snaps.filter(mine).sort((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
    if (!newest) throw new LifeboatError('NOT_FOUND', `source ${source.name} has no snapshot in repository ${source.repository}`, { hint: `back it up first: POST /api/v1/sources/${source.name}/backup` });
    return newest.id;
  }
  const matches = snaps.filter((s) => s.id.startsWith(snapshot));
  if (matches.length === 0) throw new LifeboatError('NOT_FOUND', `no snapshot ${snapshot} in repository ${source.repository}`, { hint: `GET /api/v1/backups?source=${source.name} lists them` });
  if (matches.length > 1) throw new LifeboatError('USAGE', `snapshot prefix ${snapshot} is ambiguous (${matches.length} snapshots)`, { hint: 'give more digits of the id' });
  const found = matches[0] as ListedSnapshot;
  if (!mine(found)) {
    throw new LifeboatError('WRONG_SOURCE', `snapshot ${found.id.slice(0, 8)} belongs to ${sourceKey(found)}, not to source ${source.name}`, { hint: `GET /api/v1/backups?source=${source.name} lists the snapshots of ${source.name}` });
  }
  return found.id;
}
