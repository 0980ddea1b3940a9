/**
 * Reads SQLite's wal-index header (the first 136 bytes of the `-shm` file): what
 * SQLite itself considers committed. A writer appends a transaction's frames to the
 * WAL, syncs them (synchronous=FULL), and only then publishes the new last frame here;
 * a writer that dies in between leaves frames in the WAL file that are valid by salt
 * and checksum but were never committed, and the next writer overwrites them. So
 * frames are shipped only up to `mxFrame`, and the cumulative checksum SQLite
 * publishes with it (`frameChecksum`) proves the frames read are the ones it committed.
 *
 * Layout (sqlite/src/wal.c, struct WalIndexHdr, native byte order): two copies of a
 * 48-byte header (a reader that finds them different is looking at a write in progress
 * and must read again), then WalCkptInfo (nBackfill at byte 96).
 */
import { endianness } from 'node:os';
import { walChecksum, type Checksum } from './wal.js';

export const WAL_INDEX_HEADER_BYTES = 136;
const HDR = 48;
const WAL_INDEX_VERSION = 3007000;
const LE = endianness() === 'LE';

export interface WalIndexHeader {
  /** Incremented by every transaction; with the rest, tells whether anything changed. */
  change: number;
  pageSize: number;
  /** The last committed frame of the current WAL cycle (0: none since the last restart). */
  mxFrame: number;
  /** Database size in pages after the last commit. */
  pages: number;
  /** The WAL checksum chain at frame mxFrame (the header's own checksum when mxFrame is 0). */
  frameChecksum: Checksum;
  salt1: number;
  salt2: number;
  /** Frames already copied into the database file. */
  backfilled: number;
  /** The 48 header bytes, to compare two readings cheaply. */
  raw: Buffer;
}

/**
 * Parses the header, or undefined while it is not initialised or being written (the two
 * copies differ, or the checksum does not match): the caller reads again.
 */
export function parseWalIndexHeader(buf: Buffer): WalIndexHeader | undefined {
  if (buf.length < WAL_INDEX_HEADER_BYTES) return undefined;
  const a = buf.subarray(0, HDR);
  if (!a.equals(buf.subarray(HDR, 2 * HDR))) return undefined;
  const u32 = (off: number) => (LE ? a.readUInt32LE(off) : a.readUInt32BE(off));
  const u16 = (off: number) => (LE ? a.readUInt16LE(off) : a.readUInt16BE(off));
  if (u32(0) !== WAL_INDEX_VERSION || a[12] !== 1) return undefined;
  // The checksum over the first 40 bytes, taken as native words.
  const [c1, c2] = walChecksum(a, 0, 40, [0, 0], !LE);
  if (c1 !== u32(40) || c2 !== u32(44)) return undefined;
  const szPage = u16(14);
  return {
    change: u32(8),
    pageSize: szPage === 1 ? 65536 : szPage,
    mxFrame: u32(16),
    pages: u32(20),
    frameChecksum: [u32(24), u32(28)],
    // The salts are kept as SQLite copies them from the WAL header: big-endian bytes.
    salt1: a.readUInt32BE(32),
    salt2: a.readUInt32BE(36),
    backfilled: LE ? buf.readUInt32LE(96) : buf.readUInt32BE(96),
    raw: Buffer.from(a),
  };
}

/** Whether two WAL headers (or wal-index views) are of the same WAL cycle: the same salts. */
export function sameCycle(a: { salt1: number; salt2: number }, b: { salt1: number; salt2: number }): boolean {
  return a.salt1 === b.salt1 && a.salt2 === b.salt2;
}

export function sameWalIndex(a: WalIndexHeader, b: WalIndexHeader): boolean {
  return a.raw.equals(b.raw);
}
