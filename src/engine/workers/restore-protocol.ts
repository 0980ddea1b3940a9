/** Messages between the restore engine and its writer workers. */
import type { KeyMaterial } from '../../codec/crypto.js';

export interface RestoreWorkerInit {
  key: KeyMaterial;
  /**
   * The restore target's directory descriptor (the process shares descriptors with
   * its threads); every write is relative to it, walked without following symlinks.
   */
  rootFd: number;
}

/** Metadata for a one-blob file the worker creates and finishes by itself. */
export interface WholeFile {
  mode: number;
  uid: number;
  gid: number;
  atime?: string;
  mtime: string;
}

export interface BlobTarget {
  /** Which file of the restore (for progress and, on failure, the list of what is incomplete). */
  file: number;
  /** Directory relative to the target ("" for the target itself, "a/b" below it). */
  dir: string;
  /** The temporary name the content is written under. */
  tmp: string;
  offset: number;
  /** A file of this one blob: the worker creates it, sets its metadata and renames it to `name`. */
  whole?: WholeFile & { name: string };
}

export interface RestoreBlob {
  id: Uint8Array;
  offset: number;
  length: number;
  /** The most its plaintext may expand to (Repository.blobLimit). */
  maxPlain: number;
  targets: BlobTarget[];
}

export interface RestoreJob {
  job: number;
  packKey: string;
  /** Bytes of the pack from `base` on, covering every blob listed. */
  base: number;
  data: Uint8Array;
  blobs: RestoreBlob[];
}

export interface RestoreReply {
  job: number;
  written?: number;
  error?: string;
  corrupt?: boolean;
  code?: string;
  /** Files (BlobTarget.file) the failed job had already completed and renamed into place. */
  done?: number[];
}
