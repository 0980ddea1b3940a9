/**
 * The one duration grammar of Lifeboat: lifeboat.yaml, every command-line flag and
 * every API body spell a length of time the same way and mean the same thing by it.
 *
 *   units   ms  s  min  h  d  w  mo  y
 *   terms   combinable, largest unit first or not: 1mo2d5h, 1h30min, 90s, 1.5h
 *   zero    a bare 0 (zero of any unit is zero)
 *
 * Refused, with a hint:
 *  - a bare number (`2`): the old readers took it as seconds in one place and as
 *    milliseconds in another, so `interval: 2` was validated as 2 s and run as 2 ms;
 *  - `m`: restic reads `--keep-within 6m` as six months, most tools read 6m as six
 *    minutes; a retention window misread either way deletes backups, so neither
 *    guess is made. `min` is minutes, `mo` months.
 *
 * `mo` and `y` are calendar months and years, counted in UTC from now, as restic's
 * keep-within counts them: `keep_within: 6mo` on 2026-08-31 reaches back to
 * 2026-02-31, which the calendar normalises to 2026-03-03 (Go's AddDate and JS Date
 * agree). `d` and `w` are days of 24 h (UTC has no daylight saving). Where a length
 * is needed rather than a point in time (an interval, a timeout, an RPO target),
 * it is the length of the span that ends now, so `1mo` is 28 to 31 days. The same
 * value therefore means the same thing in the file, on the command line and
 * through the API.
 */

export interface Duration {
  readonly years: number;
  readonly months: number;
  /** Days and weeks (7 days each). */
  readonly days: number;
  /** Hours, minutes, seconds and milliseconds. */
  readonly ms: number;
}

/** Why a text is not a duration, and what to write instead. */
export class DurationError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'DurationError';
  }
}

const EXAMPLES = 'e.g. 500ms, 30s, 5min, 1h30min, 7d, 2w, 6mo, 1y';

/** Fixed-length units, in milliseconds; d and w count into `days`, mo and y into the calendar fields. */
const FIXED: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 };
const TERM = /(\d+(?:\.\d+)?)([a-z]+)/gy;

export const ZERO: Duration = Object.freeze({ years: 0, months: 0, days: 0, ms: 0 });

/** Parses the grammar above; throws DurationError with a hint. */
export function parseDuration(input: string): Duration {
  const text = input.trim();
  if (text === '') throw new DurationError('an empty duration', EXAMPLES);
  if (text === '0') return ZERO;
  if (/^\d+(?:\.\d+)?$/.test(text)) {
    throw new DurationError(`"${text}" has no unit`, `write ${text}s for seconds, ${text}min for minutes, ${text}h for hours (units: ms s min h d w mo y)`);
  }
  let years = 0;
  let months = 0;
  let days = 0;
  let ms = 0;
  const seen = new Set<string>();
  TERM.lastIndex = 0;
  let at = 0;
  for (let m = TERM.exec(text); m !== null; m = TERM.exec(text)) {
    const [, num, unit] = m as unknown as [string, string, string];
    const n = Number(num);
    at = TERM.lastIndex;
    if (unit === 'm') throw new DurationError(`"${text}": m is ambiguous`, `write ${num}min for minutes or ${num}mo for months (restic reads 6m as six months, most tools as six minutes)`);
    if (seen.has(unit)) throw new DurationError(`"${text}" names "${unit}" twice`, EXAMPLES);
    seen.add(unit);
    if (unit === 'y' || unit === 'mo') {
      // A fraction of a calendar month has no one length: refuse rather than guess.
      if (!Number.isInteger(n)) throw new DurationError(`"${text}": ${unit} takes a whole number`, 'e.g. 1y6mo, or 45d');
      if (unit === 'y') years = n;
      else months = n;
    } else if (unit === 'w' || unit === 'd') {
      const d = n * (unit === 'w' ? 7 : 1);
      if (Number.isInteger(d)) days += d;
      else ms += d * 86_400_000;
    } else if (FIXED[unit] !== undefined) {
      ms += n * FIXED[unit];
    } else {
      throw new DurationError(`"${text}": unknown unit "${unit}"`, `units: ms s min h d w mo y; ${EXAMPLES}`);
    }
  }
  if (at !== text.length || seen.size === 0) throw new DurationError(`"${text}" is not a duration`, EXAMPLES);
  return { years, months, days, ms: Math.round(ms) };
}

/** The same value, or a DurationError turned into undefined. */
export function tryParseDuration(text: string): Duration | undefined {
  try {
    return parseDuration(text);
  } catch (err) {
    if (err instanceof DurationError) return undefined;
    throw err;
  }
}

/** `now` moved by `sign` times the duration: calendar fields first, then days and the fixed part. */
function shift(now: number, d: Duration, sign: 1 | -1): number {
  const t = new Date(now);
  t.setUTCFullYear(t.getUTCFullYear() + sign * d.years, t.getUTCMonth() + sign * d.months, t.getUTCDate() + sign * d.days);
  return t.getTime() + sign * d.ms;
}

/** The moment this long before `now` (a retention window's start). */
export function before(d: Duration, now = Date.now()): number {
  return shift(now, d, -1);
}

/** The moment this long after `now` (a token's expiry). */
export function after(d: Duration, now = Date.now()): number {
  return shift(now, d, 1);
}

/** The length in milliseconds of the span that ends `now` (an interval, a timeout). */
export function durationMs(d: Duration, now = Date.now()): number {
  return now - before(d, now);
}

export function isZero(d: Duration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.ms === 0;
}

/** The canonical spelling (`1y2mo3d4h5min6s7ms`), which parses back to the same value. */
export function formatDuration(d: Duration): string {
  if (isZero(d)) return '0';
  const parts: string[] = [];
  if (d.years) parts.push(`${d.years}y`);
  if (d.months) parts.push(`${d.months}mo`);
  if (d.days) parts.push(`${d.days}d`);
  let rest = d.ms;
  for (const [unit, size] of [['h', 3_600_000], ['min', 60_000], ['s', 1000]] as const) {
    const n = Math.floor(rest / size);
    if (n) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  if (rest) parts.push(`${rest}ms`);
  return parts.join('');
}
