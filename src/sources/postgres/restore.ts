/**
 * Point-in-time restore of a PostgreSQL cluster: picks the newest base backup on
 * production's history that precedes the target, restores its data directory,
 * writes the backup label and the recovery settings (restore_command calling
 * `lifeboat pg archive-get`, the target, the timeline to follow, promote at the end)
 * and the settings that keep the copy from acting as its primary (archiving off, a
 * port of its own). A plain `pg_ctl start` then replays WAL to the target and promotes.
 *
 * Before writing anything it checks that the archive holds every segment from the
 * backup's start along that history without gaps, so recovery can never stop early,
 * silently, at a point the user did not ask for. PG_VERSION is named last, after the
 * rest is flushed to disk: until then PostgreSQL refuses to start the directory, so a
 * server started mid-restore, or after a restore or --delta that stopped part-way,
 * never runs on a copy that is not all there.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { isAlive } from '../../util/tied-child.js';
import type { Repository } from '../../repo/repository.js';
import { pickSnapshot, type Snapshot } from '../../repo/snapshot/snapshot.js';
import { formatLsn, parseLsn, segmentName } from './wal.js';
import { incompleteOf, missingItems, restore, type RestoreResult } from '../../engine/restore/restorer.js';
import type { ProgressFn } from '../../engine/progress.js';
import type { PgConsistency } from './names.js';
import { UnquotableError } from '../../util/shell.js';
import { choosePort, copySettings, recoverySettings, restoreCommand } from './recovery-conf.js';
import { DataDir, portOf } from './control-files.js';
import {
  backupRefs,
  chainFor,
  gatherTimelines,
  productionHistory,
  backupOnChain,
  timelineWarnings,
  type ChainLink,
  type TimelineFacts,
} from './timelines.js';
import { requirePgPoint } from './point.js';

/** Spool for prefetched WAL inside a restored data directory (left out of base backups). */
export const PREFETCH_DIR = 'lifeboat-prefetch';
/** Without it PostgreSQL refuses to start a data directory: restored last. */
const VERSION_FILE = 'PG_VERSION';

export type PgTarget =
  | { kind: 'latest' }
  | { kind: 'time'; time: Date }
  | { kind: 'lsn'; lsn: string }
  | { kind: 'xid'; xid: string }
  | { kind: 'name'; name: string };

export interface PgPlanOptions {
  name: string;
  target: PgTarget;
  /** The base backup to start from (id prefix or "latest"); default: chosen by target. */
  snapshot?: string;
  /** Recover along this timeline instead of production's history. */
  timeline?: number;
}

export interface PgRestoreOptions extends PgPlanOptions {
  targetDir: string;
  /** The argv of the command PostgreSQL runs to fetch WAL, without the trailing "%f %p" (quoted here). */
  archiveGetCommand: readonly string[];
  /** argv of archive-push for this archive, without %p: quoted in the comment on how to turn archiving on. */
  archivePushCommand?: readonly string[];
  /** The copy's port; default a free one that is not the primary's. */
  port?: number;
  /** Reuse an existing (stopped) data directory, rewriting only files that differ. */
  delta?: boolean;
  /** Already made by planRestore (pg verify plans first, to find the server binaries). */
  plan?: PgRestorePlan;
  onProgress?: ProgressFn;
}

/** What a restore will do, decided before anything is written. */
export interface PgRestorePlan {
  snapshot: Snapshot;
  /** The timeline recovery follows (recovery_target_timeline) and the history that leads to it. */
  timeline: number;
  chain: ChainLink[];
  /** One line per timeline in the archive that is not on production's history. */
  warnings: string[];
  /** What the archive holds, for the gap check before the restore writes anything. */
  facts: ReadonlyMap<number, TimelineFacts>;
}

export interface PgRestoreResult extends RestoreResult, Omit<PgRestorePlan, 'facts'> {
  recoveryConf: string[];
  port: number;
}

