/** Messages between the restore engine and its writer workers. */
import type { KeyMaterial } from '../../codec/crypto.js';

export interface RestoreWorkerInit {
  key: KeyMaterial;
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
  path: string;
  offset: number;
  whole?: WholeFile;
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
}
