/**
 * Finding a live WAL position in stored SQLite history (locate.ts), with a fake of the
 * three repository calls it uses: compaction merging the listed segments into one
 * larger object between the listing and the reads must not make a stored commit look
 * missing (a group restore would refuse its point with ARCHIVE_BEHIND), nor make a
 * restarted replicator take its generation's end for "none".
 */
import { describe, expect, it } from 'vitest';
import { encodeSegment, mergeSegments, segmentName, type Commit, type Position, type Segment } from '../../src/sources/sqlite/segment.js';
import { locateWalPosition } from '../../src/sources/sqlite/locate.js';
import { generationEnd } from '../../src/sources/sqlite/history.js';
import { baseFor } from '../../src/sources/sqlite/restore.js';

const PAGE = 512;
const GEN = '0190000000000abcdef01';
const SALTS = { salt1: 11, salt2: 22 };

/** n one-frame transactions from `start`; frame i's header carries the salts and checksum (100+frame, 200+frame). */
function segment(start: Position, n: number): Segment {
  const frameSize = 24 + PAGE;
  const frames = Buffer.alloc(n * frameSize);
  const commits: Commit[] = [];
  for (let i = 0; i < n; i++) {
    const h = i * frameSize;
    const frame = start.frame + i + 1;
    frames.writeUInt32BE(2 + i, h);
    frames.writeUInt32BE(10, h + 4);
    frames.writeUInt32BE(SALTS.salt1, h + 8);
    frames.writeUInt32BE(SALTS.salt2, h + 12);
    frames.writeUInt32BE(100 + frame, h + 16);
    frames.writeUInt32BE(200 + frame, h + 20);
    commits.push({ cycle: start.cycle, frame, time: 1000 + frame, end: h + frameSize, seq: frame });
  }
  return {
    meta: { v: 1, pageSize: PAGE, start, end: { cycle: start.cycle, frame: start.frame + n }, commits, tail: { ...SALTS, checkpointSeq: 0, checksum: [100 + start.frame + n, 200 + start.frame + n] } },
    frames,
  };
}

/** The replicator's snapshot of source "app" in generation GEN, taken at `at`. */
function snapshotAt(at: Record<string, unknown> = { position: { cycle: 0, frame: 0 } }) {
  return {
    id: 'f'.repeat(64),
    time: new Date(500).toISOString(),
    source: { kind: 'sqlite', name: 'app' },
    consistency: { file: 'app.db', journalMode: 'wal', pageSize: PAGE, pages: 10, generation: GEN, ...at },
  };
}

/** A repository whose first read of a listed segment finds compaction done: the listed ones gone, one merged object in their place. */
function compactingRepo(parts: Segment[], at?: Record<string, unknown>) {
  let objects = new Map(parts.map((s) => [segmentName(s.meta), encodeSegment(s)]));
  let compacted = false;
  const snapshot = snapshotAt(at);
  let lists = 0;
  return {
    repo: {
      listSnapshots: async () => [snapshot],
      listLogs: async () => {
        lists++;
        return [...objects.keys()].map((file) => ({ timeline: GEN, file, size: 0 }));
      },
      getLog: async (_source: string, _gen: string, file: string) => {
        if (!compacted) {
          compacted = true;
          const merged = mergeSegments(parts);
          objects = new Map([[segmentName(merged.meta), encodeSegment(merged)]]);
        }
        return objects.get(file);
      },
    } as unknown as Parameters<typeof locateWalPosition>[0],
    lists: () => lists,
  };
}

describe('sqlite locate', () => {
  it('finds a stored commit although compaction merged the listed segments away before they were read', async () => {
    const { repo, lists } = compactingRepo([segment({ cycle: 0, frame: 0 }, 3), segment({ cycle: 0, frame: 3 }, 4)]);
    const at = await locateWalPosition(repo, 'app', { ...SALTS, frame: 5, checksum: [105, 205] });
    expect(at).toEqual({ generation: GEN, position: { cycle: 0, frame: 5 } });
    expect(lists()).toBe(2);
  });

  it('finds the generation\'s end although compaction merged its last segment away before it was read', async () => {
    const { repo, lists } = compactingRepo([segment({ cycle: 0, frame: 0 }, 3), segment({ cycle: 0, frame: 3 }, 4)]);
    expect(await generationEnd(repo as unknown as Parameters<typeof generationEnd>[0], 'app')).toMatchObject({ generation: GEN, position: { cycle: 0, frame: 7 } });
    expect(lists()).toBe(2);
  });

  it('finds the number of the last transaction where the newest snapshot sits, although compaction merged the segment ending there away', async () => {
    const wal = { ...SALTS, frame: 7, checksum: [107, 207], checkpointSeq: 0 };
    const { repo, lists } = compactingRepo([segment({ cycle: 0, frame: 0 }, 3), segment({ cycle: 0, frame: 3 }, 4)], { position: { cycle: 0, frame: 7 }, wal });
    expect(await generationEnd(repo as unknown as Parameters<typeof generationEnd>[0], 'app')).toMatchObject({ generation: GEN, position: { cycle: 0, frame: 7 }, seq: 7 });
    expect(lists()).toBe(2);
  });

  it('finds a commit, and the snapshot to replay to it from, when the first listing (taken while compaction ran) missed its segment', async () => {
    const parts = [segment({ cycle: 0, frame: 0 }, 3), segment({ cycle: 0, frame: 3 }, 4)];
    const objects = new Map(parts.map((p) => [segmentName(p.meta), encodeSegment(p)]));
    const snapshot = snapshotAt();
    let lists = 0;
    const repo = {
      listSnapshots: async () => [snapshot],
      // Every other listing misses the second segment.
      listLogs: async () => {
        const complete = lists++ % 2 === 1;
        return [...objects.keys()].filter((f) => complete || f !== segmentName(parts[1]!.meta)).map((file) => ({ timeline: GEN, file, size: 0 }));
      },
      getLog: async (_s: string, _g: string, file: string) => objects.get(file),
    } as unknown as Parameters<typeof locateWalPosition>[0];
    const at = await locateWalPosition(repo, 'app', { ...SALTS, frame: 5, checksum: [105, 205] });
    expect(at).toEqual({ generation: GEN, position: { cycle: 0, frame: 5 } });
    lists = 0;
    expect((await baseFor(repo, 'app', at!)).snapshot.id).toBe('f'.repeat(64));
  });

  it('still answers "not stored" for a commit no segment holds, and for a checksum that differs', async () => {
    const { repo } = compactingRepo([segment({ cycle: 0, frame: 0 }, 3)]);
    expect(await locateWalPosition(repo, 'app', { ...SALTS, frame: 9, checksum: [109, 209] })).toBeUndefined();
    const other = compactingRepo([segment({ cycle: 0, frame: 0 }, 3)]);
    expect(await locateWalPosition(other.repo, 'app', { ...SALTS, frame: 2, checksum: [1, 2] })).toBeUndefined();
  });
});
