/** Option parsers shared by commands, and flags derived from the option model (config/model.ts). */
import { Option, type Command } from 'commander';
import type { z } from 'zod';
import { LifeboatError } from '../../errors.js';
import { duration, metaOf, textsElement, parseOptionValue } from '../../config/schema.js';
import { durationMs } from '../../util/duration.js';
import { parseTargetTime } from '../../engine/target-time.js';
import { MAX_AROUND, parseAroundLimit } from '../../engine/txn-history.js';

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parseTime(text: string): Date {
  const t = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(t.getTime())) {
    throw new LifeboatError('USAGE', `"${text}" is not an RFC 3339 time`, { hint: 'example: 2026-11-21T14:30:00Z' });
  }
  return t;
}

export function parsePercent(text: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(text);
  const v = m ? Number(m[1]) : NaN;
  if (!(v > 0 && v <= 100)) throw new LifeboatError('USAGE', `"${text}" is not a percentage in (0, 100]`, { hint: 'example: 10%' });
  return v / 100;
}

/** Most worker threads a command takes: each is an isolate with its own buffers (~50 MB). */
const MAX_THREADS = 64;

/**
 * `--threads N`: a whole number from 1 to MAX_THREADS. Zero (or text, which is NaN)
 * once left a backup's jobs queued with no worker to take them: the process ran out
 * of work and exited 0 having stored nothing.
 */
export function parseThreads(text: string): number {
  const n = /^\d{1,3}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= MAX_THREADS)) throw new LifeboatError('USAGE', `--threads "${text}" is not a whole number from 1 to ${MAX_THREADS}`, { hint: 'leave it out for one thread per core (at least 2)' });
  return n;
}

const ANY_DURATION = duration();
const ZERO_OR_MORE = duration({ zero: true });

/**
 * Milliseconds in a duration of the one grammar (util/duration.ts), for flags that
 * are not lifeboat.yaml keys (--grace, --busy-timeout, ...); `zero` also takes 0.
 */
export function parseDuration(text: string, flag: string, opts: { zero?: boolean } = {}): number {
  return durationMs(parseOptionValue(opts.zero ? ZERO_OR_MORE : ANY_DURATION, text, flag));
}

/**
 * The commander flag of an option the model declares (its `flag`), with the model's
 * description and the model's parser: `--keep-within 30m` is refused with the same
 * hint as `keep_within: 30m` in lifeboat.yaml. The parsed value (a Duration, a
 * number) is what the action receives; `default` is given as text and parsed too.
 * A list option (texts(): `exclude`, `checks`) is a repeatable flag whose values
 * collect into a list, empty when the flag is not given.
 *
 * `description` replaces the model's where the command says more (which server a
 * `--dsn` must reach); `short` adds a one-letter alias; `required` makes it mandatory.
 */
export function flagOf(
  schema: z.ZodType,
  opts: { arg?: string; short?: string; default?: string; description?: string; required?: boolean } = {},
): Option {
  const meta = metaOf(schema);
  if (!meta?.flag) throw new Error('flagOf: the option declares no flag');
  const flag = meta.flag;
  const element = textsElement(schema);
  let description = opts.description ?? meta.description;
  if (element && !/repeatable/.test(description)) description += ' (repeatable)';
  const o = new Option(`${opts.short ? `${opts.short}, ` : ''}${flag} ${opts.arg ?? '<duration>'}`, description);
  if (element) {
    if (opts.default !== undefined) throw new Error('flagOf: a repeatable flag has no default but the empty list');
    o.argParser((v: string, previous: string[] | undefined) => [...(previous ?? []), parseOptionValue(element, v, flag)]);
    o.default([]);
  } else {
    o.argParser((v: string) => parseOptionValue(schema, v, flag));
    if (opts.default !== undefined) o.default(parseOptionValue(schema, opts.default, flag), opts.default);
  }
  if (opts.required) o.makeOptionMandatory();
  return o;
}

/** The flags of `KIND history NAME --around T` (SQLite, Redis): the moment, how many, which generation. */
export interface HistoryFlags {
  around: string;
  limit: string;
  generation?: string;
}

/** Adds `history <name>` with --around, --limit and --generation to a kind's command. */
export function historyCommand(parent: Command, description: string): Command {
  return parent
    .command('history <name>')
    .description(description)
    .requiredOption('--around <rfc3339>', 'the moment, e.g. 2026-11-21T14:30:05Z')
    .option('--limit <n>', `how many transactions, nearest first (at most ${MAX_AROUND})`, '20')
    .option('--generation <id>', 'look in this generation (default: the one whose history spans the moment)');
}

/** The parsed flags of a history command; `why` is the hint of a bad --limit. */
export function parseHistoryFlags(f: HistoryFlags, why: string): { around: Date; limit: number; generation?: string } {
  return { around: parseTargetTime(f.around), limit: parseAroundLimit(f.limit, why), ...(f.generation !== undefined && f.generation !== '' ? { generation: f.generation } : {}) };
}
