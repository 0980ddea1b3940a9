/**
 * `lifeboat copy` carries the log archives of the snapshots it copies, as each kind
 * names them (its `log.sources`): a PostgreSQL source's archived and streamed WAL, a
 * SQLite source's frames; a files source has none, and another source's log that no
 * copied snapshot belongs to stays behind. Segments that compaction in the source merges
 * away between the copy's listing and its reads are carried as the merged object, not
 * skipped (the copy's history would have a gap).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { copySnapshots } from '../../src/engine/copy/copy.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { compactGeneration } from '../../src/sources/sqlite/compact.js';
import { chainFrom, encodeSegment, parseSegmentName, segmentName, type Segment } from '../../src/sources/sqlite/segment.js';

/** n one-frame transactions of a 512-byte page from `start` (cycle 0). */
function segment(start: number, n: number): Segment {
  const size = 24 + 512;
  return {
    meta: {
      v: 1,
      pageSize: 512,
      start: { cycle: 0, frame: start },
      end: { cycle: 0, frame: start + n },
      commits: Array.from({ length: n }, (_, i) => ({ cycle: 0, frame: start + i + 1, time: 1000 + start + i, end: (i + 1) * size })),
      tail: { salt1: 1, salt2: 2, checkpointSeq: 0, checksum: [3, 4] },
    },
    frames: Buffer.alloc(n * size, start + 1),
  };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-copy-logs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('copy and log archives', () => {
  it('copies the logs each copied source\'s kind names, and only those', async () => {
    writeFileSync(path.join(dir, 'data'), 'some data\n');
    const from = await Repository.init(new MemoryStore(), 'pw');
    const to = await Repository.init(new MemoryStore(), 'pw2');
    await backup(from, { paths: [dir], source: { kind: 'files', name: 'uploads' } });
    await backup(from, { paths: [dir], source: { kind: 'postgres', name: 'main' } });
    await backup(from, { paths: [dir], source: { kind: 'sqlite', name: 'notes' } });
    await from.putLog('postgres.main', '00000001', '000000010000000000000001', Buffer.from('archived wal'));
    await from.putLog('postgres.main~stream', '00000001', '000000010000000000000002', Buffer.from('streamed wal'));
    await from.putLog('sqlite.notes', 'gen1', 'segment-1', Buffer.from('frames'));
    // No snapshot of this database: its log is not the copy's business.
    await from.putLog('sqlite.other', 'gen1', 'segment-1', Buffer.from('frames of another'));

    const r = await copySnapshots(from, to, { snapshots: [] });
    expect(r.copied).toHaveLength(3);
    expect(r.logs).toBe(3);
    const files = async (source: string) => (await to.listLogs(source)).map((l) => `${l.timeline}/${l.file}`);
    expect(await files('postgres.main')).toEqual(['00000001/000000010000000000000001']);
    expect(await files('postgres.main~stream')).toEqual(['00000001/000000010000000000000002']);
    expect(await files('sqlite.notes')).toEqual(['gen1/segment-1']);
    expect(await files('sqlite.other')).toEqual([]);
    expect(Buffer.from((await to.getLog('sqlite.notes', 'gen1', 'segment-1')) as Uint8Array).toString()).toBe('frames');
  });

  it('carries segments compaction merged away between its listing and its reads as the merged object', async () => {
    writeFileSync(path.join(dir, 'data'), 'some data\n');
    const real = await Repository.init(new MemoryStore(), 'pw');
    const to = await Repository.init(new MemoryStore(), 'pw2');
    await backup(real, { paths: [dir], source: { kind: 'sqlite', name: 'notes' } });
    for (const seg of [segment(0, 3), segment(3, 4), segment(7, 2)]) await real.putLog('sqlite.notes', 'gen1', segmentName(seg.meta), encodeSegment(seg));
    let compacted = 0;
    // Another process compacts the source repository just as the copy reads its first segment.
    const from = new Proxy(real, {
      get(target, prop) {
        if (prop === 'getLog') {
          return async (source: string, timeline: string, file: string) => {
            if (source === 'sqlite.notes' && compacted === 0) compacted = (await compactGeneration(target, source, timeline, Date.now() + 365 * 86_400_000)).merged;
            return target.getLog(source, timeline, file);
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const r = await copySnapshots(from, to, { snapshots: [] });
    expect(compacted).toBe(3);
    expect(r.logs).toBeGreaterThan(0);
    const names = (await to.listLogs('sqlite.notes')).map((l) => parseSegmentName(l.file)!);
    const { chain, gapAt } = chainFrom({ cycle: 0, frame: 0 }, names);
    expect(gapAt).toBeUndefined();
    expect(chain.at(-1)?.end).toEqual({ cycle: 0, frame: 9 });
  });

  it('carries a segment its first listing missed (taken while compaction ran) without any read failing', async () => {
    writeFileSync(path.join(dir, 'data'), 'some data\n');
    const real = await Repository.init(new MemoryStore(), 'pw');
    const to = await Repository.init(new MemoryStore(), 'pw2');
    await backup(real, { paths: [dir], source: { kind: 'sqlite', name: 'notes' } });
    const segs = [segment(0, 3), segment(3, 4)];
    for (const seg of segs) await real.putLog('sqlite.notes', 'gen1', segmentName(seg.meta), encodeSegment(seg));
    const missed = segmentName(segs[1]!.meta);
    let lists = 0;
    const from = new Proxy(real, {
      get(target, prop) {
        if (prop === 'listLogs') return async (source: string) => (source === 'sqlite.notes' && lists++ === 0 ? (await target.listLogs(source)).filter((l) => l.file !== missed) : target.listLogs(source));
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const r = await copySnapshots(from, to, { snapshots: [] });
    expect(r.logs).toBe(2);
    expect((await to.listLogs('sqlite.notes')).map((l) => l.file)).toContain(missed);
  });
});

