/**
 * Progress math and rate limits (src/engine/progress.ts, src/cli/output/render.ts),
 * all on an injected clock: percent, rate and ETA from counts and totals, totals
 * still growing, stages that start over, the throttle, and the renderers' limits
 * (JSON lines at most 4 a second with the final one always, the bar reaching 100%).
 */
import { describe, expect, it } from 'vitest';
import { ProgressMeter, throttleProgress, type Later, type ProgressEvent } from '../../src/engine/progress.js';
import { JSON_PROGRESS_MS, ProgressBar, barLine, clock, progressMode } from '../../src/cli/output/render.js';
import { isLifeboatError } from '../../src/errors.js';

/** A clock the test moves by hand. */
/** A clock moved by hand, with timers that fire (in order) as it passes their moment. */
function manualClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void; later: Later } {
  let t = start;
  let timers: Array<{ at: number; fn: () => void }> = [];
  const later: Later = (fn, ms) => {
    const timer = { at: t + ms, fn };
    timers.push(timer);
    return () => void (timers = timers.filter((x) => x !== timer));
  };
  const advance = (ms: number): void => {
    const until = t + ms;
    for (;;) {
      const due = timers.filter((x) => x.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      timers = timers.filter((x) => x !== due);
      t = due.at;
      due.fn();
    }
    t = until;
  };
  return { now: () => t, advance, later };
}

const ev = (files: number, bytes: number, more: Partial<ProgressEvent> = {}): ProgressEvent => ({ phase: 'backup', files, bytes, errors: 0, ...more });

describe('ProgressMeter', () => {
  it('computes percent, rate and ETA from bytes against the total', () => {
    const c = manualClock();
    const m = new ProgressMeter(c.now);
    c.advance(10_000);
    const st = m.status(ev(10, 250, { totalFiles: 40, totalBytes: 1000 }));
    expect(st.percent).toBe(25);
    expect(st.rate).toBe(25); // 250 bytes in 10 s
    expect(st.rate_unit).toBe('bytes');
    expect(st.eta_seconds).toBe(30); // 750 bytes left at 25 B/s
    expect(st.elapsed_seconds).toBe(10);
    expect(st.total_files).toBe(40);
  });

  it('counts files (packs, snapshots) when there are no bytes', () => {
    const c = manualClock();
    const m = new ProgressMeter(c.now);
    c.advance(4000);
    const st = m.status({ phase: 'check', unit: 'snapshots', files: 2, bytes: 0, totalFiles: 8, errors: 0 });
    expect(st.percent).toBe(25);
    expect(st.rate_unit).toBe('files');
    expect(st.rate).toBe(0.5);
    expect(st.eta_seconds).toBe(12);
    expect(st.unit).toBe('snapshots');
  });

  it('has no percent or ETA while the totals still grow, nor before any work', () => {
    const c = manualClock();
    const m = new ProgressMeter(c.now);
    c.advance(1000);
    const growing = m.status(ev(5, 500, { totalFiles: 50, totalBytes: 5000, totalsFinal: false }));
    expect(growing.percent).toBeNull();
    expect(growing.eta_seconds).toBeNull();
    expect(growing.total_bytes).toBe(5000);
    const none = m.status(ev(0, 0, { totalFiles: 50, totalBytes: 5000 }));
    expect(none.percent).toBe(0);
    expect(none.eta_seconds).toBeNull();
    expect(m.status(ev(5, 500)).percent).toBeNull(); // no totals at all
  });

  it('never goes back, stays below 100 until the end, and ends at exactly 100 with the done counts as totals', () => {
    const c = manualClock();
    const m = new ProgressMeter(c.now);
    c.advance(1000);
    expect(m.status(ev(1, 600, { totalBytes: 1000 })).percent).toBe(60);
    // A file grew since the scan: more bytes than the total, still not 100.
    expect(m.status(ev(2, 1500, { totalBytes: 1000 })).percent).toBe(99.9);
    // A larger total (another source of totals) does not move it back.
    expect(m.status(ev(2, 1500, { totalBytes: 5000 })).percent).toBe(99.9);
    const end = m.status({ phase: 'done', files: 3, bytes: 1600, totalBytes: 1000, errors: 0 });
    expect(end).toMatchObject({ percent: 100, eta_seconds: 0, total_bytes: 1600, total_files: 3 });
  });

  it('starts over for a new stage (check: index files, then snapshots, then packs)', () => {
    const c = manualClock();
    const m = new ProgressMeter(c.now);
    c.advance(1000);
    expect(m.status({ phase: 'check', unit: 'index files', files: 4, bytes: 0, totalFiles: 4, errors: 0 }).percent).toBe(99.9);
    c.advance(1000);
    const snaps = m.status({ phase: 'check', unit: 'snapshots', files: 1, bytes: 0, totalFiles: 4, errors: 0 });
    expect(snaps.percent).toBe(25);
    expect(snaps.elapsed_seconds).toBe(0);
    c.advance(2000);
    expect(m.status({ phase: 'check', unit: 'snapshots', files: 2, bytes: 0, totalFiles: 4, errors: 0 }).eta_seconds).toBe(2);
  });
});

describe('throttleProgress', () => {
  it('passes the first event, then at most one per interval, and a final one always', () => {
    const c = manualClock();
    const seen: number[] = [];
    const emit = throttleProgress((e) => seen.push(e.files), 100, c.now);
    emit(ev(1, 0));
    emit(ev(2, 0)); // same moment: dropped
    c.advance(99);
    emit(ev(3, 0)); // 99 ms later: dropped
    c.advance(1);
    emit(ev(4, 0)); // 100 ms after the first: passes
    emit(ev(5, 0), true); // final: passes at once
    expect(seen).toEqual([1, 4, 5]);
  });

  it('with a timer, sends the newest event it held back when the interval ends, and none after cancel or a final one', () => {
    const c = manualClock();
    const seen: number[] = [];
    const emit = throttleProgress((e) => seen.push(e.files), 100, c.now, c.later);
    emit(ev(1, 0));
    c.advance(10);
    emit(ev(2, 0));
    c.advance(10);
    emit(ev(3, 0)); // then a pause: the last files read, the uploads still running
    c.advance(79);
    expect(seen).toEqual([1]);
    c.advance(1); // 100 ms after the first: the newest held one
    expect(seen).toEqual([1, 3]);
    c.advance(1000);
    expect(seen).toEqual([1, 3]); // sent once
    emit(ev(4, 0)); // passes: the interval is over
    emit(ev(5, 0));
    emit(ev(6, 0), true); // final: the held 5 is dropped, 6 passes
    c.advance(1000);
    expect(seen).toEqual([1, 3, 4, 6]);
    emit(ev(7, 0));
    emit(ev(8, 0));
    emit.cancel(); // the work failed: nothing comes after
    c.advance(1000);
    expect(seen).toEqual([1, 3, 4, 6, 7]);
  });
});

describe('clock', () => {
  it('writes m:ss and h:mm:ss', () => {
    expect(clock(0)).toBe('0:00');
    expect(clock(59.6)).toBe('1:00');
    expect(clock(125)).toBe('2:05');
    expect(clock(3600 + 61)).toBe('1:01:01');
  });
});

describe('--progress', () => {
  it('takes auto, json and none, the flag before LIFEBOAT_PROGRESS, and refuses anything else with a hint', () => {
    expect(progressMode({}, {})).toBe('auto');
    expect(progressMode({}, { LIFEBOAT_PROGRESS: 'json' })).toBe('json');
    expect(progressMode({ progress: 'none' }, { LIFEBOAT_PROGRESS: 'json' })).toBe('none');
    try {
      progressMode({ progress: 'bars' }, {});
      expect.unreachable();
    } catch (err) {
      expect(isLifeboatError(err, 'USAGE')).toBe(true);
      expect((err as Error).message).toMatch(/auto, json, none/);
    }
  });
});

/** Drives a renderer through a simulated backup: an event every 10 ms of the injected clock. */
function simulate(mode: boolean | 'json', isTTY: boolean): { out: string; c: ReturnType<typeof manualClock> } {
  const c = manualClock();
  let out = '';
  const bar = new ProgressBar(mode, { write: (s) => void (out += s), isTTY, now: c.now, later: c.later });
  const total = { files: 300, bytes: 300_000 };
  // The scan counts first (totals not final), then finishes.
  bar.setTotals({ files: 100, bytes: 100_000, done: false });
  for (let i = 1; i <= 300; i++) {
    c.advance(10);
    if (i === 50) bar.setTotals({ ...total, done: true });
    bar.update(ev(i, i * 1000));
  }
  c.advance(3);
  bar.update({ phase: 'done', files: 300, bytes: 300_000, errors: 0 });
  bar.done();
  return { out, c };
}

describe('ProgressBar --progress json', () => {
  it('writes valid JSON lines, at most 4 a second, monotonic, ending with one at 100%', () => {
    const { out } = simulate('json', false);
    const lines = out.trimEnd().split('\n');
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    // 3 s of events: one at once, then one per 250 ms, and the final.
    expect(events.length).toBeLessThanOrEqual(3000 / JSON_PROGRESS_MS + 2);
    expect(events.length).toBeGreaterThanOrEqual(3000 / JSON_PROGRESS_MS);
    for (let i = 1; i < events.length - 1; i++) {
      const gap = (events[i] as { elapsed_seconds: number }).elapsed_seconds - (events[i - 1] as { elapsed_seconds: number }).elapsed_seconds;
      // elapsed_seconds is rounded to 0.1 s
      expect(gap).toBeGreaterThanOrEqual(JSON_PROGRESS_MS / 1000 - 0.1 - 1e-9);
    }
    let lastPercent = -1;
    let lastBytes = -1;
    for (const e of events) {
      expect(e.type).toBe('progress');
      for (const k of ['phase', 'files', 'bytes', 'total_files', 'total_bytes', 'percent', 'rate', 'eta_seconds']) expect(e).toHaveProperty(k);
      expect(e.bytes as number).toBeGreaterThanOrEqual(lastBytes);
      lastBytes = e.bytes as number;
      if (e.percent !== null) {
        expect(e.percent as number).toBeGreaterThanOrEqual(lastPercent);
        lastPercent = e.percent as number;
      }
    }
    // Before the scan finished: totals but no percentage; after: both.
    expect(events[0]).toMatchObject({ total_files: 100, percent: null, eta_seconds: null });
    expect(events.some((e) => typeof e.percent === 'number' && (e.percent as number) > 0 && (e.percent as number) < 100 && typeof e.eta_seconds === 'number')).toBe(true);
    expect(events.at(-1)).toMatchObject({ phase: 'done', percent: 100, eta_seconds: 0, files: 300, bytes: 300_000, total_bytes: 300_000 });
    expect(events.slice(0, -1).every((e) => e.percent !== 100)).toBe(true);
  });
});

describe('ProgressBar before a pause', () => {
  /** A JSON renderer on a manual clock; `lines()` parses what it wrote so far. */
  function jsonBar() {
    const c = manualClock();
    let out = '';
    const bar = new ProgressBar('json', { write: (s) => void (out += s), isTTY: false, now: c.now, later: c.later });
    const lines = () => out.trimEnd().split('\n').map((l) => JSON.parse(l) as { files: number; percent: number | null; total_files: number; elapsed_seconds: number });
    return { c, bar, lines };
  }

  it('shows the last files read at once, not only at the end, when the work then waits (uploads)', () => {
    const { c, bar, lines } = jsonBar();
    bar.setTotals({ files: 64, bytes: 64_000, done: true });
    bar.update(ev(1, 1000));
    c.advance(50);
    bar.update(ev(64, 64_000)); // every file read, within the rate limit
    c.advance(3000); // the uploads
    expect(lines().map((l) => l.files)).toEqual([1, 64]);
    expect(lines()[1]).toMatchObject({ percent: 99.9, elapsed_seconds: 0.3 });
    bar.update({ phase: 'done', files: 64, bytes: 64_000, errors: 0 });
    bar.done();
    expect(lines()).toHaveLength(3);
  });

  it('shows the percentage as soon as the scan ends, when every file was read before it did', () => {
    const { c, bar, lines } = jsonBar();
    bar.setTotals({ files: 10, bytes: 10_000, done: false });
    bar.update(ev(1, 1000));
    c.advance(50);
    bar.update(ev(64, 64_000));
    c.advance(1000); // the held event: the scan still counting, so no percentage yet
    bar.setTotals({ files: 64, bytes: 64_000, done: true });
    c.advance(1000);
    expect(lines().map((l) => [l.files, l.percent])).toEqual([[1, null], [64, null], [64, 99.9]]);
    expect(lines()[2]!.total_files).toBe(64);
    bar.done();
    bar.setTotals({ files: 65, bytes: 65_000, done: false });
    bar.setTotals({ files: 65, bytes: 65_000, done: true });
    c.advance(1000);
    expect(lines()).toHaveLength(3); // nothing after done()
  });
});

describe('ProgressBar on a terminal', () => {
  it('draws a percentage and an ETA, redraws at most 10 times a second, and ends on a line at 100%', () => {
    const { out } = simulate(true, true);
    const frames = out.split('\r\x1b[K').filter(Boolean);
    expect(frames.length).toBeLessThanOrEqual(3000 / 100 + 2);
    expect(frames.some((f) => /\d+% .*ETA \d+:\d\d/.test(f))).toBe(true);
    expect(frames.at(-1)).toMatch(/^backup \[={24}\] 100% 300 files .* in 0:03\n$/);
    expect(frames.slice(0, -1).some((f) => f.includes('counting'))).toBe(true);
  });

  it('draws nothing when stderr is not a terminal, and clears an unfinished bar', () => {
    expect(simulate(true, false).out).toBe('');
    const c = manualClock();
    let out = '';
    const bar = new ProgressBar(true, { write: (s) => void (out += s), isTTY: true, now: c.now, later: c.later });
    bar.update(ev(1, 10));
    bar.done(); // failed: no done event came
    expect(out.endsWith('\r\x1b[K')).toBe(true);
    expect(out).not.toContain('100%');
  });

  it('labels what it counts', () => {
    const line = barLine(
      { phase: 'check', unit: 'packs', files: 3, bytes: 3 << 20, total_files: 12, total_bytes: 12 << 20, percent: 25, rate: 1 << 20, rate_unit: 'bytes', eta_seconds: 9, elapsed_seconds: 3, errors: 0 },
      'check',
      false,
    );
    expect(line).toMatch(/^check \[={6} {18}\]  25% 3\/12 packs 3\.00 MiB\/12\.0 MiB 1\.00 MiB\/s ETA 0:09$/);
  });
});
