/**
 * Which options each kind of source's restore takes, in one table: the daemon's
 * restore jobs, recoveries and the runbook all build their restore command from it,
 * so a source setting (bin_dir, say) cannot reach one of them as a flag the command
 * does not know. test/unit/restore-options.test.ts checks every flag here against the
 * CLI's own --help, and the daemon tests run the commands built from it.
 */
import type { SourceConfig, SourceKind } from '../config/config.js';

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
}

/** One option of a kind's restore: where its value comes from, and the flag it becomes. */
export interface RestoreOption {
  /** The CLI flag, or '' for a positional argument. */
  flag: string;
  /** Where the value comes from: a request field or a source setting. */
  from: 'target' | 'snapshot' | 'time' | 'start' | 'keep_running' | 'port' | 'name' | 'bin_dir' | 'checks';
  /** A flag without a value (present when `from` is true). */
  boolean?: boolean;
}

/** The command words before the options, per kind. */
export const RESTORE_COMMAND: Record<SourceKind, readonly string[]> = {
  files: ['restore'],
  sqlite: ['sqlite', 'restore'],
  postgres: ['pg', 'restore'],
};

/**
 * The table. Order is the order of the printed command. Files name their source so
 * "latest" is that source's newest snapshot in a shared repository.
 */
export const RESTORE_OPTIONS: Record<SourceKind, readonly RestoreOption[]> = {
  files: [
    { flag: '', from: 'snapshot' },
    { flag: '--source', from: 'name' },
    { flag: '--target', from: 'target' },
    { flag: '--time', from: 'time' },
  ],
  sqlite: [
    { flag: '', from: 'name' },
    { flag: '--output', from: 'target' },
    { flag: '--time', from: 'time' },
  ],
  postgres: [
    { flag: '--name', from: 'name' },
    { flag: '--target-dir', from: 'target' },
    { flag: '--time', from: 'time' },
    { flag: '--bin-dir', from: 'bin_dir' },
    { flag: '--port', from: 'port' },
    { flag: '--start', from: 'start', boolean: true },
    { flag: '--keep-running', from: 'keep_running', boolean: true },
    // The source's checks, run on the started copy (repeated: one flag per query).
    { flag: '--check', from: 'checks' },
  ],
};

/** Which request fields a kind's restore takes (the API refuses the others). */
export function takes(kind: SourceKind, field: RestoreOption['from']): boolean {
  return RESTORE_OPTIONS[kind].some((o) => o.from === field);
}

function valueOf(s: SourceConfig, p: RestoreParams, from: RestoreOption['from']): string | string[] | boolean | undefined {
  switch (from) {
    case 'target':
      return p.target;
    case 'snapshot':
      // A files restore always names a snapshot: "latest" (with --source) when none is given.
      return p.snapshot ?? 'latest';
    case 'time':
      return p.time;
    case 'start':
      return p.start === true ? true : undefined;
    case 'keep_running':
      return p.keepRunning === true ? true : undefined;
    case 'port':
      return p.port === undefined ? undefined : String(p.port);
    case 'name':
      return s.name;
    case 'bin_dir':
      return s.binDir;
    case 'checks':
      // Only a started copy can be checked.
      return p.start === true && s.checks?.length ? s.checks : undefined;
  }
}

/** The argv of a source's restore (after `lifeboat [--config F --repo R]`). */
export function restoreArgs(s: SourceConfig, p: RestoreParams): string[] {
  const out = [...RESTORE_COMMAND[s.kind]];
  for (const o of RESTORE_OPTIONS[s.kind]) {
    const v = valueOf(s, p, o.from);
    if (v === undefined || v === false) continue;
    if (o.flag === '') out.push(String(v));
    else if (o.boolean) out.push(o.flag);
    else for (const one of Array.isArray(v) ? v : [v]) out.push(o.flag, String(one));
  }
  return out;
}
