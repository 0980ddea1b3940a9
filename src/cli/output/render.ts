/**
 * Rendering for people and for programs. Human output is compact text; --json is
 * one JSON document on stdout. Progress goes to stderr: a bar when it is a TTY, JSON
 * lines with --progress json (docs/progress.md).
 * In a daemon job the same result and progress also go out as typed events (job-events.ts).
 */
import { LifeboatError } from '../../errors.js';
import type { ScanTotals } from '../../engine/backup/scan.js';
import { ProgressMeter, realLater, throttleProgress, type Clock, type Later, type ProgressEvent, type ProgressStatus, type ThrottledProgress } from '../../engine/progress.js';
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

/** How progress is shown (global --progress, or LIFEBOAT_PROGRESS): docs/progress.md. */
export type ProgressMode = 'auto' | 'json' | 'none';

export const PROGRESS_MODES: readonly ProgressMode[] = ['auto', 'json', 'none'];

/** The global options progress depends on. */
export interface ProgressOptions {
  json?: boolean;
  quiet?: boolean;
  progress?: string;
}

/** Why 4 a second: enough to follow a script's progress, few enough lines to log them all. */
export const JSON_PROGRESS_MS = 250;
/** In a daemon job: a progress event per half second, enough for a dashboard and cheap for the catalog. */
export const JOB_PROGRESS_MS = 500;

/** `--progress`'s value, checked; LIFEBOAT_PROGRESS when the flag is absent. */
export function progressMode(o: ProgressOptions, env: NodeJS.ProcessEnv = process.env): ProgressMode {
  const v = o.progress ?? env.LIFEBOAT_PROGRESS ?? 'auto';
  if ((PROGRESS_MODES as readonly string[]).includes(v)) return v as ProgressMode;
  throw new LifeboatError('USAGE', `--progress must be one of ${PROGRESS_MODES.join(', ')}, not ${JSON.stringify(v)}`, {
    hint: 'auto draws a bar on a terminal; json writes one JSON object per line on stderr; none shows nothing',
  });
}

/** The progress renderer a command's global options ask for. */
export function progressFor(o: ProgressOptions): ProgressBar {
  const mode = progressMode(o);
  return new ProgressBar(mode === 'json' ? 'json' : mode === 'auto' && !o.json && !o.quiet);
}

/** m:ss, or h:mm:ss from an hour on. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** One bar line for a status (without the carriage return); exported for its tests. */
export function barLine(st: ProgressStatus, phase: string, final: boolean): string {
  const width = 24;
  const frac = st.percent === null ? undefined : st.percent / 100;
  const bar = frac === undefined ? '' : `[${'='.repeat(Math.floor(frac * width)).padEnd(width)}] ${String(Math.floor(st.percent ?? 0)).padStart(3)}% `;
  const of = (n: number, t: number | null, f: (x: number) => string = String) => `${f(n)}${t !== null && !final ? `/${f(t)}` : ''}`;
  const unit = st.unit;
  const rate = st.rate_unit === 'bytes' ? `${formatBytes(st.rate)}/s` : `${st.rate.toFixed(1)} ${unit}/s`;
  const what =
    st.bytes > 0 || (st.total_bytes ?? 0) > 0
      ? `${of(st.files, st.total_files)} ${unit} ${of(st.bytes, st.total_bytes, formatBytes)} ${rate}`
      : `${of(st.files, st.total_files)} ${unit} ${rate}`;
  const errs = st.errors ? ` ${st.errors} errors` : '';
  // Totals still growing (the scan is counting): say so instead of a percentage that would jump back.
  const scanning = st.percent === null && (st.total_files !== null || st.total_bytes !== null) ? ' (counting…)' : '';
  const eta = final ? ` in ${clock(st.elapsed_seconds)}` : st.eta_seconds !== null ? ` ETA ${clock(st.eta_seconds)}` : '';
  return `${phase} ${bar}${what}${errs}${scanning}${eta}`;
}

/** Where a ProgressBar writes and what time it is; injected by tests. */
export interface ProgressIo {
  write: (s: string) => void;
  isTTY: boolean;
  now: Clock;
  /** The timer that sends an event held back by the rate limit once the interval ends. */
  later: Later;
}

/**
 * Progress for people and scripts: a one-line bar redrawn in place when stderr is a
 * TTY, or (`'json'`) one JSON object per line on stderr at most 4 a second (the first
 * of each stage and the final event always); in a daemon job also typed events for the API. Totals come with the
 * engine's events or from setTotals (the backup's scan).
 */
