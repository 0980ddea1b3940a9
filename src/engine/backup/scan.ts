/**
 * The scan running ahead of a backup (restic's "scanner"): it counts the files and
 * bytes below the backup paths so progress can show a percentage and an ETA. Its
 * numbers never enter a snapshot, and the backup never waits for it.
 *
 * It runs on a worker thread with synchronous file-system calls: the backup's own
 * metadata calls are synchronous on the main thread and its file reads run in the
 * chunk workers, so the scan shares no thread, lock or queue with either (libuv's
 * thread pool included). It is stopped as soon as the backup ends.
 */
import { startWorker } from '../workers/worker-url.js';

export interface ScanRequest {
  paths: string[];
  excludes: string[];
}

/** Running totals; `done` once every path was walked. */
export interface ScanTotals {
  files: number;
  bytes: number;
  done: boolean;
}

export interface Scan {
  /** Stops the walk (idempotent); totals stop arriving. */
  stop(): void;
}

/**
 * Starts the scan; `onTotals` is called on the main thread at most about every 100 ms
 * while it walks, and once with `done: true`. A scan that fails to start or dies
 * reports nothing more: progress then shows counts without a percentage.
 */
export function startScan(req: ScanRequest, onTotals: (t: ScanTotals) => void): Scan {
  let stopped = false;
  let worker: ReturnType<typeof startWorker>;
  try {
    worker = startWorker(new URL('../workers/scan-worker.js', import.meta.url).href, 'scan-worker', req);
  } catch {
    return { stop: () => {} }; // no totals is no reason to fail a backup
  }
  // Never what keeps the process alive: a finished backup exits whatever the scan does.
  worker.unref();
  worker.on('message', (t: ScanTotals) => {
    if (!stopped) onTotals(t);
  });
  worker.on('error', () => {
    stopped = true;
  });
  return {
    stop: () => {
      if (stopped) return;
      stopped = true;
      void worker.terminate();
    },
  };
}
