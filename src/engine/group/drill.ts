/**
 * `group drill`: the whole group restored into scratch at one point, each member
 * checked on its own and the members checked against each other, and one RTO measured
 * for the group: from the start until every member is restored, started and verified.
 *
 *   make a private scratch directory (and remove those of drills killed earlier)
 *   group restore of the point (or the newest point not after --time) into it
 *   open every member (restored.ts: scratch servers started from the restored data)
 *   each member's own checks, then the group's cross-member checks (checks.ts)
 *   RTO = start → all of the above done and passed
 *   stop the scratch servers, remove the scratch directory (whatever happened)
 *   record the drill in the repository, as every drill is (engine/drill/drill.ts)
 *
 * A drill never throws for what it finds wrong (that is `ok: false`, recorded); it
 * throws for what the operator asked wrongly (no such group or point) before any work.
 * Scratch servers do not outlive the drill: both kinds are tied to this process (the
 * kernel kills them when it dies), SIGINT/SIGTERM abort through `signal`, and a drill
 * that was killed leaves a directory the next drill removes (its owner.pid is gone).
 */
import { mkdtempSync, promises as fs, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LifeboatConfig } from '../../config/config.js';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { chownTree, serviceOwner } from '../../sources/postgres/verify.js';
import { OWNER_FILE, removeOrphanDirs } from '../../util/tied-child.js';
import { saveDrill, type DrillRecord } from '../drill/drill.js';
import { findGroup, groupPoints } from './capture.js';
import { runCrossChecks, type CrossCheckResult } from './checks.js';
import { withRestoredMembers, type MemberCheck, type RestoredMember } from './restored.js';
import { groupRestore, type GroupRestoreResult } from './restore.js';

export type GroupDrillEvent = { type: 'phase'; phase: 'restore' | 'verify' | 'cleanup' } | { type: 'warning'; message: string };

export interface GroupDrillOptions {
  /** The point to drill (an id); default: the newest, or the newest not after `time`. */
  point?: string;
  time?: Date;
  signal?: AbortSignal;
  onEvent?: (e: GroupDrillEvent) => void;
  /** Store the record in the repository (default true; never in an append-only one). */
  record?: boolean;
  /** Where the scratch directory is made (default: the system's temporary directory). */
  scratchParent?: string;
  /** argv running this lifeboat against this repository (cli/self-command.ts): PostgreSQL members' restore_command. */
  lifeboat?: (args: readonly string[]) => readonly string[];
}

export interface GroupDrillMember {
  name: string;
  kind: string;
  ok: boolean;
  /** Restoring it, as the group restore measured (null: not reported, or it failed). */
  restore_ms: number | null;
  checks: MemberCheck[];
}

export interface GroupDrillResult {
  group: string;
  /** The point drilled (null when none could be restored). */
  point: string | null;
  point_time: string | null;
  ok: boolean;
  /** Start until every member was restored and passed every check; null when one did not. */
  rto_ms: number | null;
  /** The point's age when the drill started: the data a recovery now would lose at most. */
  rpo_seconds: number | null;
  members: GroupDrillMember[];
  /** The group's cross-member checks, in declaration order. */
  checks: CrossCheckResult[];
  /** What failed, in one line. */
  error?: string;
  /** What was stored in the repository (`drill --history` lists it). */
  record: DrillRecord;
}

const PREFIX = 'lifeboat-group-drill-';

/** Errors of the request itself, thrown before any work rather than recorded as a failed drill. */
const REQUEST_ERRORS = ['USAGE', 'NOT_FOUND', 'CONFIG_INVALID', 'TARGET_EXISTS'];

const message = (err: unknown): string => (isLifeboatError(err) ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err));