function consistencyOf(s: Snapshot): PgConsistency {
  return requirePgPoint(s);
}

/** The newest base backup on CHAIN from which the target is reachable. */
export function chooseBackup(all: Snapshot[], name: string, target: PgTarget, chain: readonly ChainLink[], snapshotRef?: string): Snapshot {
  const mine = all.filter((s) => s.source.kind === 'postgres' && s.source.name === name && s.consistency);
  if (mine.length === 0) {
    throw new LifeboatError('NOT_FOUND', `no base backup of PostgreSQL source "${name}"`, {
      hint: 'take one with `lifeboat pg backup --name NAME --dsn URL`',
    });
  }
  const along = (s: Snapshot) => backupOnChain(chain, { timeline: consistencyOf(s).timeline, stopLsn: parseLsn(consistencyOf(s).stopLsn) });
  const last = chain.at(-1)!.timeline;
  // Chosen by the operator: for --xid and --restore-point targets, whose position is
  // only known by replaying, the newest backup may already be past them.
  if (snapshotRef) {
    const s = pickSnapshot(mine, snapshotRef);
    if (!along(s)) {
      throw new LifeboatError('USAGE', `base backup ${s.id.slice(0, 8)} (timeline ${consistencyOf(s).timeline}) is not on the history of timeline ${last}`, {
        hint: `pass --timeline ${consistencyOf(s).timeline} to recover along its own timeline, or choose another base backup`,
      });
    }
    return s;
  }
  let usable = mine.filter(along);
  if (usable.length === 0) {
    throw new LifeboatError('NOT_FOUND', `no base backup of "${name}" is on the history of timeline ${last}`, {
      hint: `\`lifeboat pg timelines --name ${name}\` shows the timelines; --timeline N chooses another`,
    });
  }
  if (target.kind === 'time') {
    usable = usable.filter((s) => Date.parse(consistencyOf(s).stopTime) <= target.time.getTime());
    if (usable.length === 0) {
      throw new LifeboatError('USAGE', `no base backup of "${name}" finished before ${target.time.toISOString()}`, {
        hint: `the oldest finished at ${consistencyOf(mine[0]!).stopTime}; choose a later time`,
      });
    }
  } else if (target.kind === 'lsn') {
    const lsn = parseLsn(target.lsn);
    usable = usable.filter((s) => parseLsn(consistencyOf(s).stopLsn) <= lsn);
    if (usable.length === 0) {
      throw new LifeboatError('USAGE', `no base backup of "${name}" reached consistency before LSN ${target.lsn}`, {
        hint: `the oldest stopped at ${consistencyOf(mine[0]!).stopLsn}`,
      });
    }
  }
  return usable.sort((a, b) => Date.parse(consistencyOf(a).stopTime) - Date.parse(consistencyOf(b).stopTime)).at(-1)!;
}

/**
 * Decides what a restore recovers along: production's history (or the --timeline
 * asked for), the base backup on it, and the timeline to name in
 * recovery_target_timeline. An LSN target before a switch point is recovered on the
 * timeline it lies on; every other target along the whole history, where PostgreSQL
 * stops at it on whichever timeline it lies.
 */
