/**
 * Retention policy with restic's semantics (restic `ApplyPolicy`), so an operator's
 * existing rules mean the same thing here: snapshots are taken newest first; each
 * --keep-{last,hourly,daily,weekly,monthly,yearly} N keeps the first snapshot of each
 * of the N newest distinct periods (last: each snapshot is its own period); --keep-tag
 * and --keep-within keep regardless of counts; a snapshot is kept if any rule keeps
 * it. Periods are computed in UTC (snapshot times are stored in UTC). Lifeboat adds
 * --min-keep: never fewer than N snapshots per group.
 *
 * Where Lifeboat departs from restic, so that a snapshot's claimed time cannot be used
 * to push the real ones out:
 *  - --keep-within is measured back from now, not from the newest snapshot (restic's
 *    choice lets one snapshot dated 2099 put every other outside the window). When
 *    backups have stopped, the window may hold nothing: the other rules, and forget's
 *    history guard, still hold the old snapshots.
 *  - A snapshot dated beyond now plus CLOCK_SKEW_MS is kept, reported as future-dated,
 *    and never counted: it takes no keep slot, is removed by no rule, and does not
 *    count towards --min-keep. Remove one deliberately with `forget ID`.
 *  - Snapshots a restricted key slot wrote (`trusted === false`) are counted apart:
 *    the rules run once over the trusted snapshots and once over the untrusted ones,
 *    each with its own slots and --min-keep, so a writer with an append-only key can
 *    never take a keep slot from a snapshot the administrator's keys wrote.
 */
import { isFutureDated } from '../../repo/snapshot/snapshot.js';
import { before, type Duration } from '../../util/duration.js';

export type { Duration } from '../../util/duration.js';

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

export interface Dated {
  id: string;
  time: string;
  tags: string[];
  /** false: written by a restricted key slot, counted apart (see above). */
  trusted?: boolean;
}

export interface PolicyResult<T extends Dated> {
  /** Newest first; includes the future-dated ones. */
  keep: T[];
  remove: T[];
  /** Why each kept snapshot is kept, by id. */
  reasons: Map<string, string[]>;
  /** Kept because they are dated in the future: suspicious, never counted by the rules. */
  future: T[];
}

export const FUTURE_REASON = 'dated in the future: suspicious, never counted';
export const UNTRUSTED_REASON = 'counted apart: restricted writer';

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

const newestFirst = (a: Dated, b: Dated) => Date.parse(b.time) - Date.parse(a.time);

/**
 * Applies the rules as of `now` (ms, default Date.now()): future-dated snapshots are
 * set aside and kept, trusted and untrusted ones each get their own slots.
 */
export function applyPolicy<T extends Dated>(snapshots: readonly T[], p: KeepPolicy, now = Date.now()): PolicyResult<T> {
  const reasons = new Map<string, string[]>();
  const future = snapshots.filter((s) => isFutureDated(s.time, now)).sort(newestFirst);
  const present = snapshots.filter((s) => !isFutureDated(s.time, now));
  for (const s of future) reasons.set(s.id, [FUTURE_REASON]);
  const trusted = applyRules(present.filter((s) => s.trusted !== false), p, now, reasons);
  const untrusted = applyRules(present.filter((s) => s.trusted === false), p, now, reasons);
  for (const s of untrusted.keep) reasons.get(s.id)?.push(UNTRUSTED_REASON);
  const keep = [...future, ...trusted.keep, ...untrusted.keep].sort(newestFirst);
  const remove = [...trusted.remove, ...untrusted.remove].sort(newestFirst);
  return { keep, remove, reasons, future };
}

function applyRules<T extends Dated>(snapshots: readonly T[], p: KeepPolicy, now: number, reasons: Map<string, string[]>): { keep: T[]; remove: T[] } {
  const list = [...snapshots].sort(newestFirst);
  const keep: T[] = [];
  const remove: T[] = [];
  if (list.length === 0) return { keep, remove };
  const counts = BUCKETS.map(([k]) => (p[k] as number | undefined) ?? 0);
  const last = BUCKETS.map(() => -1);
  // Calendar months and years, as restic's keep-within (util/duration.ts).
  const since = p.within ? before(p.within, now) : undefined;
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
  return { keep, remove };
}