export async function groupDrill(repo: Repository, config: LifeboatConfig, name: string, opts: GroupDrillOptions = {}): Promise<GroupDrillResult> {
  const group = findGroup(config, name);
  const sources = group.members.map((m) => config.sources.get(m)!);
  const started = new Date();
  const t0 = performance.now();
  const parent = opts.scratchParent ?? os.tmpdir();
  await removeOrphanDirs(parent, PREFIX);
  const scratch = mkdtempSync(path.join(parent, PREFIX));
  writeFileSync(path.join(scratch, OWNER_FILE), `${process.pid}\n`, { mode: 0o600, flag: 'wx' });
  const result: GroupDrillResult = { group: name, point: null, point_time: null, ok: false, rto_ms: null, rpo_seconds: null, members: sources.map((s) => ({ name: s.name, kind: s.kind, ok: false, restore_ms: null, checks: [] })), checks: [], record: undefined as unknown as DrillRecord };
  const member = (n: string) => result.members.find((m) => m.name === n) as GroupDrillMember;
  let asked = true;
  try {
    // Each member a directory of its own in the scratch directory (a SQLite member's
    // file goes inside its directory, under the source's own file name).
    const targets = new Map(sources.map((s) => [s.name, path.join(scratch, s.name)]));
    // No point asked for: the newest.
    let point = opts.point;
    if (point === undefined && opts.time === undefined) {
      const newest = (await groupPoints(repo, name)).points[0];
      if (!newest) throw new LifeboatError('NOT_FOUND', `group "${name}" has no stored points to drill`, { hint: `take one with \`lifeboat group backup ${name}\`` });
      point = newest.id;
    }
    opts.onEvent?.({ type: 'phase', phase: 'restore' });
    let restored: GroupRestoreResult;
    try {
      restored = await groupRestore(repo, config, name, {
        ...(point !== undefined ? { point } : {}),
        ...(opts.time && point === undefined ? { time: opts.time } : {}),
        targets,
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.lifeboat ? { lifeboat: opts.lifeboat } : {}),
        onEvent: (e) => {
          if (e.type === 'plan') {
            result.point = e.plan.point.id;
            result.point_time = e.plan.point.time;
          } else if (e.type === 'warning') opts.onEvent?.(e);
        },
      });
    } catch (err) {
      // The request itself (no such point, a bad option) before anything was restored: thrown.
      if (result.point === null && isLifeboatError(err) && REQUEST_ERRORS.includes(err.code)) {
        asked = false;
        throw err;
      }
      result.error = `restore: ${message(err)}`;
      for (const m of result.members) m.checks.push({ name: 'restore', ok: false, detail: result.error });
      return result;
    }
    result.rpo_seconds = Math.max(0, (started.getTime() - Date.parse(restored.plan.point.time)) / 1000);
    const opened: RestoredMember[] = [];
    for (const o of restored.members) {
      const m = member(o.name);
      const planned = restored.plan.members.find((p) => p.name === o.name);
      m.restore_ms = o.elapsedMs;
      m.checks.push({ name: 'restore', ok: true, detail: `to ${planned?.at ?? 'its position'} in ${(o.elapsedMs / 1000).toFixed(1)} s: ${o.detail}` });
      const source = config.sources.get(o.name)!;
      if (o.kind === 'postgres' && process.getuid?.() === 0) {
        const owner = await serviceOwner();
        await chownTree(o.target, owner.uid, owner.gid);
      }
      const target = o.kind === 'sqlite' ? path.join(o.target, source.path ? path.basename(source.path) : `${o.name}.db`) : o.target;
      opened.push({ source, target, configFile: config.file });
    }
    opts.onEvent?.({ type: 'phase', phase: 'verify' });
    if (process.getuid?.() === 0 && opened.some((o) => o.source.kind === 'postgres')) {
      // The service user must reach its data directory: through the scratch directory, without listing it.
      await fs.chmod(scratch, 0o711);
    }
    await withRestoredMembers(
      opened,
      async (o) => {
        for (const [n, checks] of o.checks) member(n).checks.push(...checks);
        result.checks = await runCrossChecks(group.checks ?? [], o.readers);
      },
      opts.signal,
    );
    for (const m of result.members) m.ok = m.checks.length > 0 && m.checks.every((c) => c.ok);
    result.ok = result.members.every((m) => m.ok) && result.checks.every((c) => c.ok);
    if (result.ok) result.rto_ms = Math.round((performance.now() - t0) * 1000) / 1000;
    const failedMember = result.members.find((m) => !m.ok);
    const failedCheck = result.checks.find((c) => !c.ok);
    if (failedMember) result.error = `${failedMember.name}: ${failedMember.checks.find((c) => !c.ok)?.detail ?? 'not restored'}`;
    else if (failedCheck) result.error = `${failedCheck.name}: ${failedCheck.detail}`;
    return result;
  } catch (err) {
    if (!asked || (isLifeboatError(err) && REQUEST_ERRORS.includes(err.code) && result.point === null)) {
      asked = false;
      throw err;
    }
    result.ok = false;
    result.rto_ms = null;
    result.error = message(err);
    return result;
  } finally {
    opts.onEvent?.({ type: 'phase', phase: 'cleanup' });
    await fs.rm(scratch, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }).catch((err: unknown) => opts.onEvent?.({ type: 'warning', message: `could not remove ${scratch}: ${String(err)}` }));
    result.record = drillRecord(result, started);
    // A request that was refused is no drill; an interrupted one proves nothing.
    if (asked && opts.record !== false && !repo.appendOnly && !opts.signal?.aborted) await saveDrill(repo, result.record);
  }
}

/** The drill as every drill is recorded: one source `group:NAME`, its checks prefixed by member. */
function drillRecord(r: GroupDrillResult, started: Date): DrillRecord {
  return {
    source: `group:${r.group}`,
    kind: 'group',
    ok: r.ok,
    snapshot: r.point,
    rto_seconds: r.rto_ms === null ? null : r.rto_ms / 1000,
    rpo_seconds: r.rpo_seconds,
    rpo_basis: 'backup',
    checks: [...r.members.flatMap((m) => m.checks.map((c) => ({ name: `${m.name}: ${c.name}`, ok: c.ok, detail: c.detail }))), ...r.checks.map((c) => ({ name: `check: ${c.name}`, ok: c.ok, detail: c.detail }))],
    ...(r.error !== undefined ? { error: r.error } : {}),
    time: started.toISOString(),
    hostname: os.hostname(),
  };
}
