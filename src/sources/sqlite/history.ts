/**
 * Reading a generation's history back from the repository: its transactions after a
 * position, segment by segment (restore replays them into a file, the replicator into
 * its page model), and the record a replicator leaves when it finds that a generation
 * no longer reproduces the database (`divergedName`): from then on the generation is
 * trusted only up to the last position that was verified against the live file.
 */
import type { Repository } from '../../repo/repository.js';
import { LifeboatError } from '../../errors.js';
import { FRAME_HEADER_SIZE, frameInfo } from './wal.js';
import { logSource } from './backup.js';
import { chainFrom, comparePos, decodeSegment, parseSegmentName, type Commit, type Position, type SegmentName, type WalTail } from './segment.js';
import { requireSqlitePoint, sqlitePoint } from './point.js';
import { relisting, vanished } from '../../engine/txn-history.js';

/** Object name of the divergence record in a generation's log folder (not a segment name). */
export const DIVERGED = 'diverged';

export interface DivergedRecord {
  v: 1;
  detectedAt: string;
  reason: string;
  /** The newest position verified against the live database; nothing after it is trusted. */
  verified: Position | null;
}

export async function recordDivergence(repo: Pick<Repository, 'putLog'>, source: string, generation: string, rec: DivergedRecord): Promise<void> {
  await repo.putLog(source, generation, DIVERGED, Buffer.from(JSON.stringify(rec)), { replace: true });
}

/** Where the generation stops being trusted, or undefined when nothing was ever found wrong with it. */
export async function trustedUntil(repo: Pick<Repository, 'getLog'>, source: string, generation: string): Promise<Position | null | undefined> {
  const data = await repo.getLog(source, generation, DIVERGED);
  if (!data) return undefined;
  try {
    return (JSON.parse(data.toString('utf8')) as DivergedRecord).verified;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `the divergence record of generation ${generation} of ${source} is unreadable`, { cause: err });
  }
}

/** The segment names of one generation, from a listing of the source's logs. */
export function segmentsOf(logs: ReadonlyArray<{ timeline: string; file: string }>, generation: string): SegmentName[] {
  return logs
    .filter((l) => l.timeline === generation)
    .map((l) => parseSegmentName(l.file))
    .filter((n) => n !== undefined);
}

export interface Replayed {
  /** The frames of the transactions kept from one segment, back to back. */
  frames: Buffer;
  pageSize: number;
  commits: Commit[];
}

/**
 * The generation's transactions after `from`, as long as `keep` says so, in order and
 * one segment at a time (memory: one segment). A segment that vanishes while it is read
 * (compaction merged it into a larger object and deleted it) is found again in a fresh
 * listing, and so is a gap once, before it is reported. Throws when the chain has a gap before the history `keep` asks for ends (a gap at
 * or after `wantedUntil`, when given, is after it).
 */
export async function* transactionsAfter(
  repo: Pick<Repository, 'getLog' | 'listLogs'>,
  source: string,
  generation: string,
  from: Position,
  names: readonly SegmentName[],
  keep: (c: Commit) => boolean,
  /** Where the history wanted ends, when the caller knows: a gap after it is not this reader's business. */
  wantedUntil?: Position,
): AsyncGenerator<Replayed> {
  let at = from;
  let listing = names;
  let gapRelisted = false;
  for (let relisted = 0; ; ) {
    const { chain, gapAt } = chainFrom(at, listing);
    let gone = false;
    for (const n of chain) {
      const data = await repo.getLog(source, generation, n.file);
      if (!data) {
        if (++relisted > 3) throw vanished(source); // compacted away four times in a row: BUSY, run again
        listing = segmentsOf(await repo.listLogs(source), generation);
        gone = true;
        break;
      }
      const seg = decodeSegment(data, n.file);
      const frameSize = FRAME_HEADER_SIZE + seg.meta.pageSize;
      const commits: Commit[] = [];
      let start = -1;
      let end = 0;
      let stop = false;
      let offset = 0;
      for (const c of seg.meta.commits) {
        const begin = offset;
        offset = c.end;
        if (comparePos(c, at) <= 0) continue;
        if (!keep(c)) {
          stop = true;
          break;
        }
        if (start < 0) start = begin;
        end = c.end;
        commits.push(c);
      }
      if (commits.length > 0) {
        yield { frames: seg.frames.subarray(start, end), pageSize: frameSize - FRAME_HEADER_SIZE, commits };
        at = commits[commits.length - 1] as Commit;
      }
      if (stop) return;
      at = comparePos(seg.meta.end, at) > 0 ? seg.meta.end : at;
    }
    if (gone) continue;
    if (gapAt && !(wantedUntil && comparePos(gapAt, wantedUntil) >= 0) && !gapRelisted) {
      // A listing taken while compaction ran can miss both a part it deleted and the
      // merged object it wrote (a directory read or a paged listing sees entries added
      // or removed meanwhile, or not): one fresh listing before calling it a gap.
      gapRelisted = true;
      listing = segmentsOf(await repo.listLogs(source), generation);
      continue;
    }
    if (gapAt && !(wantedUntil && comparePos(gapAt, wantedUntil) >= 0)) {
      throw new LifeboatError('CORRUPT', `generation ${generation} of ${source} has a gap after position ${gapAt.cycle}/${gapAt.frame}`, {
        hint: 'a log segment is missing; restore to an earlier time, or run `lifeboat check`',
      });
    }
    return;
  }
}

