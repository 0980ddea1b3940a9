/**
 * SQLite log segments without SQLite: names and ordering, merging, choosing the chain
 * a restore follows (also after a compaction that stopped half way), and compaction
 * of a generation in an in-memory repository, which must keep every transaction.
 */
import { describe, expect, it } from 'vitest';
import { compactGeneration } from '../../src/sources/sqlite/compact.js';
import { segmentsOf, transactionsAfter } from '../../src/sources/sqlite/history.js';
import { PageModel, firstDifference } from '../../src/sources/sqlite/page-model.js';
import {
  chainFrom,
  decodeSegment,
  encodeSegment,
  mergeSegments,
  parseSegmentName,
  segmentName,
  type Position,
  type Segment,
} from '../../src/sources/sqlite/segment.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';

const PAGE = 512;

/** A segment of `n` one-frame transactions from `start`, the i-th seen at times[i]. */
function segment(start: Position, times: number[]): Segment {
  const frameSize = 24 + PAGE;
  const frames = Buffer.alloc(times.length * frameSize);
  const commits = times.map((time, i) => {
    frames.writeUInt32BE(1 + (i % 3), i * frameSize); // page number
    frames.writeUInt32BE(3, i * frameSize + 4); // commit frame: database of 3 pages
    frames.fill(start.frame + i + 1, i * frameSize + 24, (i + 1) * frameSize);
    return { cycle: start.cycle, frame: start.frame + i + 1, time, end: (i + 1) * frameSize };
  });
  return {
    meta: {
      v: 1,
      pageSize: PAGE,
      start,
      end: { cycle: start.cycle, frame: start.frame + times.length },
      commits,
      tail: { salt1: 1, salt2: 2, checkpointSeq: 0, checksum: [3, 4] },
    },
    frames,
  };
}