export class ProgressBar {
  private readonly bar: boolean;
  private readonly json: boolean;
  private readonly io: ProgressIo;
  private readonly meter: ProgressMeter;
  private readonly job = inJob();
  private readonly jobEmit: ThrottledProgress;
  private readonly jsonEmit: ThrottledProgress;
  /** A redraw at most 10 times a second: check reports every index file and pack. */
  private readonly barEmit: ThrottledProgress;
  private totals: ScanTotals | undefined;
  /** The engine's last event before the end: shown again when the scan's totals become final. */
  private last: ProgressEvent | undefined;
  private phase = 'backup';
  /** Phase and unit of the last event: the first event of a new stage always shows. */
  private stage: string | undefined;
  private drawn = false;
  private finished = false;

  /** `true`: a bar when stderr is a TTY; `'json'`: JSON lines on stderr; `false`: nothing (a daemon job still gets its events). */
  constructor(enabled: boolean | 'json', io: Partial<ProgressIo> = {}) {
    this.io = { write: (s) => process.stderr.write(s), isTTY: process.stderr.isTTY === true, now: Date.now, later: realLater, ...io };
    this.meter = new ProgressMeter(this.io.now);
    // A job's stderr is its log: JSON lines there would flood it, the event channel carries them.
    this.json = enabled === 'json' && !this.job;
    this.bar = enabled === true && this.io.isTTY;
    // The newest event held back by the rate limit is sent when the interval ends: the
    // last files of a backup that then waits for its uploads show at once, not at the end.
    this.jobEmit = throttleProgress((e) => this.toJob(e), JOB_PROGRESS_MS, this.io.now, this.io.later);
    this.jsonEmit = throttleProgress((e) => this.toJson(e), JSON_PROGRESS_MS, this.io.now, this.io.later);
    this.barEmit = throttleProgress((e) => this.draw(e), 100, this.io.now, this.io.later);
  }

  /** Whether anything shows progress, so a scan for totals is worth its cost. */
  get shown(): boolean {
    return this.bar || this.json || this.job;
  }

  /** Totals counted beside the work (the backup's scan); `done` when they are final. */
  setTotals(t: ScanTotals): void {
    const final = t.done && !this.totals?.done;
    this.totals = t;
    // The scan ended after the last files were read (the backup now waits on its
    // uploads): the percentage and ETA it makes possible show now, not at the end.
    if (final && this.last) this.update(this.last);
  }

  update = (e: ProgressEvent): void => {
    const final = e.phase === 'done';
    this.last = final ? undefined : e;
    if (!final) this.phase = e.phase;
    const stage = `${e.phase}/${e.unit ?? 'files'}`;
    const force = final || (this.stage !== undefined && stage !== this.stage);
    this.stage = stage;
    const merged: ProgressEvent = { ...e };
    if (e.totalFiles === undefined && e.totalBytes === undefined && this.totals) {
      merged.totalFiles = this.totals.files;
      merged.totalBytes = this.totals.bytes;
      merged.totalsFinal = this.totals.done;
    }
    if (this.job) this.jobEmit(merged, force);
    if (this.json) this.jsonEmit(merged, force);
    if (this.bar && !this.finished) this.barEmit(merged, force);
  };

  private draw(e: ProgressEvent): void {
    const final = e.phase === 'done';
    const st = this.meter.status(e, final);
    this.io.write(`\r\x1b[K${barLine(st, this.phase, final)}${final ? '\n' : ''}`);
    this.drawn = true;
    if (final) this.finished = true;
  }

  private toJob(e: ProgressEvent): void {
    const st = this.meter.status(e, e.phase === 'done');
    emitJobEvent({
      type: 'progress',
      phase: e.phase,
      files: e.files,
      bytes: e.bytes,
      ...(st.total_bytes ? { total_bytes: st.total_bytes } : {}),
      ...(st.total_files !== null ? { total_files: st.total_files } : {}),
      ...(st.percent !== null ? { percent: round(st.percent, 1) } : {}),
      rate: round(st.rate, 0),
      ...(st.eta_seconds !== null ? { eta_seconds: round(st.eta_seconds, 0) } : {}),
    });
  }

  private toJson(e: ProgressEvent): void {
    const st = this.meter.status(e, e.phase === 'done');
    const line = {
      type: 'progress',
      ...st,
      percent: st.percent === null ? null : round(st.percent, 1),
      rate: round(st.rate, 0),
      eta_seconds: st.eta_seconds === null ? null : round(st.eta_seconds, 0),
      elapsed_seconds: round(st.elapsed_seconds, 1),
    };
    this.io.write(`${JSON.stringify(line)}\n`);
  }

  /** After the work (also after a failure): a bar left unfinished is cleared. */
  done(): void {
    for (const emit of [this.jobEmit, this.jsonEmit, this.barEmit]) emit.cancel();
    this.last = undefined;
    if (this.bar && this.drawn && !this.finished) this.io.write('\r\x1b[K');
  }
}

const round = (x: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};
