/**
 * Progress events. The engine never prints: it reports counts through a callback,
 * and the CLI renders them as a bar on a TTY, the daemon serves them over the API.
 */
export interface ProgressEvent {
  phase: 'scan' | 'backup' | 'restore' | 'check' | 'done';
  files: number;
  bytes: number;
  /** Totals when known (a concurrent scan, a snapshot summary, the index size). */
  totalFiles?: number;
  totalBytes?: number;
  errors: number;
}

export type ProgressFn = (e: ProgressEvent) => void;

/** A problem with one item that did not stop the whole operation. */
export interface ItemError {
  path: string;
  message: string;
}
