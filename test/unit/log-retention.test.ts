/**
 * Log archives follow retention: with a point-in-time window only the window stays
 * replayable while older base backups keep what makes them consistent (PostgreSQL),
 * and SQLite segments before the window's base snapshot, or of generations with no
 * snapshot left, go. A generation that began after the run listed its snapshots (a
 * replicator holds no lock while it ships) keeps its segments.
 */
import { describe, expect, it } from 'vitest';
import { trimLogs } from '../../src/engine/retention/logs.js';
import { encodeSegment, segmentName, type Segment } from '../../src/sources/sqlite/segment.js';
import { Repository, PROGRAM_VERSION } from '../../src/repo/repository.js';
import type { Snapshot, SnapshotManifest } from '../../src/repo/snapshot/snapshot.js';
import { formatLsn, segmentName as walName } from '../../src/sources/postgres/wal.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { storeBase, storeSegments } from '../redis-history.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 9, 1);
const SEG = 16n * 1024n * 1024n;

function manifest(kind: string, name: string, time: number, consistency: Record<string, unknown>): SnapshotManifest {
  return {
    version: 1,
    time: new Date(time).toISOString(),
    hostname: 'h',
    username: 'u',
    paths: [`/${kind}/${name}`],
    tags: [],
    excludes: [],
    tree: '00'.repeat(32),
    source: { kind, name },
    consistency,
    summary: { filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirs: 0, totalBytes: 0, totalFiles: 0, addedBytes: 0, processedBytes: 0, errors: 0, durationMs: 0 },
    programVersion: PROGRAM_VERSION,
  };
}

/** A base backup's point as `pg backup` records it, with the LSNs and stop time given. */
function pgPoint(p: { startLsn: string; stopLsn: string; stopTime: string }): Record<string, unknown> {
  return {
    ...p,
    timeline: 1,
    systemId: '7000000000000000000',
    pgVersion: 150010,
    pgMajor: 15,
    walSegSize: Number(SEG),
    dataDirectory: '/var/lib/postgresql/15/main',
    startTime: p.stopTime,
    backupLabel: '',
    tablespaceMap: '',
  };
}

async function snapshots(repo: Repository, manifests: SnapshotManifest[]): Promise<Snapshot[]> {
  for (const m of manifests) await repo.saveSnapshot(m);
  return repo.listSnapshots();
}

