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
import { keys } from '../../repo/format.js';
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

/** WAL page size (XLOG_BLCKSZ, PostgreSQL's default) and its page headers: long on a segment's first page, short on the others. */
const WAL_PAGE = 8192;
const LONG_HEADER = 40;
const SHORT_HEADER = 24;

/**
 * Whether segment `data` carries `needle` (a restore point's name) in its records: the
 * page headers are cut out first, since a record that crosses a page boundary continues
 * after the next page's header.
 */
export function segmentCarries(data: Buffer, needle: Buffer): boolean {
  const bodies: Buffer[] = [];
  for (let at = 0; at < data.length; at += WAL_PAGE) bodies.push(data.subarray(at + (at === 0 ? LONG_HEADER : SHORT_HEADER), Math.min(at + WAL_PAGE, data.length)));
  return Buffer.concat(bodies).includes(needle);
}

/** Whether a whole stored segment holds a restore point, by object key and point: the proof asks every half second. */
const WHOLE_SEGMENT_VERDICTS = new Map<string, boolean>();

export async function walReach(
  repo: Pick<Repository, 'getLog' | 'store'>,
  name: string,
  lsn: bigint,
  timelines: readonly number[],
  segSize: number,
  restorePoint?: string,
): Promise<WalReach> {
  const size = BigInt(segSize);
  const segno = (lsn - 1n) / size;
  const within = Number(lsn % size);
  // One stat per candidate object, not a listing of the whole archive: the proof asks every half second.
  // A stat that fails (a destination down that may hold it) proves nothing yet: the
  // proof asks again until its deadline, and a segment on a destination that is up is found.
  const has = async (source: string, tl: number, file: string) => (await repo.store.stat(keys.log(source, timelineDir(tl), file)).catch(() => undefined)) !== undefined;
  let first = '';
  for (const tl of timelines) {
    const file = segmentName(tl, segno, segSize);
    first ||= file;
    // A segment of the right name is not enough: a crash rewrites a segment's tail, and
    // the archive keeps the first copy it was given. The restore point's record must be in it.
    const carries = async (source: string, object: string, data?: Buffer): Promise<boolean> => {
      if (restorePoint === undefined) return true;
      if (data) return segmentCarries(data, Buffer.from(restorePoint));
      // A whole segment never changes once stored (a second copy is refused): read it once per process.
      const key = `${keys.log(source, timelineDir(tl), object)}\0${restorePoint}`;
      let verdict = WHOLE_SEGMENT_VERDICTS.get(key);
      if (verdict === undefined) {
        const got = await repo.getLog(source, timelineDir(tl), object);
        if (got === undefined) return false; // gone since its stat (retention): not a verdict to keep
        verdict = segmentCarries(got, Buffer.from(restorePoint));
        if (WHOLE_SEGMENT_VERDICTS.size >= 1024) WHOLE_SEGMENT_VERDICTS.clear();
        WHOLE_SEGMENT_VERDICTS.set(key, verdict);
      }
      return verdict;
    };
    const without = (how: string) => ({ reached: false, detail: `WAL segment ${file} is ${how} but does not hold restore point ${restorePoint} (another copy of the segment: a crash rewrote it, or another server wrote it)`, segment: file });
    if (await has(logSource(name), tl, file)) {
      if (await carries(logSource(name), file)) return { reached: true, detail: `WAL segment ${file} archived`, segment: file };
      return without('archived');
    }
    if (await has(streamSource(name), tl, file)) {
      if (await carries(streamSource(name), file)) return { reached: true, detail: `WAL segment ${file} streamed`, segment: file };
      return without('streamed');
    }
    if (within !== 0 && (await has(streamSource(name), tl, `${file}.partial`))) {
      const data = await repo.getLog(streamSource(name), timelineDir(tl), `${file}.partial`);
      if (data && data.length >= within + 4 && data.readUInt32LE(within) !== 0 && (await carries(streamSource(name), '', data))) {
        return { reached: true, detail: `WAL segment ${file} streamed past ${formatLsn(lsn)} (partial)`, segment: file };
      }
      // pg stream stores the whole segment, then deletes its partial: possibly between the looks above.
      if ((await has(streamSource(name), tl, file)) && (await carries(streamSource(name), file))) return { reached: true, detail: `WAL segment ${file} streamed`, segment: file };
    }
  }
  return { reached: false, detail: `WAL segment ${first} (holding ${formatLsn(lsn)}) is not in the archive`, segment: first };
}
