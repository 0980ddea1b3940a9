/**
 * What the kinds that number their transactions share (SQLite's WAL commits,
 * src/sources/sqlite/transactions.ts; Redis's command stream,
 * src/sources/redis/transactions.ts): which generation a moment falls in, which
 * transactions `history --around` lists around it, the parsing of `--txn N`,
 * `--before-txn N` and `--limit N`, and a retry when compaction merges a segment away
 * while it is read. Each kind keeps its own numbering and its own description.
 */
import { LifeboatError } from '../errors.js';

/** Most transactions `history --around` lists at once (each is read back and described). */
export const MAX_AROUND = 500;

/** A generation's stored history: from its oldest base to its newest stored transaction (Unix ms). */
export interface TimeSpan {
  generation: string;
  from: number;
  to: number;
}

/**
 * The generation named (NOT_FOUND when there is none), else the one whose history spans
 * `t`, else the nearest; NOT_FOUND when there is no history at all.
 */
export function pickGeneration<S extends TimeSpan>(spans: readonly S[], t: number, wanted: string | undefined, what: { source: string; historyCommand: string; shipCommand: string }): S {
  if (wanted !== undefined) {
    const g = spans.find((s) => s.generation === wanted);
    if (!g) throw new LifeboatError('NOT_FOUND', `${what.source} has no generation ${wanted}`, { hint: `\`${what.historyCommand}\` names the generations` });
    return g;
  }
  const g = spans.find((s) => s.from <= t && t <= s.to) ?? [...spans].sort((x, y) => distance(x, t) - distance(y, t))[0];
  if (!g) throw new LifeboatError('NOT_FOUND', `no replicated history of ${what.source} in this repository`, { hint: `\`${what.shipCommand}\` ships transactions; \`lifeboat snapshots\` lists what is stored` });
  return g;
}

function distance(s: TimeSpan, t: number): number {
  return t < s.from ? s.from - t : t > s.to ? t - s.to : 0;
}

/**
 * `limit` of `all` (in order, by the replicator's time) around `t`: a quarter of them
 * before it, the rest from the first seen at or after it. The replicator sees a
 * transaction after its commit, so one committed at the moment is seen then or later
 * (several polls later on a loaded machine, in a burst with the ones before it).
 */
export function aroundSlice<T extends { time: number }>(all: readonly T[], t: number, limit: number): T[] {
  const boundary = ((i) => (i < 0 ? all.length : i))(all.findIndex((x) => x.time >= t));
  let a = Math.max(0, boundary - Math.floor(limit / 4));
  const b = Math.min(all.length, a + limit);
  a = Math.max(0, b - limit);
  return all.slice(a, b);
}

/** `--txn N` / `--before-txn N`: a transaction number (1, 2, …); USAGE otherwise. */
export function parseTxnNumber(text: string, flag: string, historyCommand: string): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new LifeboatError('USAGE', `${flag} takes a transaction number (1, 2, ...), not "${text}"`, { hint: `\`${historyCommand}\` lists them` });
  }
  return n;
}

/** `--limit N` of `history --around`: 1 to MAX_AROUND; USAGE otherwise. */
export function parseAroundLimit(text: string, why: string): number {
  const limit = Number(text);
  if (!/^[0-9]+$/.test(text) || limit < 1 || limit > MAX_AROUND) {
    throw new LifeboatError('USAGE', `--limit must be a whole number from 1 to ${MAX_AROUND}`, { hint: why });
  }
  return limit;
}

/** BUSY: a segment was merged away by compaction while the history was read (`relisting` retries). */
export function vanished(source: string): LifeboatError {
  return new LifeboatError('BUSY', `a log segment of ${source} was compacted away while it was read`, { hint: 'run the command again' });
}

/**
 * Runs a reading of the history again (at most 3 times more) when it met `vanished`: a
 * fresh listing finds the merged object. With `lookAgain`, an answer it calls negative
 * ("not there", "a gap") is looked for once more: a listing taken while compaction ran
 * can miss a deleted part and the merged object without any read failing.
 */
export async function relisting<T>(fn: () => Promise<T>, lookAgain?: (answer: T) => boolean): Promise<T> {
  let again = lookAgain !== undefined;
  for (let i = 0; ; i++) {
    try {
      const answer = await fn();
      if (!again || !lookAgain?.(answer)) return answer;
      again = false;
    } catch (err) {
      if (i >= 3 || !(err instanceof LifeboatError && err.code === 'BUSY')) throw err;
    }
  }
}
