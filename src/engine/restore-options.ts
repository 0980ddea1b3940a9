/**
 * A restore request and how it becomes a command. Which options each kind of source's
 * restore takes is one table per kind (`restore.options` in src/sources/<kind>/kind.ts):
 * the daemon's restore jobs, recoveries and the runbook all build their restore
 * command from it, so a source setting (bin_dir, say) cannot reach one of them as a
 * flag the command does not know. test/unit/restore-options.test.ts checks every flag
 * against the CLI's own --help, and the daemon tests run the commands built from it.
 */
import type { SourceConfig } from '../config/config.js';
import { LifeboatError } from '../errors.js';
import { sourceKind } from '../sources/registry.js';
import { toArgv, type Invocation, type OptionValue } from './invocation.js';

/** What a restore of one source is asked for (the API's body, a recovery member, a runbook step). */
export interface RestoreParams {
  /** files: a snapshot id (default: the source's newest backup). */
  snapshot?: string;
  /** postgres, sqlite: recover to this moment (RFC 3339); files: the newest backup at or before it. */
  time?: string;
  /** files and postgres: a directory that must not exist; sqlite: a file that must not exist. */
  target: string;
  /** postgres: start the result, wait for promotion, check it and measure the RTO (then stop it). */
  start?: boolean;
  /** postgres, with start: leave it running (restarted with its own settings) once its checks pass. */
  keepRunning?: boolean;
  /** postgres: the port of the restored server (default: a free one, never the primary's). */
  port?: number;
  /** sqlite, redis: up to and including this transaction (src/sources/<kind>/transactions.ts). */
  txn?: number;
  /** sqlite, redis: up to just before this transaction. */
  beforeTxn?: number;
  /** sqlite, redis: the generation `txn` / `beforeTxn` count in (default: the newest). */
  generation?: string;
}

/** One option of a kind's restore: where its value comes from, and the flag it becomes. */
export interface RestoreOption {
  /** The CLI flag, or '' for a positional argument. */
  flag: '' | `--${string}`;
  /** Where the value comes from: a request field or a source setting. */
  from: 'target' | 'snapshot' | 'time' | 'start' | 'keep_running' | 'port' | 'txn' | 'before_txn' | 'generation' | 'name' | 'bin_dir' | 'checks';
  /** A flag without a value (present when `from` is true). */
  boolean?: boolean;
}

/** The restore table of a kind restored by name into a new path, to a time or a snapshot (bucket, command). */
export const NAME_OUTPUT_TIME_SNAPSHOT: readonly RestoreOption[] = [
  { flag: '', from: 'name' },
  { flag: '--output', from: 'target' },
  { flag: '--time', from: 'time' },
  { flag: '--snapshot', from: 'snapshot' },
];

/** The options of a kind whose transactions are numbered (sqlite, redis): --txn, --before-txn, --generation. */
export const TXN_OPTIONS: readonly RestoreOption[] = [
  { flag: '--txn', from: 'txn' },
  { flag: '--before-txn', from: 'before_txn' },
  { flag: '--generation', from: 'generation' },
];

/**
 * USAGE unless the request names at most one moment (`snapshot`, `time`, `txn`,
 * `before_txn`), and `generation` only with a transaction: what every restore command
 * refuses too, refused before a job starts.
 */
export function checkMoment(p: RestoreParams): void {
  const given = [p.snapshot !== undefined && 'snapshot', p.time !== undefined && 'time', p.txn !== undefined && 'txn', p.beforeTxn !== undefined && 'before_txn'].filter((x) => x);
  if (given.length > 1) throw new LifeboatError('USAGE', `give one of "snapshot", "time", "txn" and "before_txn", not ${given.map((x) => `"${String(x)}"`).join(' and ')}`, { hint: 'each names the moment to restore to' });
  if (p.generation !== undefined && p.txn === undefined && p.beforeTxn === undefined) {
    throw new LifeboatError('USAGE', '"generation" goes with "txn" or "before_txn"', { hint: 'it names the generation the transaction number counts in' });
  }
}

/** A restore check: `snapshot` and `time` each pick the snapshot, so a request may give one (USAGE naming `what`). */
export function snapshotOrTime(what: string): (s: unknown, p: RestoreParams) => void {
  return (_s, p) => {
    if (p.snapshot !== undefined && p.time !== undefined) {
      throw new LifeboatError('USAGE', `give "snapshot" or "time" for a ${what} restore, not both`, { hint: 'the newest snapshot at or before "time" is used' });
    }
  };
}

/** Which request fields a kind's restore takes (the API refuses the others). */
export function takes(kind: string, field: RestoreOption['from']): boolean {
  return sourceKind(kind).restore.options.some((o) => o.from === field);
}

function valueOf(s: SourceConfig, p: RestoreParams, { from, flag }: RestoreOption): string | string[] | boolean | undefined {
  switch (from) {
    case 'target':
      return p.target;
    case 'snapshot':
      // A files restore always names a snapshot (its positional): "latest" (with --source) when
      // none is given. A kind whose --snapshot flag is an alternative to --time (redis) gets none.
      return flag === '' ? (p.snapshot ?? 'latest') : p.snapshot;
    case 'time':
      return p.time;
    case 'start':
      return p.start === true ? true : undefined;
    case 'keep_running':
      return p.keepRunning === true ? true : undefined;
    case 'port':
      return p.port === undefined ? undefined : String(p.port);
    case 'txn':
      return p.txn === undefined ? undefined : String(p.txn);
    case 'before_txn':
      return p.beforeTxn === undefined ? undefined : String(p.beforeTxn);
    case 'generation':
      return p.generation;
    case 'name':
      return s.name;
    case 'bin_dir':
      return s.binDir;
    case 'checks':
      // Only a started copy can be checked; a kind without `start` checks every restore (Redis loads it to save it).
      return (p.start === true || !takes(s.kind, 'start')) && s.checks?.length ? s.checks : undefined;
  }
}

/** A source's restore as an invocation, from its kind's table. */
export function restoreInvocation(s: SourceConfig, p: RestoreParams): Invocation {
  const { command, options } = sourceKind(s.kind).restore;
  const positionals: string[] = [];
  const flags: Array<readonly [`--${string}`, OptionValue]> = [];
  for (const o of options) {
    const v = valueOf(s, p, o);
    if (o.flag === '') {
      if (v !== undefined && v !== false) positionals.push(String(v));
    } else flags.push([o.flag, o.boolean ? v === true : v]);
  }
  return { command, positionals, options: flags };
}

/** The argv of a source's restore (after `lifeboat [--config F --repo R]`). */
export function restoreArgs(s: SourceConfig, p: RestoreParams): string[] {
  return toArgv(restoreInvocation(s, p));
}
