/**
 * Messages between the backup engine and its chunk workers. One job is a batch of
 * files; the worker reads, chunks and identifies them window by window, asks which
 * blob ids the repository still needs, and seals only those. Asking first means an
 * already-stored chunk costs one HMAC, never a compression.
 */
import type { ChunkerParams } from '../../chunker/fastcdc.js';
import type { Compression } from '../../codec/compression.js';
import type { KeyMaterial } from '../../codec/crypto.js';

export interface WorkerInit {
  key: KeyMaterial;
  chunker: ChunkerParams;
  compression: Compression;
  /**
   * Where packs are written, one file each (the store's staging directory, or a
   * private one: repo/pack/spill.ts). A pack is never held in memory whole.
   */
  spillDir: string;
}

export interface JobFile {
  path: string;
  /**
   * A part of a large file: read `length` bytes from `offset` (parts of one file go
   * to different workers; each is chunked on its own, so a cut always falls at
   * `offset`). Absent: the whole file.
   */
  range?: { offset: number; length: number };
  /**
   * Device and inode the scan's lstat saw (decimal strings). The file is opened
   * without following symlinks and must still be that regular file: one swapped for a
   * symlink, a FIFO or another file since is an error for this file (as in restic).
   */
  expect?: { dev: string; ino: string };
}

export type ToWorker =
  | { t: 'job'; job: number; files: JobFile[] }
  | { t: 'need'; job: number; need: Uint8Array }
  /** Close the open pack and send it, even if small (end of backup). */
  | { t: 'flush'; job: number };

export interface FileResult {
  /** Concatenated 32-byte blob ids of the file's chunks, in order. */
  ids: Uint8Array;
  /** Bytes actually read (the file may have changed since it was stat'ed). */
  size: number;
  error?: string;
  errorCode?: string;
}

/**
 * A finished pack: the file holding its bytes, its name and blob list. The file is
 * complete (not fsynced: the store does that before naming it) and handed over: the
 * receiver stores it and removes it.
 */
export interface FinishedPack {
  packId: Uint8Array;
  /** The file's name in WorkerInit.spillDir (`<random hex>.tmp`). */
  file: string;
  size: number;
  /** Encoded pack header entries (45 bytes each, as in the pack). */
  entries: Uint8Array;
}

export type FromWorker =
  | { t: 'ids'; job: number; ids: Uint8Array }
  | { t: 'pack'; job: number; pack: FinishedPack }
  | { t: 'done'; job: number; files: FileResult[] }
  | { t: 'flushed'; job: number }
  /** `code`: the system error's (ENOSPC…), so the main thread reports it as NO_SPACE etc. */
  | { t: 'fatal'; job: number; message: string; code?: string };
