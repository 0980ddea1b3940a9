/**
 * A lifeboat command as data: what the daemon runs as a job and what the runbook
 * prints for a person are both an `Invocation`, rendered by the one `toArgv` below,
 * so the two cannot drift apart and no caller assembles argv by hand. Each kind of
 * source builds its invocations (src/sources/<kind>/kind.ts); nothing here knows a kind.
 */
import { LifeboatError } from '../errors.js';

/**
 * An option's value: a string or number is one `--flag value`; an array repeats the
 * flag once per element (`--tag a --tag b`); `true` is a bare `--flag`; `false`,
 * `undefined` and an empty array leave the flag out.
 */
export type OptionValue = string | number | boolean | readonly string[] | undefined;

export interface Invocation {
  /** The words naming the command, e.g. ['pg', 'restore'] (after `lifeboat` and its global options). */
  command: readonly string[];
  /**
   * Arguments a person writes right after the command words (a snapshot id, a
   * database file). Rendered there while none of them could be read as a flag.
   */
  positionals?: readonly string[];
  /** In the order printed. */
  options: ReadonlyArray<readonly [flag: `--${string}`, value: OptionValue]>;
  /** Trailing arguments (the paths of a files backup), after the options. */
  operands?: readonly string[];
}

const looksLikeFlag = (v: string): boolean => v.startsWith('-');

/**
 * The argv of an invocation. Arguments stay where a person writes them, except that
 * when any positional or operand starts with `-` (a file named `-x`), all of them go
 * after the options behind `--`, so the command reads them as arguments and never as
 * flags. Throws USAGE for a flag that is not `--name` (a bug in a kind's definition).
 */
export function toArgv(inv: Invocation): string[] {
  const positionals = inv.positionals ?? [];
  const operands = inv.operands ?? [];
  const guarded = [...positionals, ...operands].some(looksLikeFlag);
  const out = [...inv.command];
  if (!guarded) out.push(...positionals);
  for (const [flag, value] of inv.options) {
    if (!/^--[a-z][a-z0-9-]*$/.test(flag)) throw new LifeboatError('USAGE', `"${flag}" is not an option name`, { hint: 'options are written --lower-case-words' });
    if (value === undefined || value === false) continue;
    if (value === true) out.push(flag);
    else if (typeof value === 'string' || typeof value === 'number') out.push(flag, String(value));
    else for (const one of value) out.push(flag, one);
  }
  if (guarded) out.push('--', ...positionals, ...operands);
  else out.push(...operands);
  return out;
}
