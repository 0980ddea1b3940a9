/**
 * Which group points forget and prune drop (engine/group/points-keep.ts), on the narrow
 * slice of a repository it reads: the point-in-time window rule for log members, which
 * the CLI tests do not reach, and unreadable points left alone, but not a store that fails.
 */
import { describe, expect, it } from 'vitest';
import { copyGroupPoints, trimGroupPoints } from '../../src/engine/group/points-keep.js';
import type { Snapshot } from '../../src/repo/snapshot/snapshot.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-01T00:00:00Z');
const at = (daysAgo: number) => new Date(NOW - daysAgo * DAY).toISOString();

function fakeRepo(points: Record<string, string>, snaps: Array<Pick<Snapshot, 'id' | 'time' | 'source'>>) {
  const store = new Map(Object.entries(points).map(([id, body]) => [`logs/group.g/points/${id}`, body]));
  return {
    deleted: [] as string[],
    store: {
      async *list(prefix: string) {
        for (const key of store.keys()) if (key.startsWith(prefix)) yield { key, size: 1 };
      },
      async delete(key: string) {
        store.delete(key);
        this.owner.deleted.push(key);
      },
      owner: undefined as unknown as { deleted: string[] },
    },
    async getLog(source: string, timeline: string, file: string) {
      const b = store.get(`logs/${source}/${timeline}/${file}`);
      return b === undefined ? undefined : Buffer.from(b);
    },
    async listSnapshots() {
      return snaps as Snapshot[];
    },
  };
}

const point = (id: string, daysAgo: number, snapshot: string) =>
  JSON.stringify({ v: 1, group: 'g', id, time: at(daysAgo), hold_ms: 1, max_hold_ms: 200, frozen: true, members: [
    { name: 'pg', kind: 'postgres', position: { kind: 'postgres', restore_point: 'x', lsn: '0/1' } },
    { name: 'docs', kind: 'files', position: { kind: 'files', method: 'frozen-copy', snapshot } },
  ] });

describe('trimGroupPoints', () => {
  const snaps = [
    { id: 'base30', time: at(30), source: { kind: 'postgres', name: 'pg' } },
    { id: 'base8', time: at(8), source: { kind: 'postgres', name: 'pg' } },
    { id: 'base1', time: at(1), source: { kind: 'postgres', name: 'pg' } },
    ...[20, 5, 0.5].map((d) => ({ id: `f${d}`, time: at(d), source: { kind: 'files', name: 'docs' } })),
  ];

  it('keeps every point a base at or before it can reach without a window, drops those whose snapshot is gone', async () => {
    const repo = fakeRepo({ p20: point('p20', 20, 'f20'), p5: point('p5', 5, 'f5'), old: point('old', 40, 'f20'), gone: point('gone', 0.5, 'nope'), junk: '{not json' }, snaps);
    repo.store.owner = repo;
    const r = await trimGroupPoints(repo as never, { dryRun: false, now: NOW });
    expect(r).toEqual([{ group: 'g', kept: 3, removed: [
      { id: 'old', reason: 'no snapshot of pg remains at or before the point' },
      { id: 'gone', reason: 'the snapshot of docs (nope) is gone' },
    ] }]);
    expect(repo.deleted.sort()).toEqual(['logs/group.g/points/gone', 'logs/group.g/points/old']);
  });

  it('with a 7-day window drops points older than the window base (the newest base before the window)', async () => {
    const repo = fakeRepo({ p20: point('p20', 20, 'f20'), p5: point('p5', 5, 'f5') }, snaps);
    repo.store.owner = repo;
    const r = await trimGroupPoints(repo as never, { dryRun: true, now: NOW, pitrWindowMs: 7 * DAY });
    expect(r).toEqual([{ group: 'g', kept: 1, removed: [{ id: 'p20', reason: `the log of pg is kept only from ${at(8)} on` }] }]);
    expect(repo.deleted).toEqual([]);
  });

  it('counts the snapshots this run removes as gone, before they are deleted (a dry run)', async () => {
    const repo = fakeRepo({ p5: point('p5', 5, 'f5') }, snaps);
    repo.store.owner = repo;
    const r = await trimGroupPoints(repo as never, { dryRun: true, now: NOW, removed: new Set(['f5']) });
    expect(r[0]!.removed.map((x) => x.id)).toEqual(['p5']);
  });

  it('leaves a point that does not parse alone, but fails when the store fails reading one', async () => {
    const repo = fakeRepo({ p1: 'not json' }, []);
    repo.store.owner = repo;
    const to = { listSnapshots: async () => [], putLog: async () => 'stored' as const };
    expect(await copyGroupPoints(repo as never, to as never, [])).toBe(0);
    const failing = { ...repo, getLog: async () => Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })) };
    await expect(copyGroupPoints(failing as never, to as never, [])).rejects.toThrow(/ECONNRESET/);
  });
});

