/**
 * What a kind of data gives the source conformance suite (test/conformance/suite.ts):
 * its real data started in a scratch place, a way to change it, and a fingerprint a
 * user would check after a restore (file bytes and modes, row counts and content
 * hashes, the rows themselves). Kinds with a continuous log (PostgreSQL's WAL archive,
 * SQLite's frame replication) also say how to start and stop it, and their moments
 * wait until it holds everything committed so far. The suite does the rest the way
 * the daemon does: it writes no command lines of its own (only a log position's flag,
 * which the daemon's restore parameters do not carry yet).
 */
import type { SourceKind } from '../../src/config/config.js';
import type { CliResult } from '../helpers.js';

/** Something compared with toEqual: plain JSON-like data, the same for the live and the restored copy. */
export type Fingerprint = unknown;

/** The continuous log of a kind: WAL archiving, frame replication. */
export interface LogDriver {
  /** Starts archiving (nothing to do for a log that runs with the server, such as archive_command). */
  start(): Promise<void>;
  /** Stops archiving; what was archived stays restorable. */
  stop(): Promise<void>;
  /** Kinds whose log has positions (PostgreSQL's LSN): where the log is now, and the restore flags naming it. */
  position?: {
    now(): Promise<string>;
    /** Appended to the daemon's restore command: RestoreParams has no position field (yet). */
    args(position: string): string[];
  };
}

/** One kind's data, started and ready, with the lifeboat.yaml that names it. */
export interface Subject {
  /** The lifeboat.yaml the driver wrote: one repository, one source. */
  config: string;
  /** The source's name in it. */
  source: string;
  /** Runs `lifeboat ARGS` as the user that runs this kind's jobs (postgres for PostgreSQL, as archive_command). */
  cli(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** A path that does not exist yet, where a restore of this kind may write. */
  target(label: string): string;
  /** Changes the data (step 1, 2, …): adds, rewrites and removes something, so each step's fingerprint differs. */
  change(step: number): Promise<void>;
  /** The live data's fingerprint now. */
  fingerprint(): Promise<Fingerprint>;
  /**
   * A moment (epoch milliseconds) after every commit made so far and before every later
   * one, returned once a restore to that time can reach it (for a kind with a log: once
   * the log holds it, waited for as a condition such as an archive status reaching a
   * position, never as a guessed time). Usually nextMoment() plus the kind's waits.
   */
  moment(): Promise<number>;
  /** The fingerprint of what a restore wrote at `target` (started and stopped again where the kind is a server). */
  restored(target: string): Promise<Fingerprint>;
  /** Whether the kind's restore takes a snapshot id (RestoreParams.snapshot); every kind takes a time. */
  restoresSnapshotIds: boolean;
  log?: LogDriver;
  /** Stops everything the driver started and removes its scratch data. */
  close(): Promise<void>;
}

export interface KindDriver {
  kind: SourceKind;
  /** Whether the kind has a continuous log (its subject then has `log`). */
  hasLog: boolean;
  /** Whether that log has positions a restore can name (its subject's log then has `position`). */
  hasPositions?: boolean;
  setup(): Promise<Subject>;
}

/**
 * A moment to restore to: a millisecond that every commit made so far lies before
 * (and every later one after, once nextMoment has returned). Restore times are
 * RFC 3339 with milliseconds while commit times have microseconds, so the moment
 * is the millisecond after now; the wait for the clock to pass it is a condition
 * (about a millisecond), not a guess.
 */
export async function nextMoment(): Promise<number> {
  const t = Date.now() + 1;
  while (Date.now() <= t) await new Promise((r) => setImmediate(r));
  return t;
}

/**
 * Polls `ready` until it returns true; fails after `timeoutMs` with `what()` (evaluated
 * then, so it can describe the last state seen). `ready` may throw to fail at once.
 */
export async function until(what: () => string, ready: () => boolean | Promise<boolean>, timeoutMs = 60_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
