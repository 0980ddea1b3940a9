/**
 * Whether the repository holds a cluster's WAL through an LSN (a consistency group's
 * restore point, engine/group/proof.ts), so that recovery can replay up to it.
 *
 * The record ending at `lsn` lies in the segment holding byte lsn − 1. It is held when
 * that segment is archived whole (archive_command's archive, or a completed segment of
 * `pg stream`), or when `pg stream`'s growing `.partial` copy of it already carries
 * the next record: pg_receivewal writes in order, so a non-zero word at `lsn` (the next
 * record's length, or the magic of the next page's header) means everything before it
 * is there. A partial that ends at the record itself proves nothing: the record's last
 * bytes may be zeros, and so is a file not yet written that far.
 */
import type { Repository } from '../../repo/repository.js';
import { logSource, streamSource, timelineDir } from './names.js';
import { formatLsn, segmentName } from './wal.js';

export interface WalReach {
  reached: boolean;
  /** What holds it, or what is missing, for messages and the point's `archived.reach`. */
  detail: string;
  /** The segment holding the record. */
  segment: string;
}

export async function walReach(repo: Pick<Repository, 'listLogs' | 'getLog'>, name: string, lsn: bigint, timelines: readonly number[], segSize: number): Promise<WalReach> {
  const size = BigInt(segSize);
  const segno = (lsn - 1n) / size;
  const within = Number(lsn % size);
  const [archived, streamed] = await Promise.all([repo.listLogs(logSource(name)), repo.listLogs(streamSource(name))]);
  const has = (list: ReadonlyArray<{ timeline: string; file: string }>, tl: number, file: string) => list.some((l) => l.timeline === timelineDir(tl) && l.file === file);
  let first = '';
  for (const tl of timelines) {
    const file = segmentName(tl, segno, segSize);
    first ||= file;
    if (has(archived, tl, file)) return { reached: true, detail: `WAL segment ${file} archived`, segment: file };
    if (has(streamed, tl, file)) return { reached: true, detail: `WAL segment ${file} streamed`, segment: file };
    if (within !== 0 && has(streamed, tl, `${file}.partial`)) {
      const data = await repo.getLog(streamSource(name), timelineDir(tl), `${file}.partial`);
      if (data && data.length >= within + 4 && data.readUInt32LE(within) !== 0) {
        return { reached: true, detail: `WAL segment ${file} streamed past ${formatLsn(lsn)} (partial)`, segment: file };
      }
    }
  }
  return { reached: false, detail: `WAL segment ${first} (holding ${formatLsn(lsn)}) is not in the archive`, segment: first };
}
