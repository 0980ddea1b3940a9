/**
 * Choosing the snapshot a restore means. A repository is often shared by several
 * sources (files, SQLite, PostgreSQL), so "latest" and a time only make sense among
 * the snapshots of one source: the newest snapshot of the repository may be another
 * source's, and restoring it is exactly what the operator did not mean. A source is
 * named as in `forget --source`: its name, or kind:name; file backups made without
 * --name are named by their first path.
 */
import { LifeboatError } from '../../errors.js';
import { isFutureDated, pickSnapshot, type PickOptions, type Snapshot } from './snapshot.js';

/** What names a snapshot's source: a snapshot, or its JSON listing in the daemon. */
export type SourceOf = Pick<Snapshot, 'source' | 'paths'>;

/** The name a snapshot's source goes by: its name, or (unnamed file backups) its first path. */
export function sourceNameOf(s: SourceOf): string {
  return s.source.name ?? s.paths[0] ?? '';
}

/** `kind:name`, the unambiguous label of a snapshot's source. */
export function sourceLabelOf(s: SourceOf): string {
  return `${s.source.kind}:${sourceNameOf(s)}`;
}

/** Whether a snapshot belongs to a source given as a name or kind:name. */
export function isOfSource(s: Snapshot, source: string): boolean {
  const name = sourceNameOf(s);
  return name === source || `${s.source.kind}:${name}` === source;
}

/** The distinct sources of these snapshots, as kind:name, sorted. */
export function sourcesIn(all: readonly Snapshot[]): string[] {
  return [...new Set(all.map(sourceLabelOf))].sort();
}

export interface SelectOptions {
  /** A source name or kind:name. */
  source?: string;
  /** A path the snapshot backed up (as given to `backup`). */
  path?: string;
}

/**
 * The snapshots of the source asked for. A name that several kinds share (a files
 * source and a SQLite source both called "app") is refused: kind:name says which.
 */
export function snapshotsOf(all: readonly Snapshot[], sel: SelectOptions): Snapshot[] {
  let out = [...all];
  if (sel.source !== undefined) {
    out = out.filter((s) => isOfSource(s, sel.source as string));
    const labels = sourcesIn(out);
    if (labels.length > 1) {
      throw new LifeboatError('AMBIGUOUS_SOURCE', `several sources are called "${sel.source}": ${labels.join(', ')}`, {
        hint: `name one as kind:name, e.g. --source ${labels[0]}`,
      });
    }
  }
  if (sel.path !== undefined) {
    const want = sel.path.replace(/(.)\/+$/, '$1');
    out = out.filter((s) => s.paths.some((p) => p.replace(/(.)\/+$/, '$1') === want));
  }
  return out;
}

export interface RestorePickOptions extends SelectOptions, PickOptions {
  /** The newest snapshot taken at or before this moment (instead of "latest"). */
  time?: Date;
}

/**
 * The snapshot a restore means: an id prefix (checked against the source when one is
 * named), or "latest" / the newest at or before a time among one source's snapshots.
 * "latest" with no source named is refused when the repository holds several
 * sources, listing them; with one source it is that source's newest, as before.
 */
export function pickForRestore(all: readonly Snapshot[], ref: string, opts: RestorePickOptions = {}): Snapshot {
  const named = opts.source !== undefined || opts.path !== undefined;
  const mine = named ? snapshotsOf(all, opts) : [...all];
  const what = [opts.source !== undefined ? `source "${opts.source}"` : '', opts.path !== undefined ? `path ${opts.path}` : ''].filter(Boolean).join(' and ');
  if (named && mine.length === 0) {
    const there = sourcesIn(all);
    throw new LifeboatError('NOT_FOUND', `no snapshot of ${what}`, {
      hint: there.length ? `sources in this repository: ${there.join(', ')}` : 'the repository has no snapshots yet',
    });
  }
  if (ref !== 'latest') {
    if (opts.time !== undefined) throw new LifeboatError('USAGE', 'give a snapshot id or --time, not both', { hint: 'use "latest" with --time' });
    const s = pickSnapshot(all, ref, opts);
    if (named && !mine.includes(s)) {
      throw new LifeboatError('USAGE', `snapshot ${s.id.slice(0, 8)} is of ${sourceLabelOf(s)}, not of ${what}`, {
        hint: `\`lifeboat snapshots --source ${opts.source ?? sourceLabelOf(s)}\` lists that source's snapshots`,
      });
    }
    return s;
  }
  if (!named) {
    const sources = sourcesIn(all);
    if (sources.length > 1) {
      throw new LifeboatError('AMBIGUOUS_SOURCE', `"latest" is ambiguous: this repository holds ${sources.length} sources (${sources.join(', ')})`, {
        hint: `name one: --source ${sources[0]} (or --path P, or a snapshot id)`,
      });
    }
  }
  if (opts.time !== undefined) {
    const at = opts.time.getTime();
    const before = mine.filter((s) => Date.parse(s.time) <= at && !isFutureDated(s.time, opts.now));
    if (before.length === 0) {
      const oldest = [...mine].sort((a, b) => Date.parse(a.time) - Date.parse(b.time))[0];
      throw new LifeboatError('NOT_FOUND', `no snapshot${what ? ` of ${what}` : ''} at or before ${opts.time.toISOString()}`, {
        hint: oldest ? `the oldest is ${oldest.id.slice(0, 8)} (${oldest.time})` : 'the repository has no snapshots yet',
      });
    }
    return pickSnapshot(before, 'latest', opts);
  }
  return pickSnapshot(mine, 'latest', opts);
}
