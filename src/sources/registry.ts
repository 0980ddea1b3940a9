/**
 * Kinds of source register here by name; generic code finds them here. This module
 * imports no kind: src/sources/all.ts imports each kind once, and every entry point
 * (cli/main.ts, the daemon, the lean archive commands, the tests' setup) imports
 * all.ts. So the engine depends on this registry, kinds depend on the engine, and no
 * import ever runs from the engine to a kind.
 */
import { LifeboatError } from '../errors.js';
import type { Snapshot } from '../repo/snapshot/snapshot.js';
import type { SourceKind } from './source.js';

const kinds = new Map<string, SourceKind<unknown>>();

/** Adds a kind; a second kind of the same name is a programming error and throws at once. */
export function registerSource<P>(kind: SourceKind<P>): void {
  if (kinds.has(kind.name)) throw new Error(`source kind "${kind.name}" registered twice`);
  kinds.set(kind.name, kind as SourceKind<unknown>);
}

/** Every registered kind, in registration order (all.ts's order: output lists follow it). */
export function sourceKinds(): Array<SourceKind<unknown>> {
  return [...kinds.values()];
}

/** The kind of that name, or undefined (a snapshot written by a newer version, say). */
export function findSourceKind(name: string): SourceKind<unknown> | undefined {
  return kinds.get(name);
}

/** The kind of that name, or USAGE listing the kinds there are. */
export function sourceKind(name: string): SourceKind<unknown> {
  const kind = kinds.get(name);
  if (!kind) {
    throw new LifeboatError('USAGE', `unknown kind of source "${name}"`, {
      hint: kinds.size ? `kinds: ${[...kinds.keys()].join(', ')}` : 'no kind is registered: the program must import src/sources/all.js',
    });
  }
  return kind;
}

/**
 * A snapshot's consistency point as the kind's typed value: undefined when the
 * snapshot has none, CORRUPT when it has one that does not match the kind's schema
 * (a damaged or forged manifest must not steer a restore or retention).
 */
export function pointOf<P>(kind: Pick<SourceKind<P>, 'name' | 'point'>, snapshot: Pick<Snapshot, 'id' | 'consistency'>): P | undefined {
  if (snapshot.consistency === undefined) return undefined;
  const r = kind.point.safeParse(snapshot.consistency);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new LifeboatError('CORRUPT', `snapshot ${snapshot.id.slice(0, 8)}: its ${kind.name} consistency point is not valid (${issue ? `${issue.path.join('.') || 'value'}: ${issue.message}` : 'no detail'})`, {
      hint: '`lifeboat check` reports damaged snapshots; `lifeboat forget` can remove this one',
    });
  }
  return r.data;
}

/** Does this snapshot belong to the source of kind `kind` named `name`? */
export function isSnapshotOf(snapshot: Pick<Snapshot, 'source'>, kind: Pick<SourceKind<unknown>, 'name'>, name: string): boolean {
  return snapshot.source.kind === kind.name && snapshot.source.name === name;
}
