/**
 * Where a live WAL position lies in the stored history. A consistency group records a
 * SQLite member's position as SQLite publishes it (the WAL cycle by its salts, the last
 * committed frame, the checksum chain there: engine/group/members.ts); the replicator
 * stores transactions as (generation, cycle, frame) (segment.ts). The two meet in the
 * stored frames themselves: every WAL frame header carries its cycle's salts and the
 * running checksum, so a stored commit frame with the same salts, number and checksum
 * is the very commit the position names, and the cycle count of that commit is where
 * the position lies in the generation.
 *
 * Segments are searched newest first (a point is usually recent); a segment ending in
 * the position's own cycle before its frame means the history does not reach it yet,
 * which ends the search early. A segment merged away by compaction between the listing
 * and its read makes the whole search start again from a fresh listing (at most 3 more
 * times, then BUSY), and "not there" is looked for in a second listing: skipping it, or
 * believing a listing taken while compaction ran, would report a stored commit as missing.
 */
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { logSource } from './names.js';
import { DIVERGED, segmentsOf, trustedUntil } from './history.js';
import { FRAME_HEADER_SIZE } from './wal.js';
import { sameCycle } from './wal-index.js';
import { comparePos, decodeSegment, type Position } from './segment.js';
import { sqlitePoint } from './point.js';
import { relisting, vanished } from '../../engine/txn-history.js';

/** A WAL position as SQLite publishes it in the wal-index. */
export interface WalPosition {
  salt1: number;
  salt2: number;
  frame: number;
  checksum: readonly [number, number];
}

export interface Located {
  generation: string;
  position: Position;
}

/** Segments read per generation before giving up: compaction keeps the count small, the search newest first. */
const MAX_SEGMENTS = 512;

type Repo = Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>;

/**
 * The generation and position of `at` in the stored history of database `name`, or
 * undefined when no stored commit (or replicator snapshot) is that position. Positions
 * past a generation's divergence record are not trusted and not found.
 */
export async function locateWalPosition(repo: Repo, name: string, at: WalPosition): Promise<Located | undefined> {
  // The snapshots once (a group's proof asks every half second); the log in each look, "not there" twice.
  const snaps = (await repo.listSnapshots()).filter((s) => s.source.kind === 'sqlite' && s.source.name === name);
  return relisting(() => locateIn(repo, name, snaps, at), (found) => found === undefined);
}

async function locateIn(repo: Repo, name: string, snaps: Snapshot[], at: WalPosition): Promise<Located | undefined> {
  const source = logSource(name);
  const logs = await repo.listLogs(source);
  // Generations newest first, by their newest snapshot.
  const newest = new Map<string, number>();
  for (const s of snaps) {
    const gen = sqlitePoint(s)?.generation;
    if (gen) newest.set(gen, Math.max(newest.get(gen) ?? 0, Date.parse(s.time)));
  }
  const gens = [...newest.entries()].sort((a, b) => b[1] - a[1]).map(([g]) => g);
  for (const generation of gens) {
    const found = inSnapshots(snaps, generation, at) ?? (await inSegments(repo, source, generation, logs, at));
    if (!found) continue;
    if (logs.some((l) => l.timeline === generation && l.file === DIVERGED)) {
      const trusted = await trustedUntil(repo, source, generation);
      if (trusted === null || (trusted !== undefined && comparePos(found, trusted) > 0)) continue;
    }
    return { generation, position: found };
  }
  return undefined;
}

/** A replicator snapshot taken exactly at `at` (its image is the position). */
function inSnapshots(snaps: Awaited<ReturnType<Repo['listSnapshots']>>, generation: string, at: WalPosition): Position | undefined {
  for (const s of snaps) {
    const c = sqlitePoint(s);
    if (c?.generation !== generation || !c.wal || !c.position) continue;
    if (sameCycle(c.wal, at) && c.wal.frame === at.frame && (at.frame === 0 || (c.wal.checksum[0] === at.checksum[0] && c.wal.checksum[1] === at.checksum[1]))) return c.position;
  }
  return undefined;
}

async function inSegments(repo: Repo, source: string, generation: string, logs: ReadonlyArray<{ timeline: string; file: string }>, at: WalPosition): Promise<Position | undefined> {
  const names = segmentsOf(logs, generation).sort((a, b) => comparePos(b.end, a.end) || comparePos(b.start, a.start));
  let read = 0;
  for (const n of names) {
    if (++read > MAX_SEGMENTS) return undefined;
    const data = await repo.getLog(source, generation, n.file);
    if (!data) throw vanished(source); // merged away meanwhile: a fresh listing names the larger object that holds it
    const seg = decodeSegment(data, n.file);
    const frameSize = FRAME_HEADER_SIZE + seg.meta.pageSize;
    for (const c of seg.meta.commits) {
      const h = c.end - frameSize; // the commit frame's header
      if (h < 0 || c.end > seg.frames.length) continue;
      const salts = { salt1: seg.frames.readUInt32BE(h + 8), salt2: seg.frames.readUInt32BE(h + 12) };
      if (!sameCycle(salts, at)) continue;
      // Frame 0 of a cycle: nothing committed in it yet, which is the end of the cycle before.
      if (at.frame === 0) return { cycle: c.cycle, frame: 0 };
      if (c.frame === at.frame && seg.frames.readUInt32BE(h + 16) === at.checksum[0] && seg.frames.readUInt32BE(h + 20) === at.checksum[1]) {
        return { cycle: c.cycle, frame: c.frame };
      }
    }
    // The newest stored history ends in the position's cycle, before it: not there yet.
    if (sameCycle(seg.meta.tail, at) && seg.meta.end.frame < at.frame && comparePos(seg.meta.end, names[0]?.end ?? seg.meta.end) === 0) return undefined;
  }
  return undefined;
}
