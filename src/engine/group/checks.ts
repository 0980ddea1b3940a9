/**
 * A group's cross-member checks (docs/groups.md, `checks:` in lifeboat.yaml), run by
 * `group drill` on the members restored into scratch: each side of a check is a query
 * on one member that gives a set of strings, and the check holds when every value of
 * `every` is among the values of `in`. What fails is counted, with a few examples.
 *
 * A member is read through a `ValueReader`, one per kind of restored copy (opened by
 * restored.ts): a Redis command on a scratch server loaded from the restored dump, the
 * first column of a read-only query on a restored SQLite file or a scratch PostgreSQL
 * started from the restored data directory, the names of files in a restored directory.
 */
import type { CheckQuery, GroupCheck } from '../../config/config.js';
import { LifeboatError } from '../../errors.js';

/**
 * The most values one side may give: a check holds both sides in memory (a set of
 * strings of about 100 bytes each is ~1 GB at this bound), and a query that gives more
 * is far more likely a mistake than an invariant.
 */
export const MAX_CHECK_VALUES = 10_000_000;
/** How many values that were not found a result names. */
const EXAMPLES = 5;

/** Gives the values of a query on one restored member, at most `limit` of them (more: a CHECK_TOO_BIG error). */
export interface ValueReader {
  values(q: CheckQuery, limit: number): Promise<Iterable<string>>;
}

export interface CrossCheckResult {
  name: string;
  ok: boolean;
  /** One line: what was compared and what was found. */
  detail: string;
  /** Values of `every` (counted once each) not among those of `in`; null when a query failed. */
  violations: number | null;
  /** Up to five of them. */
  examples: string[];
  every: { member: string; values: number | null };
  in: { member: string; values: number | null };
}

/** The values `q`'s `match` keeps, each its first group (or the whole match). */
export function* matched(q: Pick<CheckQuery, 'match'>, values: Iterable<string>): Generator<string> {
  if (q.match === undefined) {
    yield* values;
    return;
  }
  const re = new RegExp(q.match);
  for (const v of values) {
    const m = re.exec(v);
    if (m) yield m[1] ?? m[0];
  }
}

/** More values than a check may hold: the query is refused, not truncated. */
export function tooMany(member: string, limit: number): LifeboatError {
  return new LifeboatError('USAGE', `a check's query on member "${member}" gives more than ${limit} values`, { hint: 'narrow the query (a WHERE clause, a match:), or check a sample' });
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

async function valuesOf(q: CheckQuery, readers: ReadonlyMap<string, ValueReader>, limit: number): Promise<Set<string>> {
  const reader = readers.get(q.member);
  if (!reader) throw new LifeboatError('FAILED', `member "${q.member}" was not restored`, { hint: 'the check reads a member the drill did not restore' });
  const out = new Set<string>();
  for (const v of matched(q, await reader.values(q, limit))) out.add(v);
  return out;
}

/** Runs every check; a query that fails makes its check fail (with why), never the others. */
export async function runCrossChecks(checks: readonly GroupCheck[], readers: ReadonlyMap<string, ValueReader>, limit = MAX_CHECK_VALUES): Promise<CrossCheckResult[]> {
  const results: CrossCheckResult[] = [];
  for (const c of checks) {
    const base = { name: c.name, every: { member: c.every.member, values: null as number | null }, in: { member: c.in.member, values: null as number | null } };
    let every: Set<string>;
    let among: Set<string>;
    try {
      every = await valuesOf(c.every, readers, limit);
      base.every.values = every.size;
      among = await valuesOf(c.in, readers, limit);
      base.in.values = among.size;
    } catch (err) {
      results.push({ ...base, ok: false, violations: null, examples: [], detail: `a query failed: ${message(err)}` });
      continue;
    }
    let violations = 0;
    const examples: string[] = [];
    for (const v of every) {
      if (among.has(v)) continue;
      violations++;
      if (examples.length < EXAMPLES) examples.push(v);
    }
    const found = `among the ${among.size} of ${c.in.member}`;
    results.push({
      ...base,
      ok: violations === 0,
      violations,
      examples,
      detail: violations === 0 ? `all ${every.size} values of ${c.every.member} found ${found}` : `${violations} of the ${every.size} values of ${c.every.member} not found ${found}, e.g. ${examples.map((e) => JSON.stringify(e)).join(', ')}`,
    });
  }
  return results;
}
