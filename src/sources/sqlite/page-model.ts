/**
 * What the replicator has stored, as one short hash per database page: the image of
 * the generation's base snapshot with every shipped transaction's pages laid over it.
 * Comparing it with the live database (verify-live.ts) proves that the repository's
 * history reproduces the database — not a phantom transaction SQLite rolled back,
 * not a missed WAL cycle, not a write that bypassed the WAL — instead of assuming it.
 *
 * The base arrives while transactions after it are already applied (the snapshot is
 * stored in the background), so a page a transaction wrote is never overwritten by
 * the base's older copy. 8 bytes per page: 2 MiB for a 1 GiB database of 4 KiB pages.
 */
import { createHash } from 'node:crypto';
import { FRAME_HEADER_SIZE, frameInfo } from './wal.js';

const HASH_BYTES = 8;

export function pageHash(buf: Buffer, offset: number, pageSize: number): Buffer {
  return createHash('sha256').update(buf.subarray(offset, offset + pageSize)).digest().subarray(0, HASH_BYTES);
}

/** A frozen copy of the model at one position, to compare against the live file at leisure. */
export interface ModelView {
  pages: number;
  /** Hash of page p at (p - 1) * 8; all zero bytes where the model has no page. */
  hashes: Buffer;
  /** False while part of the base image has not arrived: those pages cannot be compared. */
  complete: boolean;
}

export class PageModel {
  private hashes = Buffer.alloc(0);
  private touched = new Uint8Array(0);
  /** Page count after the newest applied transaction (or of the base before any). */
  pages: number;
  private baseComplete = false;

  constructor(pages: number) {
    this.pages = pages;
  }

  /** Whole transactions, frames as SQLite wrote them, in commit order. */
  applyFrames(frames: Buffer, pageSize: number): void {
    const frameSize = FRAME_HEADER_SIZE + pageSize;
    for (let off = 0; off + frameSize <= frames.length; off += frameSize) {
      const { pgno, dbPages } = frameInfo(frames, off);
      this.set(pgno, pageHash(frames, off + FRAME_HEADER_SIZE, pageSize));
      this.touch(pgno);
      if (dbPages !== 0) this.pages = dbPages;
    }
  }

  /** A run of the base image's pages; pages a transaction already wrote keep that version. */
  applyBase(firstPage: number, run: Buffer, pageSize: number): void {
    for (let i = 0; i * pageSize < run.length; i++) {
      const pgno = firstPage + i;
      if (!this.isTouched(pgno)) this.set(pgno, pageHash(run, i * pageSize, pageSize));
    }
  }

  /** The base as the repository rebuilt it (a resumed generation), hashes already taken. */
  applyStored(view: ModelView): void {
    for (let pgno = 1; pgno <= view.pages; pgno++) {
      if (!this.isTouched(pgno)) this.set(pgno, view.hashes.subarray((pgno - 1) * HASH_BYTES, pgno * HASH_BYTES));
    }
    this.baseDone();
  }

  baseDone(): void {
    this.baseComplete = true;
  }

  view(): ModelView {
    const hashes = Buffer.alloc(this.pages * HASH_BYTES);
    this.hashes.copy(hashes, 0, 0, Math.min(this.hashes.length, hashes.length));
    return { pages: this.pages, hashes, complete: this.baseComplete };
  }

  private set(pgno: number, hash: Buffer): void {
    const need = pgno * HASH_BYTES;
    if (need > this.hashes.length) {
      const grown = Buffer.alloc(Math.max(need, this.hashes.length * 2));
      this.hashes.copy(grown);
      this.hashes = grown;
    }
    hash.copy(this.hashes, (pgno - 1) * HASH_BYTES);
  }

  private touch(pgno: number): void {
    const byte = (pgno - 1) >>> 3;
    if (byte >= this.touched.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.touched.length * 2));
      grown.set(this.touched);
      this.touched = grown;
    }
    this.touched[byte] = (this.touched[byte] as number) | (1 << ((pgno - 1) & 7));
  }

  private isTouched(pgno: number): boolean {
    const byte = (pgno - 1) >>> 3;
    return byte < this.touched.length && ((this.touched[byte] as number) & (1 << ((pgno - 1) & 7))) !== 0;
  }
}

/** Where two views first differ (the page count first), or undefined when they agree. */
export function firstDifference(model: ModelView, live: ModelView): { page: number; reason: string } | undefined {
  if (model.pages !== live.pages) return { page: Math.min(model.pages, live.pages) + 1, reason: `page count ${model.pages} stored, ${live.pages} live` };
  for (let p = 0; p < model.pages; p++) {
    const o = p * HASH_BYTES;
    if (model.hashes.compare(live.hashes, o, o + HASH_BYTES, o, o + HASH_BYTES) !== 0) return { page: p + 1, reason: `page ${p + 1} differs` };
  }
  return undefined;
}