export async function planRestore(repo: Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>, opts: PgPlanOptions): Promise<PgRestorePlan> {
  const snapshots = await repo.listSnapshots();
  const backups = backupRefs(snapshots, opts.name);
  const mine = snapshots.filter((s) => backups.some((b) => b.id === s.id));
  const segSize = mine.map((s) => consistencyOf(s).walSegSize).find((n) => n > 0) ?? 16 * 1024 * 1024;
  const facts = await gatherTimelines(repo, opts.name, segSize);
  const history = productionHistory(facts, backups, segSize);
  if (opts.timeline !== undefined && !facts.has(opts.timeline) && !history.chain.some((l) => l.timeline === opts.timeline)) {
    throw new LifeboatError('NOT_FOUND', `timeline ${opts.timeline} is not in the archive of ${opts.name}`, {
      hint: `\`lifeboat pg timelines --name ${opts.name}\` lists the timelines there`,
    });
  }
  let chain = chainFor(facts, history, opts.timeline);
  if (opts.target.kind === 'lsn') {
    const lsn = parseLsn(opts.target.lsn);
    const i = chain.findIndex((l) => l.until === undefined || lsn < l.until);
    chain = chain.slice(0, i + 1);
  }
  const snapshot = chooseBackup(snapshots, opts.name, opts.target, chain, opts.snapshot);
  const c = consistencyOf(snapshot);
  const from = chain.findIndex((l) => l.timeline === c.timeline);
  return { snapshot, timeline: chain.at(-1)!.timeline, chain: chain.slice(from), warnings: timelineWarnings(opts.name, history), facts };
}

/**
 * Every segment the recovery will read must be in the archive: from the backup's
 * start along each timeline of the chain up to its switch point, and on the last
 * timeline up to its last segment (or its switch point, for a target before it). A
 * segment may come from the timeline that owns it or from a later one in the chain
 * (a new timeline's first segment is a copy). Throws naming the first segment missing.
 */
export function checkWalContinuity(facts: ReadonlyMap<number, TimelineFacts>, c: PgConsistency, chain: readonly ChainLink[]): void {
  const segSize = c.walSegSize || 16 * 1024 * 1024;
  const have = (tli: number) => facts.get(tli)?.segments ?? new Set<bigint>();
  const seg = (lsn: bigint) => lsn / BigInt(segSize);
  const present = (i: number, s: bigint) => chain.slice(i).some(({ timeline }) => have(timeline).has(s));
  const missing = (tli: number, s: bigint, why: string): never => {
    throw new LifeboatError('CORRUPT', `WAL segment ${segmentName(tli, s, segSize)}${why} is missing from the archive`, {
      hint: 'recovery would stop there, before the point asked for; restore that file to the archive, or choose another backup',
    });
  };
  // The backup itself is consistent only once WAL up to its stop LSN is replayed.
  for (let s = seg(parseLsn(c.startLsn)); s <= seg(parseLsn(c.stopLsn)); s++) {
    if (!present(0, s)) missing(c.timeline, s, ', which the base backup needs to be consistent,');
  }
  let from = seg(parseLsn(c.startLsn));
  for (let i = 0; i < chain.length; i++) {
    const { timeline: tli, until } = chain[i]!;
    const newest = [...have(tli)].reduce((a, b) => (b > a ? b : a), from);
    const last = until === undefined ? newest : i < chain.length - 1 ? seg(until) : seg(until) < newest ? seg(until) : newest;
    for (let s = from; s <= last; s++) if (!present(i, s)) missing(tli, s, '');
    from = last;
  }
}

