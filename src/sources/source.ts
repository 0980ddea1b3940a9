/**
 * The Source seam: everything Lifeboat knows about one kind of data (files,
 * postgres, sqlite, …) is one `SourceKind` value defined in that kind's folder,
 * src/sources/<kind>/kind.ts, and registered by name (registry.ts). Generic code —
 * configuration, the daemon's jobs and supervisor, the runbook, drills, copies and
 * retention — asks the registry for the kind of a source or snapshot and calls the
 * members below; none of it names a kind. docs/design-notes.md ("The Source seam")
 * says how to add one.
 *
 * Members are plain data or synchronous builders unless they touch a repository or a
 * server. Builders (`jobs`, `restore`, `continuous.invocation`, `runbook`) are pure:
 * same source in, same answer out, no I/O, safe to call any number of times.
 */
import type { Command } from 'commander';
import type { z } from 'zod';
import type { LifeboatConfig, SourceConfig } from '../config/config.js';
import type { ArchiveState } from '../engine/archive-status.js';
import type { Invocation } from '../engine/invocation.js';
import type { RestoreOption, RestoreParams } from '../engine/restore-options.js';
import type { DrillOptions, DrillRecord } from '../engine/drill/drill.js';
import type { LogTrim, TrimOptions } from '../engine/retention/logs.js';
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot/snapshot.js';
import type { KindWindow } from '../engine/window.js';

/** What `config check` may use to look at a source's places and servers (cli/commands/config-reach.ts). */
export interface ReachProbe {
  /** The problem with a path that must exist and be readable, or undefined. */
  file(path: string, type: 'file' | 'directory' | 'any'): string | undefined;
  /** `p`, or a rejection once the probe's time limit passed. */
  within<T>(p: Promise<T>, what: string): Promise<T>;
  /** A path from lifeboat.yaml (password_file…) as the jobs resolve it: relative to the file. */
  resolve(file: string): string;
}

/** What a kind's drill adds to the record (engine/drill/drill.ts owns timing, scratch space and saving). */
export interface DrillContext {
  /** A private directory, removed after the drill; restore into a new path below it. */
  scratch: string;
  opts: DrillOptions;
  /** Fill `snapshot`, `checks`, `rpo_seconds` (and `rto_seconds` when the kind measures its own). */
  record: DrillRecord;
}

/** A kind's watcher of archiving it does not run itself (see `archiveWatch`). */
export interface ArchiveWatcher {
  readonly states: ReadonlyMap<string, ArchiveState>;
  start(): void;
  stop(): Promise<void>;
}

/** What the runbook gives a kind to write its steps with (daemon/runbook.ts). */
export interface RunbookHelpers {
  /** `lifeboat --config FILE -r REPOSITORY`, to start every command with. */
  g: string;
  /** An invocation as a command line for a POSIX shell. */
  cmd(inv: Invocation): string;
  /** One word quoted for a POSIX shell where it needs it. */
  shell(word: string): string;
}

export interface SourceKind<Point = unknown> {
  /** The `kind:` of lifeboat.yaml and the `source.kind` stored in snapshots; never changes once released. */
  readonly name: string;

  /**
   * The kind's consistency point as stored in a snapshot's `consistency` (a format
   * fact: change only with docs/format.md). Read it with `pointOf` (registry.ts),
   * which validates with this schema instead of casting.
   */
  readonly point: z.ZodType<Point>;

  /**
   * Its keys in lifeboat.yaml, declared once in its options.ts (the option model):
   * the config reader, `config check` and docs/configuration.md read them from here.
   */
  readonly options: z.ZodObject;
  /** What its parsed keys (a value `options` produced) set in its SourceConfig. */
  fields(options: Record<string, unknown>): Partial<SourceConfig>;

  /** `config check`: one message per problem found with the source's places and servers; never throws. */
  reach(source: SourceConfig, probe: ReachProbe): Promise<string[]>;

  /** The daemon's jobs for a source of this kind: the commands a person would type. */
  readonly jobs: {
    /** `backup` job; every tag of the source is passed. */
    backup(source: SourceConfig): Invocation;
    /** `drill` job of this one source. */
    drill(source: SourceConfig): Invocation;
  };

  /**
   * The environment a job child needs for this source (secrets such as PGPASSWORD,
   * never on argv). `configFile` is lifeboat.yaml, which relative secret files are
   * resolved against. Throws when a named secret file cannot be read.
   */
  childEnv(source: SourceConfig, configFile: string): Record<string, string>;

  /** Restores (daemon jobs, recoveries, the runbook): the command and the one table of its options. */
  readonly restore: {
    command: readonly string[];
    /** In the order printed; `flag: ''` is a positional argument. test/unit/restore-options.test.ts checks each against --help. */
    options: readonly RestoreOption[];
    /** The daemon starts and checks the result when the request does not say (PostgreSQL: measures a real RTO). */
    startByDefault: boolean;
    /** The daemon's restore result carries `rto_seconds`, worth a line in the job's log. */
    measuresRto: boolean;
    /** An example target path for a hint. */
    targetExample: string;
    /** Hint when a request names a field this kind does not take. */
    fieldsHint: string;
    /** Checks beyond the option table before anything starts; throws USAGE or NOT_FOUND naming the problem. */
    check?(source: SourceConfig, p: RestoreParams): void;
  };

