/**
 * Retention policy with restic's semantics (restic `ApplyPolicy`), so an operator's
 * existing rules mean the same thing here: snapshots are taken newest first; each
 * --keep-{last,hourly,daily,weekly,monthly,yearly} N keeps the first snapshot of each
 * of the N newest distinct periods (last: each snapshot is its own period); --keep-tag
 * and --keep-within keep regardless of counts; a snapshot is kept if any rule keeps
 * it. --keep-within is measured back from the newest snapshot, not from now. Periods
 * are computed in UTC (snapshot times are stored in UTC). Lifeboat adds --min-keep:
 * never fewer than N snapshots per group.
 */
import { LifeboatError } from '../../errors.js';

export interface KeepPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Each entry is a set of tags a snapshot must all have to be kept. */
  tags?: string[][];
  within?: Duration;
  minKeep?: number;
}

export interface Duration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

export interface Dated {
  id: string;
  time: string;
  tags: string[];
}

export interface PolicyResult<T extends Dated> {
  keep: T[];
  remove: T[];
  /** Why each kept snapshot is kept, by id. */
  reasons: Map<string, string[]>;
}

export function parseDuration(text: string): Duration {
  const m = /^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?$/.exec(text);
  if (!m || text === '') {
    throw new LifeboatError('USAGE', `"${text}" is not a duration`, { hint: 'like 2y5m7d3h (years, months, days, hours)' });
  }
  return { years: Number(m[1] ?? 0), months: Number(m[2] ?? 0), days: Number(m[3] ?? 0), hours: Number(m[4] ?? 0) };
}

export function isEmptyPolicy(p: KeepPolicy): boolean {
  return !p.last && !p.hourly && !p.daily && !p.weekly && !p.monthly && !p.yearly && !(p.tags?.length) && !p.within;
}

/** ISO 8601 week number and its year, as restic's `yw` (Go's ISOWeek). */
function isoWeek(d: Date): number {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86400000 + 1) / 7);
  return t.getUTCFullYear() * 100 + week;
}

type Bucketer = (d: Date, nr: number) => number;
const BUCKETS: Array<[keyof KeepPolicy, Bucketer, string]> = [
  ['last', (_d, nr) => nr, 'last snapshot'],
  ['hourly', (d) => d.getUTCFullYear() * 1_000_000 + (d.getUTCMonth() + 1) * 10_000 + d.getUTCDate() * 100 + d.getUTCHours(), 'hourly snapshot'],
  ['daily', (d) => d.getUTCFullYear() * 10_000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate(), 'daily snapshot'],
  ['weekly', (d) => isoWeek(d), 'weekly snapshot'],
  ['monthly', (d) => d.getUTCFullYear() * 100 + (d.getUTCMonth() + 1), 'monthly snapshot'],
  ['yearly', (d) => d.getUTCFullYear(), 'yearly snapshot'],
];

function minus(t: Date, d: Duration): Date {
  const r = new Date(t.getTime());
  r.setUTCFullYear(r.getUTCFullYear() - d.years, r.getUTCMonth() - d.months, r.getUTCDate() - d.days);
  return new Date(r.getTime() - d.hours * 3_600_000);
}

export function applyPolicy<T extends Dated>(snapshots: readonly T[], p: KeepPolicy): PolicyResult<T> {
  const list = [...snapshots].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  const reasons = new Map<string, string[]>();
  const keep: T[] = [];
  const remove: T[] = [];
  if (list.length === 0) return { keep, remove, reasons };
  const counts = BUCKETS.map(([k]) => (p[k] as number | undefined) ?? 0);
  const last = BUCKETS.map(() => -1);
  const since = p.within ? minus(new Date(list[0]!.time), p.within).getTime() : undefined;
  list.forEach((s, nr) => {
    const why: string[] = [];
    const t = new Date(s.time);
    for (const set of p.tags ?? []) if (set.every((tag) => s.tags.includes(tag))) why.push(`has tags ${set.join(',')}`);
    if (since !== undefined && t.getTime() > since) why.push('within');
    BUCKETS.forEach(([, bucket, reason], i) => {
      if (counts[i]! <= 0) return;
      const v = bucket(t, nr);
      if (v !== last[i]) {
        last[i] = v;
        counts[i]!--;
        why.push(reason);
      }
    });
    if (why.length > 0) {
      keep.push(s);
      reasons.set(s.id, why);
    } else remove.push(s);
  });
  // Lifeboat's own floor: the newest removed come back until min-keep are kept.
  while (p.minKeep && keep.length < p.minKeep && remove.length > 0) {
    const back = remove.shift()!;
    keep.push(back);
    reasons.set(back.id, ['min-keep']);
  }
  keep.sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  return { keep, remove, reasons };
}