async function assertStopped(dir: string): Promise<void> {
  const pid = await fs.readFile(path.join(dir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  if (pid === undefined) return;
  const n = Number(pid.split('\n')[0]);
  if (isAlive(n)) {
    throw new LifeboatError('USAGE', `a PostgreSQL server (pid ${n}) is running on ${dir}`, {
      hint: 'stop it first (pg_ctl -D DIR stop); --delta rewrites the data directory in place',
    });
  }
}

/**
 * The settings written into postgresql.auto.conf, built before anything is written:
 * a target path, restore point name or configured path that no quoting can carry
 * (a NUL or line break) is refused up front instead of leaving a half-done restore.
 */
function settingsFor(opts: PgRestoreOptions, target: string): (timeline: number, port: number) => { lines: string[]; added: string[] } {
  const build = (timeline: number, port: number) => {
    const lines = recoverySettings(opts.target, restoreCommand(opts.archiveGetCommand, path.join(target, PREFETCH_DIR)), timeline);
    return { lines, added: [...copySettings(opts.name, port, opts.archivePushCommand), ...lines] };
  };
  try {
    build(1, 0);
    return build;
  } catch (err) {
    if (!(err instanceof UnquotableError)) throw err;
    throw new LifeboatError('USAGE', `cannot write restore_command: ${err.message}`, {
      hint: 'choose a target directory (and restore point name, repository and password file paths) without line breaks',
    });
  }
}

export async function pgRestore(repo: Repository, opts: PgRestoreOptions): Promise<PgRestoreResult> {
  const target = path.resolve(opts.targetDir);
  // Refused before the target is looked at: nothing is written for a path that cannot be quoted.
  const settings = settingsFor(opts, target);
  // An existing directory (even an empty one) is used only with --delta; restore()
  // creates the target exclusively otherwise.
  if (opts.delta) await assertStopped(target);
  const plan = opts.plan ?? (await planRestore(repo, opts));
  const { snapshot } = plan;
  const c = consistencyOf(snapshot);
  checkWalContinuity(plan.facts, c, plan.chain);

  let restored: Awaited<ReturnType<typeof restore>>;
  try {
    // PG_VERSION is held back (removed first from an existing directory) and named
    // only once everything else is in place: PostgreSQL will not start the directory
    // before, whether started by someone mid-restore or after a restore that failed.
    restored = await restore(repo, snapshot, { target, root: c.dataDirectory, existingFlag: '--delta', trustRootOwner: true, holdBack: [VERSION_FILE], flushEarly: true, ...(opts.delta ? { delta: true } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  } catch (err) {
    const incomplete = incompleteOf(err);
    if (!isLifeboatError(err) || !incomplete) throw err;
    const hint = `${err.hint ? `${err.hint}; ` : ''}until then PostgreSQL refuses to start ${target} (PG_VERSION is restored last)`;
    throw Object.assign(new LifeboatError(err.code, err.message, { hint, cause: err.cause }), { incomplete });
  }
  const { held, ...result } = restored;
  const version = held?.find((h) => h.rel === VERSION_FILE)?.tmp;
  // The control files are written through the data directory's descriptor, never
  // following what its owner may have planted (control-files.ts).
  const dir = DataDir.open(target);
  let committed = false;
  try {
    // A socket or device node is not needed (PostgreSQL's own base backups skip them);
    // anything else not restored (a hard link, a directory's or file's owner and mode)
    // leaves a copy PostgreSQL must not start.
    const missing = missingItems(result, target, {
      also: 'PG_VERSION was not written',
      hint: `PostgreSQL refuses to start ${target} until a restore completes; find what removed or changed them (another process writing there?) and restore again with --delta`,
    });
    if (missing) throw missing;
    dir.write('backup_label', c.backupLabel);
    if (c.tablespaceMap) dir.write('tablespace_map', c.tablespaceMap);
    dir.write('recovery.signal', '');
    const port = opts.port ?? (await choosePort([portOf(dir), 5432]));
    const { lines, added } = settings(plan.timeline, port);
    const before = dir.read('postgresql.auto.conf');
    const header = `# Added by lifeboat pg restore (snapshot ${snapshot.id.slice(0, 8)}, ${new Date().toISOString()})`;
    dir.write('postgresql.auto.conf', `${before}\n${[header, ...added].join('\n')}\n`);
    // WAL from the backup is fetched by restore_command; the directory must exist.
    dir.walDirs();
    if (version !== undefined) dir.commitVersion(version);
    committed = true;
    const { facts: _, ...decided } = plan;
    return { ...result, ...decided, recoveryConf: lines, port };
  } finally {
    if (!committed && version !== undefined) dir.discard(version);
    dir.close();
  }
}

/** "timeline 1" or "timeline 1 (until 0/5000000), then 2", for messages. */
export function describeChain(chain: readonly ChainLink[]): string {
  return chain.map((l) => (l.until === undefined ? `${l.timeline}` : `${l.timeline} (until ${formatLsn(l.until)})`)).join(' → ');
}