describe('sqlite segments', () => {
  it('round-trips and names segments so that names sort in history order', () => {
    const a = segment({ cycle: 0, frame: 0 }, [1000, 2000]);
    const b = segment({ cycle: 0, frame: 2 }, [3000]);
    const c = segment({ cycle: 1, frame: 0 }, [4000]);
    const back = decodeSegment(encodeSegment(a), 'a');
    expect(back.meta).toEqual(a.meta);
    expect(back.frames.equals(a.frames)).toBe(true);
    const names = [c, a, b].map((s) => segmentName(s.meta)).sort();
    expect(names).toEqual([a, b, c].map((s) => segmentName(s.meta)));
    expect(parseSegmentName(segmentName(b.meta))).toMatchObject({ start: b.meta.start, end: b.meta.end, lastTime: 3000 });
    expect(() => decodeSegment(Buffer.from('nonsense!!!!!!'), 'x')).toThrow(/not a SQLite log segment/);
  });

  it('merges neighbours and refuses segments that do not join', () => {
    const a = segment({ cycle: 0, frame: 0 }, [1000, 2000]);
    const b = segment({ cycle: 0, frame: 2 }, [3000]);
    const m = mergeSegments([a, b]);
    expect(m.meta.start).toEqual(a.meta.start);
    expect(m.meta.end).toEqual(b.meta.end);
    expect(m.meta.commits.map((c) => c.time)).toEqual([1000, 2000, 3000]);
    expect(m.frames.equals(Buffer.concat([a.frames, b.frames]))).toBe(true);
    expect((m.meta.commits[2] as { end: number }).end).toBe(m.frames.length);
    expect(() => mergeSegments([a, segment({ cycle: 0, frame: 5 }, [1])])).toThrow(/do not join/);
  });

  it('follows the longest object at each point, from inside a segment, and reports gaps', () => {
    const n = (s: Segment) => parseSegmentName(segmentName(s.meta))!;
    const a = segment({ cycle: 0, frame: 0 }, [1, 2]);
    const b = segment({ cycle: 0, frame: 2 }, [3, 4]);
    const c = segment({ cycle: 0, frame: 4 }, [5]);
    const ab = mergeSegments([a, b]);
    // An interrupted compaction left ab beside its parts: the chain takes ab.
    expect(chainFrom({ cycle: 0, frame: 0 }, [n(a), n(b), n(ab), n(c)]).chain.map((x) => x.file)).toEqual([n(ab).file, n(c).file]);
    // A snapshot inside a segment starts in that segment.
    expect(chainFrom({ cycle: 0, frame: 3 }, [n(a), n(b), n(c)]).chain.map((x) => x.file)).toEqual([n(b).file, n(c).file]);
    const gap = chainFrom({ cycle: 0, frame: 0 }, [n(a), n(c)]);
    expect(gap.chain).toHaveLength(1);
    expect(gap.gapAt).toEqual({ cycle: 0, frame: 2 });
  });

  it('compacts finished minutes and hours into single objects, keeping every transaction', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const source = 'sqlite.unit';
    const gen = 'g1';
    const hour = 3_600_000;
    const t0 = Date.UTC(2026, 10, 21, 10, 0, 0);
    const all: number[] = [];
    let at: Position = { cycle: 0, frame: 0 };
    // Two hours of one-transaction-a-second segments, thinned to one every 20 s to keep the test fast.
    for (let t = t0; t < t0 + 2 * hour; t += 20_000) {
      const s = segment(at, [t]);
      await repo.putLog(source, gen, segmentName(s.meta), encodeSegment(s));
      all.push(t);
      at = s.meta.end;
    }
    const before = (await repo.listLogs(source)).length;
    expect(before).toBe(360);
    // Ten minutes into the third hour: both earlier hours are finished.
    const r = await compactGeneration(repo, source, gen, t0 + 2 * hour + 600_000);
    const after = await repo.listLogs(source);
    expect(after).toHaveLength(2);
    expect(r.merged).toBeGreaterThanOrEqual(before);
    const times: number[] = [];
    const names = after.map((l) => parseSegmentName(l.file)!);
    for (const n of chainFrom({ cycle: 0, frame: 0 }, names).chain) {
      const seg = decodeSegment((await repo.getLog(source, gen, n.file))!, n.file);
      times.push(...seg.meta.commits.map((c) => c.time));
    }
    expect(times).toEqual(all);
    // The current minute is never touched.
    const fresh = segment(at, [t0 + 2 * hour + 599_000]);
    const later = segment(fresh.meta.end, [t0 + 2 * hour + 600_500]);
    await repo.putLog(source, gen, segmentName(fresh.meta), encodeSegment(fresh));
    await repo.putLog(source, gen, segmentName(later.meta), encodeSegment(later));
    await compactGeneration(repo, source, gen, t0 + 2 * hour + 600_900);
    expect((await repo.listLogs(source)).map((l) => l.file)).toContain(segmentName(later.meta));
  });

  it('replays every transaction even when compaction merges and deletes the parts being read', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const source = 'sqlite.unit';
    const gen = 'g1';
    const parts: Segment[] = [];
    let at: Position = { cycle: 0, frame: 0 };
    for (let i = 0; i < 6; i++) {
      const s = segment(at, [1000 + 2 * i, 1001 + 2 * i]);
      await repo.putLog(source, gen, segmentName(s.meta), encodeSegment(s));
      parts.push(s);
      at = s.meta.end;
    }
    const names = segmentsOf(await repo.listLogs(source), gen);
    const seen: number[] = [];
    let merged = false;
    for await (const t of transactionsAfter(repo, source, gen, { cycle: 0, frame: 0 }, names, () => true)) {
      seen.push(...t.commits.map((c) => c.frame));
      if (!merged) {
        // A compactor merges everything and deletes the parts while the first is being applied.
        const all = mergeSegments(parts);
        await repo.putLog(source, gen, segmentName(all.meta), encodeSegment(all));
        for (const p of parts) await repo.store.delete(`logs/${source}/${gen}/${segmentName(p.meta)}`);
        merged = true;
      }
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('replays every transaction when its listing, taken while compaction ran, lacks both a deleted part and the merged object', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const source = 'sqlite.unit';
    const gen = 'g1';
    const parts: Segment[] = [];
    let at: Position = { cycle: 0, frame: 0 };
    for (let i = 0; i < 4; i++) {
      const s = segment(at, [1000 + 2 * i, 1001 + 2 * i]);
      await repo.putLog(source, gen, segmentName(s.meta), encodeSegment(s));
      parts.push(s);
      at = s.meta.end;
    }
    // The listing saw parts 0, 2 and 3; by the time it is read, parts 1 and 2 are one object.
    const listing = segmentsOf(await repo.listLogs(source), gen).filter((n) => n.file !== segmentName(parts[1]!.meta));
    const mid = mergeSegments(parts.slice(1, 3));
    await repo.putLog(source, gen, segmentName(mid.meta), encodeSegment(mid));
    for (const p of parts.slice(1, 3)) await repo.store.delete(`logs/${source}/${gen}/${segmentName(p.meta)}`);
    const seen: number[] = [];
    for await (const t of transactionsAfter(repo, source, gen, { cycle: 0, frame: 0 }, listing, () => true)) seen.push(...t.commits.map((c) => c.frame));
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // A gap that is really there is still reported, after the one fresh listing.
    await repo.store.delete(`logs/${source}/${gen}/${segmentName(mid.meta)}`);
    const gapped = async () => {
      for await (const _ of transactionsAfter(repo, source, gen, { cycle: 0, frame: 0 }, segmentsOf(await repo.listLogs(source), gen), () => true));
    };
    await expect(gapped()).rejects.toThrow(/has a gap after position 0\/2/);
  });

  it('models pages: transactions win over an older base arriving later, and differences are found', () => {
    const page = (fill: number) => Buffer.alloc(PAGE, fill);
    const frame = (pgno: number, dbPages: number, fill: number) => {
      const f = Buffer.alloc(24 + PAGE);
      f.writeUInt32BE(pgno, 0);
      f.writeUInt32BE(dbPages, 4);
      page(fill).copy(f, 24);
      return f;
    };
    const model = new PageModel(3);
    model.applyFrames(Buffer.concat([frame(2, 0, 9), frame(4, 4, 9)]), PAGE);
    model.applyBase(1, Buffer.concat([page(1), page(2), page(3)]), PAGE);
    model.baseDone();
    const live = new PageModel(4);
    live.applyBase(1, Buffer.concat([page(1), page(9), page(3), page(9)]), PAGE);
    live.baseDone();
    expect(firstDifference(model.view(), live.view())).toBeUndefined();
    const other = new PageModel(4);
    other.applyBase(1, Buffer.concat([page(1), page(9), page(7), page(9)]), PAGE);
    expect(firstDifference(model.view(), other.view())).toMatchObject({ page: 3 });
    model.applyFrames(frame(1, 2, 5), PAGE);
    expect(firstDifference(model.view(), live.view())?.reason).toMatch(/page count 2 stored, 4 live/);
  });
});