/** Where a generation's stored history ends. */
export interface GenerationEnd {
  generation: string;
  position: Position;
  /** The WAL cycle and checksum there, for a restarted replicator to check it may continue. */
  tail: WalTail;
  /** Database size in pages there. */
  pages: number;
  /** The number of the last transaction stored (segment.ts's Commit.seq): 0 with none yet, undefined for history written without numbers. */
  seq?: number;
}

/**
 * Where the newest generation of database `name` ends: its last segment's end, or its
 * newest snapshot. Undefined when there is none, or it cannot be continued (a gap, a
 * divergence record).
 */
export function generationEnd(repo: Repository, name: string): Promise<GenerationEnd | undefined> {
  // A last segment merged away by compaction meanwhile is found in a fresh listing (not taken for "none").
  return relisting(() => generationEndOnce(repo, name));
}

async function generationEndOnce(repo: Repository, name: string): Promise<GenerationEnd | undefined> {
  const source = logSource(name);
  const snaps = (await repo.listSnapshots()).filter(
    (s) => s.source.kind === 'sqlite' && s.source.name === name && typeof sqlitePoint(s)?.generation === 'string',
  );
  const newest = snaps.sort((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
  if (!newest) return undefined;
  const c = requireSqlitePoint(newest);
  const gen = c.generation as string;
  let logs = await repo.listLogs(source);
  let { chain, gapAt } = chainFrom(c.position as Position, segmentsOf(logs, gen));
  if (gapAt) {
    // A listing taken while compaction ran can miss a deleted part and the merged object: look once more before starting a new generation.
    logs = await repo.listLogs(source);
    ({ chain, gapAt } = chainFrom(c.position as Position, segmentsOf(logs, gen)));
  }
  if (logs.some((l) => l.timeline === gen && l.file === DIVERGED)) return undefined;
  const last = chain[chain.length - 1];
  if (gapAt) return undefined;
  if (!last) {
    if (!c.wal) return undefined;
    const start = snaps.map((s) => sqlitePoint(s)).filter((p) => p?.generation === gen && p.position).every((p) => comparePos(p?.position as Position, c.position as Position) === 0);
    const seq = await seqAt(repo, source, gen, segmentsOf(logs, gen), c.position as Position, start);
    return { generation: gen, position: c.position as Position, tail: c.wal, pages: c.pages, ...(seq !== undefined ? { seq } : {}) };
  }
  const data = await repo.getLog(source, gen, last.file);
  if (!data) throw vanished(source);
  const seg = decodeSegment(data, last.file);
  const pages = frameInfo(seg.frames, seg.frames.length - FRAME_HEADER_SIZE - seg.meta.pageSize).dbPages;
  const seq = seg.meta.commits[seg.meta.commits.length - 1]?.seq;
  return { generation: gen, position: seg.meta.end, tail: seg.meta.tail, pages, ...(seq !== undefined ? { seq } : {}) };
}

/**
 * The number of the last transaction stored at or before `at`, a position where no
 * segment starts past (the newest snapshot): 0 when the generation has shipped
 * nothing yet, the number in the segment ending there, undefined when unknown.
 */
async function seqAt(repo: Pick<Repository, 'getLog'>, source: string, gen: string, names: readonly SegmentName[], at: Position, atStart: boolean): Promise<number | undefined> {
  // No segment at all: nothing was shipped yet when every snapshot sits at the start;
  // otherwise retention removed them, and the count is lost (readers count instead).
  if (names.length === 0) return atStart ? 0 : undefined;
  const ending = names.filter((n) => comparePos(n.end, at) === 0).sort((a, b) => comparePos(a.start, b.start))[0];
  if (!ending) return undefined;
  const data = await repo.getLog(source, gen, ending.file);
  // Merged away meanwhile: a fresh listing finds it (undefined would number the rest of the generation no more).
  if (!data) throw vanished(source);
  return decodeSegment(data, ending.file).meta.commits.at(-1)?.seq;
}
