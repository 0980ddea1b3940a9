/**
 * Rendering for people and for programs. Human output is compact text; --json is
 * one JSON document on stdout. Progress bars go to stderr and only when it is a TTY.
 */
import type { ProgressEvent } from '../../engine/progress.js';
import { formatBytes } from '../../util/bytes.js';

export function printJson(value: unknown): void {
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

  /** LIFEBOAT_PROGRESS=json (set by the daemon for its jobs): one JSON line on stderr per half second. */
  private readonly json = process.env.LIFEBOAT_PROGRESS === 'json';
  private lastJson = 0;

  constructor(enabled: boolean) {
    this.enabled = enabled && process.stderr.isTTY === true;
  }

  update = (e: ProgressEvent): void => {
    if (this.json && Date.now() - this.lastJson >= 500) {
      this.lastJson = Date.now();
      const totalBytes = e.totalBytes ?? this.totalBytes;
      process.stderr.write(`${JSON.stringify({ progress: { phase: e.phase, files: e.files, bytes: e.bytes, ...(totalBytes ? { total_bytes: totalBytes } : {}) } })}\n`);
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
