/**
 * Progress events. The engine never prints: it reports counts through a callback,
 * and the CLI renders them as a bar on a TTY or JSON lines (--progress json), the
 * daemon serves them over the API. ProgressMeter turns counts and totals into the
 * percentage, rate and ETA all three show; its clock is injected so the math is
 * tested without sleeping.
 */
export interface ProgressEvent {
  phase: 'scan' | 'backup' | 'restore' | 'check' | 'copy' | 'done';
  files: number;
  bytes: number;
  /** Totals when known (a concurrent scan, a snapshot summary, the index size). */
  totalFiles?: number;
  totalBytes?: number;
  /**
   * False while the totals are still growing (the scan running ahead of a backup has
   * not finished): no percentage or ETA is computed from them yet. Absent: final.
   */
  totalsFinal?: boolean;
  errors: number;
  /** What `files` counts when it is not files ('packs', 'items'); renderers label it. */
  unit?: string;
}

export type ProgressFn = (e: ProgressEvent) => void;

/** A problem with one item that did not stop the whole operation. */
export interface ItemError {
  path: string;
  message: string;
  /** A socket or device node a restore records but does not recreate (nothing it holds is lost). */
  special?: true;
}

/** Milliseconds since some fixed moment; Date.now in production, a counter in tests. */
export type Clock = () => number;

/** Runs `fn` after `ms`; returns what cancels it. */
export type Later = (fn: () => void, ms: number) => () => void;

/** A real timer that does not keep the process alive. */
export const realLater: Later = (fn, ms) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
};

/** A throttled progress callback; `cancel` drops an event held back for the interval's end. */
export interface ThrottledProgress {
  (e: ProgressEvent, final?: boolean): void;
  cancel(): void;
}

/**
 * Wraps a progress callback so it fires at most every `intervalMs` (final events
 * always pass). Returns a no-op when there is no callback.
 *
 * With `later`, an event dropped by the interval is not lost: the newest one is sent
 * when the interval ends, unless a newer one passed first. Without it the last events
 * before a pause (a backup that has read its last file and waits for its uploads) never
 * showed: the bar and the JSON lines stood where they were a moment before, for as long
 * as the pause lasted. Whoever gets such a trailing event calls `cancel` when the work
 * ends, failed or not, so none comes after it.
 */
export function throttleProgress(fn: ProgressFn | undefined, intervalMs = 100, now: Clock = Date.now, later?: Later): ThrottledProgress {
  let last = -Infinity;
  let held: ProgressEvent | undefined;
  let stopTimer: (() => void) | undefined;
  const cancel = (): void => {
    held = undefined;
    stopTimer?.();
    stopTimer = undefined;
  };
  const send = (e: ProgressEvent): void => {
    cancel();
    last = now();
    fn?.(e);
  };
  const emit = (e: ProgressEvent, final = false): void => {
    if (!fn) return;
    if (final || now() - last >= intervalMs) return send(e);
    if (!later) return;
    held = e;
    stopTimer ??= later(() => {
      stopTimer = undefined;
      if (held) send(held);
    }, Math.max(0, last + intervalMs - now()));
  };
  return Object.assign(emit, { cancel });
}

/** What every renderer shows: the event's counts with percentage, rate and ETA. */
export interface ProgressStatus {
  phase: ProgressEvent['phase'];
  /** What `files` counts: 'files' unless the event says otherwise. */
  unit: string;
  files: number;
  bytes: number;
  total_files: number | null;
  total_bytes: number | null;
  /** 0–100; null while no final total is known. Never decreases; 100 only on the final event. */
  percent: number | null;
  /** Bytes per second since the meter started (files per second when the work has no bytes, e.g. a check without --read-data). */
  rate: number;
  rate_unit: 'bytes' | 'files';
  /** Seconds left at the average rate so far; null without a percentage or before any work was done. */
  eta_seconds: number | null;
  elapsed_seconds: number;
  errors: number;
}

/**
 * Why the average since the start and not a recent window: restic's ETA does the same,
 * and a backup alternates fast stretches (unchanged files, only stat'ed) with slow ones
 * (new data, chunked and uploaded), so a short window swings the ETA by minutes.
 */
export class ProgressMeter {
  private started: number;
  private lastPercent = 0;
  /** Phase and unit of the last event: a new stage (check's read-data pass after its structure pass) starts over. */
  private stage: string | undefined;

  constructor(private readonly now: Clock = Date.now) {
    this.started = now();
  }

  /** The status of one event; `final` (or phase 'done') means the work is complete. */
  status(e: ProgressEvent, final = e.phase === 'done'): ProgressStatus {
    const stage = `${e.phase}/${e.unit ?? 'files'}`;
    if (e.phase !== 'done' && stage !== this.stage) {
      if (this.stage !== undefined) {
        this.started = this.now();
        this.lastPercent = 0;
      }
      this.stage = stage;
    }
    const elapsed = Math.max(0, (this.now() - this.started) / 1000);
    const byBytes = e.totalBytes !== undefined && e.totalBytes > 0;
    const done = byBytes ? e.bytes : e.files;
    const total = byBytes ? e.totalBytes : e.totalFiles;
    const known = e.totalsFinal !== false && total !== undefined;
    let percent: number | null = null;
    if (final) percent = 100;
    else if (known) {
      // Below 100 until the end: a file grown since the scan must not show 100% early.
      const raw = total > 0 ? (100 * done) / total : 0;
      percent = Math.max(this.lastPercent, Math.min(99.9, raw));
    }
    if (percent !== null) this.lastPercent = percent;
    const rateUnit = e.bytes > 0 || byBytes ? 'bytes' : 'files';
    const rate = elapsed > 0 ? (rateUnit === 'bytes' ? e.bytes : e.files) / elapsed : 0;
    let eta: number | null = null;
    if (final) eta = 0;
    else if (known && done > 0 && elapsed > 0) eta = Math.max(0, (elapsed * Math.max(0, total - done)) / done);
    return {
      phase: e.phase,
      unit: e.unit ?? 'files',
      files: e.files,
      bytes: e.bytes,
      // At the end the totals are what was done: an estimate (the scan) has served its purpose.
      total_files: final ? e.files : (e.totalFiles ?? null),
      total_bytes: final ? e.bytes : (e.totalBytes ?? null),
      percent,
      rate,
      rate_unit: rateUnit,
      eta_seconds: eta,
      elapsed_seconds: elapsed,
      errors: e.errors,
    };
  }
}