describe('log retention', () => {
  it('PostgreSQL: a 7-day window keeps WAL from the window base on, and each older base its own span', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const base = (day: number, start: number, stop: number) =>
      manifest('postgres', 'main', T0 + day * DAY, pgPoint({
        startLsn: formatLsn(BigInt(start) * SEG),
        stopLsn: formatLsn(BigInt(stop) * SEG + 100n),
        stopTime: new Date(T0 + day * DAY).toISOString(),
      }));
    const snaps = await snapshots(repo, [base(1, 1, 2), base(15, 10, 11), base(30, 20, 21)]);
    for (let seg = 1; seg <= 25; seg++) await repo.putLog('postgres.main', '00000001', walName(1, BigInt(seg)), Buffer.from(`wal ${seg}`));
    await repo.putLog('postgres.main', '00000002', '00000002.history', Buffer.from('history'));

    const all = await trimLogs(repo, snaps, snaps, { dryRun: true, busy: false, now: T0 + 31 * DAY });
    expect(all).toEqual([{ kind: 'postgres', source: 'main', removed: 0, keptFrom: formatLsn(SEG) }]);

    const [r] = await trimLogs(repo, snaps, snaps, { dryRun: false, busy: false, pitrWindowMs: 7 * DAY, now: T0 + 31 * DAY });
    expect(r).toMatchObject({ removed: 7, keptFrom: formatLsn(10n * SEG) });
    const left = (await repo.listLogs('postgres.main')).map((l) => l.file);
    const segs = left.filter((f) => f.length === 24).map((f) => parseInt(f.slice(16), 16));
    expect(segs).toEqual([1, 2, ...Array.from({ length: 16 }, (_, i) => i + 10)]);
    expect(left).toContain('00000002.history');
    const busy = await trimLogs(repo, snaps, snaps, { dryRun: false, busy: true, pitrWindowMs: DAY, now: T0 + 31 * DAY });
    expect(busy[0]?.skipped).toMatch(/another process/);
  });

  it('SQLite: segments before the window base go, and generations without snapshots go whole', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const seg = (start: number, n: number, time: number): Segment => ({
      meta: {
        v: 1,
        pageSize: 512,
        start: { cycle: 0, frame: start },
        end: { cycle: 0, frame: start + n },
        commits: Array.from({ length: n }, (_, i) => ({ cycle: 0, frame: start + i + 1, time, end: 0 })),
        tail: { salt1: 0, salt2: 0, checkpointSeq: 0, checksum: [0, 0] },
      },
      frames: Buffer.alloc(0),
    });
    for (let i = 0; i < 10; i++) {
      const s = seg(i * 10, 10, T0 + i * DAY);
      await repo.putLog('sqlite.mem', 'gen1', segmentName(s.meta), encodeSegment(s));
    }
    const orphan = seg(0, 5, T0);
    await repo.putLog('sqlite.mem', 'gen0', segmentName(orphan.meta), encodeSegment(orphan));
    const snap = (day: number, frame: number) => manifest('sqlite', 'mem', T0 + day * DAY, { file: '/m.db', journalMode: 'wal', pageSize: 512, pages: 1, generation: 'gen1', position: { cycle: 0, frame } });
    const snaps = await snapshots(repo, [snap(0, 0), snap(5, 50), snap(8, 80)]);
    // A 3-day window at day 10: the base is the snapshot of day 5 (frame 50).
    const [r] = await trimLogs(repo, snaps, snaps, { dryRun: false, busy: false, pitrWindowMs: 3 * DAY, now: T0 + 10 * DAY });
    expect(r).toMatchObject({ kind: 'sqlite', source: 'mem', removed: 6, keptFrom: 'gen1@0/50' });
    const left = await repo.listLogs('sqlite.mem');
    expect(left.every((l) => l.timeline === 'gen1')).toBe(true);
    expect(left).toHaveLength(5);
  });

  it('a consistency point that does not validate stops the trim instead of steering it', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const good = manifest('postgres', 'main', T0, pgPoint({ startLsn: formatLsn(SEG), stopLsn: formatLsn(2n * SEG), stopTime: new Date(T0).toISOString() }));
    // A forged manifest whose start LSN is not an LSN: a cast would have read it as segment 0 or NaN.
    const forged = manifest('postgres', 'main', T0 + DAY, { ...pgPoint({ startLsn: formatLsn(SEG), stopLsn: formatLsn(2n * SEG), stopTime: new Date(T0 + DAY).toISOString() }), startLsn: 'everything' });
    await repo.putLog('postgres.main', '00000001', walName(1, 1n), Buffer.from('wal 1'));
    const snaps = await snapshots(repo, [good, forged]);
    await expect(trimLogs(repo, snaps, snaps, { dryRun: false, busy: false, now: T0 + 2 * DAY })).rejects.toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/postgres consistency point is not valid \(startLsn: not an LSN\)/) });
    expect(await repo.listLogs('postgres.main')).toHaveLength(1);
  });

  it('keeps the segments of a generation whose first snapshot was stored after the snapshots judged by were listed', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const seg = (start: number, n: number): Segment => ({
      meta: {
        v: 1,
        pageSize: 512,
        start: { cycle: 0, frame: start },
        end: { cycle: 0, frame: start + n },
        commits: Array.from({ length: n }, (_, i) => ({ cycle: 0, frame: start + i + 1, time: T0, end: 0 })),
        tail: { salt1: 0, salt2: 0, checkpointSeq: 0, checksum: [0, 0] },
      },
      frames: Buffer.alloc(0),
    });
    const sqliteSnap = (generation: string, day: number) => manifest('sqlite', 'mem', T0 + day * DAY, { file: '/m.db', journalMode: 'wal', pageSize: 512, pages: 1, generation, position: { cycle: 0, frame: 0 } });
    await repo.saveSnapshot(sqliteSnap('gen1', 0));
    await repo.putLog('sqlite.mem', 'gen1', segmentName(seg(0, 5).meta), encodeSegment(seg(0, 5)));
    await storeBase(repo, 'cache', Buffer.from('REDIS0011 old'), { offset: 100, generation: 'c'.repeat(20) }, new Date(T0));
    await storeSegments(repo, 'cache', 'c'.repeat(20), 100, [{ cmds: [['SET', 'a', 1]], time: T0 }]);
    const judged = await repo.listSnapshots();
    // Every snapshot judged by is forgotten; then a replicator of each starts a new generation.
    await repo.saveSnapshot(sqliteSnap('gen2', 1));
    await repo.putLog('sqlite.mem', 'gen2', segmentName(seg(0, 3).meta), encodeSegment(seg(0, 3)));
    await storeBase(repo, 'cache', Buffer.from('REDIS0011 new'), { offset: 500, generation: 'd'.repeat(20) }, new Date(T0 + DAY));
    await storeSegments(repo, 'cache', 'd'.repeat(20), 500, [{ cmds: [['SET', 'b', 2]], time: T0 + DAY }]);
    const r = await trimLogs(repo, judged, [], { dryRun: false, busy: false, now: T0 + 2 * DAY });
    expect(r.map((x) => [x.kind, x.removed])).toEqual([['sqlite', 1], ['redis', 1]]);
    expect((await repo.listLogs('sqlite.mem')).map((l) => l.timeline)).toEqual(['gen2']);
    expect((await repo.listLogs('redis.cache')).map((l) => l.timeline)).toEqual(['d'.repeat(20)]);
  });

  it('removes no generation without a base while a snapshot stored since cannot be read', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const s = manifest('sqlite', 'mem', T0, { file: '/m.db', journalMode: 'wal', pageSize: 512, pages: 1, generation: 'gen1', position: { cycle: 0, frame: 0 } });
    const judged = await snapshots(repo, [s]);
    await repo.putLog('sqlite.mem', 'gen1', '0000000000000000-0000000000000005-000000000001', Buffer.from('x'));
    await repo.store.put(`snapshots/${'ab'.repeat(32)}`, Buffer.from('not a snapshot'));
    const [r] = await trimLogs(repo, judged, [], { dryRun: false, busy: false, now: T0 + DAY });
    expect(r).toMatchObject({ kind: 'sqlite', removed: 0 });
    expect(await repo.listLogs('sqlite.mem')).toHaveLength(1);
  });
});