  /** What `lifeboat recover` (engine/recover.ts) asks of a kind beyond its restore; absent: generic text. */
  readonly recover?: {
    /** Absolute paths of the live data a snapshot was taken from, when the snapshot says: a restore there needs --overwrite. */
    live?(snapshot: Snapshot): string[];
    /**
     * Lines that put a restored copy in service, each a shell command or a `# ` comment:
     * `target` the restored copy, `live` where the data lives when known, `result` the
     * restore command's JSON result (a PostgreSQL copy's port, say); `shell` quotes a word
     * for a POSIX shell where it needs it. Pure.
     */
    switchOver(target: string, live: readonly string[], result: Record<string, unknown>, shell: (word: string) => string): string[];
    /** Where the data of live path `live` lands in a restore into `output`, when not `output` itself (files: under its original path). */
    restoredPath?(output: string, live: string): string;
  };

  /** Recovery drills (engine/drill/drill.ts). */
  readonly drill: {
    /** The name a snapshot of this kind is drilled under, or undefined when it cannot be told. */
    nameOf(snapshot: Snapshot): string | undefined;
    /**
     * Restores the newest data of `name` into `ctx.scratch` and runs the kind's own
     * checks, filling `ctx.record`. Throws for a restore that cannot run (the drill
     * records it as failed); a failed check is a `checks` entry with ok false.
     */
    run(repo: Repository, name: string, ctx: DrillContext): Promise<void>;
  };

  /**
   * What `lifeboat check` adds about this kind's data in the repository (PostgreSQL:
   * WAL timelines a restore could wrongly follow). Never throws: what it cannot check
   * is a warning too.
   */
  checkWarnings?(repo: Repository): Promise<string[]>;

  /** A log archive (PostgreSQL WAL, SQLite frames): absent for kinds restorable only to a snapshot. */
  readonly log?: {
    /** The repository's log sources (repo.listLogs) of a source name: what a copy must carry. */
    sources(name: string): string[];
    /**
     * Removes the log a source no longer needs once `after` remain (retention); with
     * opts.dryRun only counts. Idempotent. Must not remove anything while opts.busy
     * leaves in doubt whether a base backup is being written.
     */
    trim(repo: Repository, name: string, after: readonly Snapshot[], cutoff: number | undefined, opts: TrimOptions): Promise<LogTrim>;
    /** Where forget's JSON reports this kind's trims (a CLI surface: keep it); kinds added since report under `segments`. */
    reportAs: 'wal' | 'sqlite' | 'segments';
  };

  /**
   * The stretches of time its log lets a restore reach (engine/window.ts), computed the
   * way its `restore --time` chooses a base and replays: absent for kinds restorable only
   * to a snapshot. Reads only; never throws for a gap (that is where a stretch ends, with
   * `endsBecause`), only for a repository that cannot be read.
   */
  window?(repo: Repository, name: string): Promise<KindWindow>;

  /** Continuous archiving the daemon keeps alive for sources with `continuous` set. */
  readonly continuous?: {
    method: 'stream' | 'replicate';
    /** The long-running command; `stateDir` is the daemon's state directory (spools live there). */
    invocation(source: SourceConfig, stateDir: string): Invocation;
    /** Its status events carry a shipping lag worth a metric. */
    reportsShipLag: boolean;
    /** For the runbook: "WAL is streamed". */
    phrase: string;
  };
  /**
   * A watcher of the sources whose log reaches the repository through their server's
   * own archive command (no process of ours runs for them): the daemon creates one per
   * kind that has it, starts it, reads `states` like its supervisor's, and stops it at
   * shutdown. `stop` resolves once no poll is running; it is called once.
   */
  archiveWatch?(config: LifeboatConfig, onChange: (state: ArchiveState) => void, clock: { now(): number }): ArchiveWatcher;

  /** The runbook (daemon/runbook.ts): what is backed up, and the numbered restore steps. */
  readonly runbook: {
    what(source: SourceConfig): string;
    /** The numbered steps, as Markdown lines. */
    steps(source: SourceConfig, h: RunbookHelpers): string[];
  };

  /**
   * The kind's own CLI commands (`lifeboat pg …`), loaded on demand so that
   * registering the kinds stays cheap for the lean archive commands; cli/main.ts
   * loads them once and calls `register` while it builds the program.
   */
  commands?: {
    /** The top-level command words its module registers (`pg`), so cli/main.ts loads it only for them. */
    words: readonly string[];
    load(): Promise<{ register(program: Command): void }>;
  };
}
