/**
 * Rendering for people and for programs. Human output is compact text; --json is
 * one JSON document on stdout. Progress bars go to stderr and only when it is a TTY.
 * In a daemon job the same result and progress also go out as typed events (job-events.ts).
 */
import type { ProgressEvent } from '../../engine/progress.js';
import { formatBytes } from '../../util/bytes.js';
import { emitJobEvent, inJob } from './job-events.js';

/** The command's result: one JSON document on stdout, and the job's `result` event. */
export function printJson(value: unknown): void {
  emitJobEvent({ type: 'result', value });
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}` : `${(ms / 1000).toFixed(1)}s`;
}

/** A one-line progress bar redrawn in place on a TTY; a no-op elsewhere. */
export class ProgressBar {
  private readonly enabled: boolean;
  private readonly started = Date.now();
  totalFiles?: number;
  totalBytes?: number;

  /** In a daemon job: a progress event per half second, enough for a dashboard and cheap for the catalog. */
  private readonly job = inJob();
  private lastEvent = 0;

  constructor(enabled: boolean) {
    this.enabled = enabled && process.stderr.isTTY === true;
  }

  update = (e: ProgressEvent): void => {
    if (this.job && Date.now() - this.lastEvent >= 500) {
      this.lastEvent = Date.now();
      const totalBytes = e.totalBytes ?? this.totalBytes;
      emitJobEvent({ type: 'progress', phase: e.phase, files: e.files, bytes: e.bytes, ...(totalBytes ? { total_bytes: totalBytes } : {}) });
    }
    if (!this.enabled || e.phase === 'done') return;
    const totalBytes = e.totalBytes ?? this.totalBytes;
    const totalFiles = e.totalFiles ?? this.totalFiles;
    const elapsed = (Date.now() - this.started) / 1000;
    const rate = elapsed > 0 ? e.bytes / elapsed : 0;
    let frac: number | undefined;
    if (e.phase === 'check' && totalFiles) frac = e.files / totalFiles;
    else if (totalBytes) frac = Math.min(1, e.bytes / totalBytes);
    const width = 24;
    const bar = frac === undefined ? '' : `[${'='.repeat(Math.round(frac * width)).padEnd(width)}] ${(frac * 100).toFixed(0).padStart(3)}% `;
    const what =
      e.phase === 'check'
        ? `${e.files}${totalFiles ? `/${totalFiles}` : ''} packs`
        : `${e.files}${totalFiles ? `/${totalFiles}` : ''} files ${formatBytes(e.bytes)}${totalBytes ? `/${formatBytes(totalBytes)}` : ''} ${formatBytes(rate)}/s`;
    const errs = e.errors ? ` ${e.errors} errors` : '';
    const eta = frac && frac > 0.01 && frac < 1 ? ` ETA ${duration(((1 - frac) * elapsed * 1000) / frac)}` : '';
    process.stderr.write(`\r\x1b[K${e.phase} ${bar}${what}${errs}${eta}`);
  };

  done(): void {
    if (this.enabled) process.stderr.write('\r\x1b[K');
  }
}
