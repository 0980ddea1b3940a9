/**
 * forget's history guard: keep rules that a flood of fresh snapshots would satisfy
 * must not silently wipe older history; ordinary daily retention is never refused.
 */
import { describe, expect, it } from 'vitest';
import { forget, recentSince } from '../../src/engine/retention/forget.js';
import { isLifeboatError } from '../../src/errors.js';
import { Repository } from '../../src/repo/repository.js';
import type { SnapshotManifest } from '../../src/repo/snapshot/snapshot.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 2, 9, 30);

function manifest(time: number, n: number): SnapshotManifest {
  return {
    version: 1,
    time: new Date(time).toISOString(),
    hostname: 'h',
    username: 'u',
    paths: ['/data'],
    tags: [],
    excludes: [],
    tree: `${n}`.padStart(64, '0'),
    source: { kind: 'files' },
    summary: { filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirs: 0, totalBytes: 0, totalFiles: 0, addedBytes: 0, processedBytes: 0, errors: 0, durationMs: 0 },
    programVersion: 'test',
  };
}

async function repoWith(times: number[]): Promise<Repository> {
  const repo = await Repository.init(new MemoryStore(), 'pw');
  for (const [i, t] of times.entries()) await repo.saveSnapshot(manifest(t, i));
  return repo;
}

async function refusal(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('the history guard', () => {
  it('refuses a forget that keeps only a burst of fresh snapshots, writes nothing, and --force proceeds', async () => {
    const real = [40, 30, 20, 10].map((d) => NOW - d * DAY);
    const burst = Array.from({ length: 5 }, (_, i) => NOW - i * 60_000);
    const repo = await repoWith([...real, ...burst]);
    const err = await refusal(forget(repo, { policy: { last: 5 }, now: NOW }));
    expect(isLifeboatError(err, 'HISTORY_AT_RISK')).toBe(true);
    expect((err as Error).message).toMatch(/would remove all snapshots of host h, paths \/data older than 2026-11-25 \(4\), keeping only the last 7 days; nothing was removed/);
    expect(await repo.listSnapshots()).toHaveLength(9);
    const dry = await forget(repo, { policy: { last: 5 }, now: NOW, dryRun: true });
    expect(dry.atRisk).toHaveLength(1);
    expect(await repo.listSnapshots()).toHaveLength(9);
    const forced = await forget(repo, { policy: { last: 5 }, now: NOW, force: true });
    expect(forced.removed).toHaveLength(4);
    expect(await repo.listSnapshots()).toHaveLength(5);
  });

  it('refuses a forget that would remove every snapshot of a group (backups stopped, --keep-within from now)', async () => {
    const repo = await repoWith([NOW - 3 * DAY, NOW - 2 * DAY]);
    const err = await refusal(forget(repo, { policy: { within: { years: 0, months: 0, days: 1, ms: 0 } }, now: NOW }));
    expect(isLifeboatError(err, 'HISTORY_AT_RISK')).toBe(true);
    expect((err as Error).message).toMatch(/would remove every one of the 2 snapshots/);
  });

  it('lets --keep-daily 7, run every day, drop its eighth day, and --keep-daily 7 --keep-weekly 4 drop years of history', async () => {
    const at2 = Date.UTC(2026, 11, 2, 2);
    const repo = await repoWith(Array.from({ length: 8 }, (_, i) => at2 - i * DAY));
    expect(recentSince(NOW)).toBe(Date.UTC(2026, 10, 25));
    const r = await forget(repo, { policy: { daily: 7 }, now: NOW });
    expect(r.removed).toHaveLength(1);
    const long = await repoWith(Array.from({ length: 400 }, (_, i) => at2 - i * DAY));
    const l = await forget(long, { policy: { daily: 7, weekly: 4 }, now: NOW });
    expect(l.removed.length).toBeGreaterThan(380);
    expect(l.atRisk).toEqual([]);
  });

  it('never guards snapshots removed by id', async () => {
    const repo = await repoWith([NOW - 30 * DAY]);
    const [only] = await repo.listSnapshots();
    expect((await forget(repo, { ids: [only!.id], now: NOW })).removed).toEqual([only!.id]);
  });
});
