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

/**
 * Wraps a progress callback so it fires at most every `intervalMs` (final events
 * always pass). Returns a no-op when there is no callback.
 */
export function throttleProgress(fn: ProgressFn | undefined, intervalMs = 100): (e: ProgressEvent, final?: boolean) => void {
  let last = 0;
  return (e, final = false) => {
    const now = Date.now();
    if (!fn || (!final && now - last < intervalMs)) return;
    last = now;
    fn(e);
  };
}
