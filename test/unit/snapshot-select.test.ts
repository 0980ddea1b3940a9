/**
 * Which snapshot a restore means in a repository several sources share
 * (src/repo/snapshot/select.ts): "latest" and a time among one source's snapshots,
 * a bare "latest" refused listing the sources, a name two kinds share refused.
 */
import { describe, expect, it } from 'vitest';
import { LifeboatError } from '../../src/errors.js';
import { pickForRestore, snapshotsOf } from '../../src/repo/snapshot/select.js';
import type { Snapshot } from '../../src/repo/snapshot/snapshot.js';

let n = 0;
const snap = (kind: string, name: string | undefined, time: string, paths = ['/srv/x']): Snapshot =>
  ({ id: (++n).toString(16).padStart(8, '0').repeat(8), version: 1, time, hostname: 'h', username: 'u', paths, tags: [], excludes: [], tree: 't', source: { kind, ...(name ? { name } : {}) }, summary: {} as Snapshot['summary'], programVersion: 'x' }) as Snapshot;

const uploads1 = snap('files', 'uploads', '2026-11-01T00:00:00Z', ['/srv/uploads']);
const uploads2 = snap('files', 'uploads', '2026-11-03T00:00:00Z', ['/srv/uploads']);
const notes = snap('sqlite', 'notes', '2026-11-04T00:00:00Z', ['/srv/notes.db']);
const etc = snap('files', undefined, '2026-11-02T00:00:00Z', ['/etc']);
const all = [uploads1, uploads2, notes, etc];
const NOW = Date.parse('2026-11-05T00:00:00Z');

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof LifeboatError ? `${err.code}: ${err.message}` : String(err);
  }
  return undefined;
};

describe('pickForRestore', () => {
  it('refuses a bare "latest" when several sources share the repository, naming them', () => {
    expect(code(() => pickForRestore(all, 'latest', { now: NOW }))).toBe('AMBIGUOUS_SOURCE: "latest" is ambiguous: this repository holds 3 sources (files:/etc, files:uploads, sqlite:notes)');
    expect(pickForRestore([uploads1, uploads2], 'latest', { now: NOW })).toBe(uploads2);
  });

  it('picks the newest of the source named, by name, kind:name or path; at or before a time', () => {
    expect(pickForRestore(all, 'latest', { source: 'uploads', now: NOW })).toBe(uploads2);
    expect(pickForRestore(all, 'latest', { source: 'sqlite:notes', now: NOW })).toBe(notes);
    expect(pickForRestore(all, 'latest', { source: '/etc', now: NOW })).toBe(etc);
    expect(pickForRestore(all, 'latest', { path: '/srv/uploads/', now: NOW })).toBe(uploads2);
    expect(pickForRestore(all, 'latest', { source: 'uploads', time: new Date('2026-11-02T12:00:00Z'), now: NOW })).toBe(uploads1);
    expect(code(() => pickForRestore(all, 'latest', { source: 'uploads', time: new Date('2026-10-01T00:00:00Z'), now: NOW }))).toMatch(/^NOT_FOUND: no snapshot of source "uploads" at or before/);
    expect(code(() => pickForRestore(all, 'latest', { source: 'nope', now: NOW }))).toBe('NOT_FOUND: no snapshot of source "nope"');
  });

  it('refuses an id of another source, and a name two kinds share', () => {
    expect(code(() => pickForRestore(all, notes.id.slice(0, 8), { source: 'uploads', now: NOW }))).toBe(`USAGE: snapshot ${notes.id.slice(0, 8)} is of sqlite:notes, not of source "uploads"`);
    const twin = snap('sqlite', 'uploads', '2026-11-04T00:00:00Z');
    expect(code(() => snapshotsOf([...all, twin], { source: 'uploads' }))).toBe('AMBIGUOUS_SOURCE: several sources are called "uploads": files:uploads, sqlite:uploads');
    expect(snapshotsOf([...all, twin], { source: 'files:uploads' })).toEqual([uploads1, uploads2]);
  });
});
