/**
 * PostgreSQL WAL file names and segment headers. Names: a segment is 24 hex digits
 * (timeline, log, segment), a history file `TTTTTTTT.history`, a backup history file
 * `<segment>.<offset>.backup`, a partial segment `<segment>.partial`. A segment's
 * first page carries a long header with the system identifier and segment size,
 * which is how a corrupted or foreign segment is refused before it is archived.
 */
import { LifeboatError } from '../../errors.js';

export type WalKind = 'segment' | 'history' | 'backup' | 'partial';

export interface WalName {
  name: string;
  kind: WalKind;
  timeline: number;
  /** Segment number (log * segments-per-log + seg) for segments; undefined otherwise. */
  segno?: bigint;
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

export function parseWalName(name: string, segSize = 16 * 1024 * 1024): WalName {
  let m = SEGMENT.exec(name);
  if (m) {
    const perLog = 0x1_0000_0000n / BigInt(segSize);
    return { name, kind: 'segment', timeline: parseInt(m[1]!, 16), segno: BigInt(`0x${m[2]}`) * perLog + BigInt(`0x${m[3]}`) };
  }
  if ((m = /^([0-9A-F]{8})\.history$/.exec(name))) return { name, kind: 'history', timeline: parseInt(m[1]!, 16) };
  if ((m = /^([0-9A-F]{8})[0-9A-F]{16}\.[0-9A-F]{8}\.backup$/.exec(name))) return { name, kind: 'backup', timeline: parseInt(m[1]!, 16) };
  if ((m = /^([0-9A-F]{24})\.partial$/.exec(name))) {
    const seg = parseWalName(m[1]!, segSize);
    return { name, kind: 'partial', timeline: seg.timeline, ...(seg.segno !== undefined ? { segno: seg.segno } : {}) };
  }
  throw new LifeboatError('USAGE', `"${name}" is not a WAL file name`, {
    hint: 'archive_command passes %p (a path ending in a WAL file name); restore_command %f',
  });
}

export function segmentName(timeline: number, segno: bigint, segSize = 16 * 1024 * 1024): string {
  const perLog = 0x1_0000_0000n / BigInt(segSize);
  const hex = (v: bigint | number, w = 8) => v.toString(16).toUpperCase().padStart(w, '0');
  return hex(timeline) + hex(segno / perLog) + hex(segno % perLog);
}

/** XLOG_PAGE_MAGIC by major version: a segment of another version is refused. */
const PAGE_MAGIC: Record<number, number> = { 12: 0xd101, 13: 0xd106, 14: 0xd10d, 15: 0xd110, 16: 0xd113, 17: 0xd116 };
const XLP_LONG_HEADER = 0x0002;

export interface SegmentHeader {
  magic: number;
  timeline: number;
  pageAddr: bigint;
  systemId: string;
  segSize: number;
  blockSize: number;
}

export function readSegmentHeader(data: Uint8Array): SegmentHeader {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < 40) throw new LifeboatError('CORRUPT', 'WAL segment is too short to have a header');
  return {
    magic: b.readUInt16LE(0),
    timeline: b.readUInt32LE(4),
    pageAddr: b.readBigUInt64LE(8),
    systemId: b.readBigUInt64LE(24).toString(),
    segSize: b.readUInt32LE(32),
    blockSize: b.readUInt32LE(36),
  };
}

/**
 * Checks that `data` is the segment its name says, of the expected cluster: right
 * size, a long page header, the page address and timeline of its name, and (when
 * known) the cluster's system identifier. Throws CORRUPT naming what is wrong.
 */
export function validateSegment(name: WalName, data: Uint8Array, expect: { systemId?: string; pgMajor?: number }): SegmentHeader {
  const h = readSegmentHeader(data);
  const what = `WAL segment ${name.name}`;
  const fail = (why: string): never => {
    throw new LifeboatError('CORRUPT', `${what} refused: ${why}`, {
      hint: 'the file is damaged or belongs to another cluster; nothing was archived',
    });
  };
  const magics = Object.values(PAGE_MAGIC);
  if (!magics.includes(h.magic)) fail(`bad page magic 0x${h.magic.toString(16)}`);
  if (expect.pgMajor !== undefined && PAGE_MAGIC[expect.pgMajor] !== undefined && PAGE_MAGIC[expect.pgMajor] !== h.magic) {
    fail(`written by another PostgreSQL version (magic 0x${h.magic.toString(16)})`);
  }
  if ((Buffer.from(data.buffer, data.byteOffset, 4).readUInt16LE(2) & XLP_LONG_HEADER) === 0) fail('first page has no long header');
  if (data.length !== h.segSize) fail(`size ${data.length} differs from the header's segment size ${h.segSize}`);
  // The first segment of a new timeline starts with pages copied from the old one,
  // so its header may name an earlier timeline, never a later one.
  if (h.timeline > name.timeline) fail(`header timeline ${h.timeline} is later than the name's ${name.timeline}`);
  if (name.segno !== undefined && h.pageAddr !== name.segno * BigInt(h.segSize)) fail('page address does not match the file name');
  if (expect.systemId && h.systemId !== expect.systemId) fail(`system identifier ${h.systemId}, expected ${expect.systemId}`);
  return h;
}

/** "0/3000028" ↔ bigint. */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new LifeboatError('USAGE', `"${text}" is not an LSN`, { hint: 'an LSN looks like 0/3000028' });
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}
