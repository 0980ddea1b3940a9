/**
 * `group backup`: one consistency point for several sources (docs/groups.md).
 *
 *   open every member's connection        (not part of the hold)
 *   freeze            ┐ limited to max_hold: killed when it overruns
 *   record positions  │ limited to what is left of max_hold
 *   read them again   │ (an application's freeze only) no writes since, or HOLD_BROKEN
 *   thaw              ┘ always, once freeze started
 *   look closer       what moved but may not be a write (PostgreSQL's ANALYZE, pg-writes.ts)
 *   complete          files and bucket members store what they fixed at the point (data-members.ts)
 *   prove             each log member's own archive holds its position (bounded wait, proof.ts)
 *   close; store the point (only when all of the above succeeded within max_hold)
 *
 * The hold runs from the start of freeze to the end of thaw, on a monotonic clock. Only
 * positions are recorded while frozen, so the hold does not grow with the data (except
 * for a files member copied while frozen, which says so, and a bucket's listing). After
 * thaw (outside the hold) it waits, bounded, until each member's own archive holds its
 * position (proof.ts), and stores the point with that proof, or not at all.
 *
 * A point is stored under `logs/group.NAME/points/<id>`, sealed like every log file,
 * so check, copy, migrate and reseal treat it like the rest of the repository.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { GroupConfig, GroupHook, LifeboatConfig } from '../../config/config.js';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { sourceKey } from '../source-name.js';
import { commandRun, runHook, type HookRun } from './hook.js';
import { prepareHttpHook } from './http-hook.js';
import { checkMemberKind, openMember, type MemberPosition, type OpenMember } from './members.js';
import { DEFAULT_PROOF_WAIT_MS, proveArchived } from './proof.js';

/** Points live beside nothing else under the group's log source. */
const POINTS = 'points';
/**
 * How long thaw may run. Longer than any sane max_hold: killing a thaw does not
 * release writes, so it is given time to finish; a thaw that hangs is still reported.
 */
const THAW_LIMIT_MS = 30_000;

export interface GroupPoint {
  v: 1;
  group: string;
  id: string;
  /** Wall-clock time at the start of freeze (RFC 3339); the hold follows it. */
  time: string;
  /** Freeze start to thaw end (without hooks: first position read to last), ms. */
  hold_ms: number;
  max_hold_ms: number;
  /** Whether a freeze hook held writes; false: positions read back to back. */
  frozen: boolean;
  members: Array<{
    name: string;
    kind: string;
    position: MemberPosition;
    /** Set when the member's own archive was proven to hold the position (after thaw, proof.ts); absent on points of older versions. */
    archived?: { at: string; reach: string };
  }>;
}

export type GroupEvent = { type: 'warning'; message: string };

export interface GroupBackupOptions {
  now?: () => Date;
  onEvent?: (e: GroupEvent) => void;
  /** How long to wait after thaw for every log member's archive to reach its position (default DEFAULT_PROOF_WAIT_MS). */
  waitMs?: number;
  signal?: AbortSignal;
}

export function findGroup(config: LifeboatConfig, name: string): GroupConfig {
  const g = config.groups.get(name);
  if (!g) {
    throw new LifeboatError('USAGE', `no group "${name}" in ${config.file}`, { hint: `defined: ${[...config.groups.keys()].join(', ') || 'none (add a groups: section)'}` });
  }
  return g;
}

/** The restore point name PostgreSQL members get: at most 63 bytes (PostgreSQL's limit). */
function restorePointName(group: string, id: string): string {
  return `lifeboat-${id}-${group}`.slice(0, 63);
}

const hookError = (what: 'freeze' | 'thaw', group: string, r: HookRun): string =>
  `group "${group}": ${what} ${r.timedOut ? r.outcome : `failed (${r.outcome})`}${r.said ? `: ${r.said}` : ''}`;

/** Resolves with p, or rejects with a hold overrun when `ms` passes first. */
async function within<T>(p: Promise<T>, ms: number, group: string, maxHoldMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LifeboatError('HOLD_EXCEEDED', `group "${group}": recording the positions ran past max_hold (${maxHoldMs} ms)`, { hint: 'a member was slow to answer (or a frozen copy had much to copy); raise max_hold or find what delays it' })), Math.max(0, ms));
  });
  try {
    return await Promise.race([p, overrun]);
  } finally {
    clearTimeout(timer);
  }
}

/** Members whose position is a copy or a listing (data-members.ts), not a read of a log position. */
const DATA_KINDS = new Set(['files', 'bucket']);

/** A freeze or thaw ready to run: commands and requests prepared (a headers file read) before anything is held. */
type Hook = (limitMs: number) => Promise<HookRun>;

function prepareHook(h: GroupHook, which: 'freeze' | 'thaw', cwd: string, group: string, point: string, members: OpenMember[], maxHoldMs: number): Hook {
  if (h === 'builtin') {
    // Each member's own hold, in member order; thaw releases those taken, in reverse.
    return which === 'freeze'
      ? async (limitMs) => {
          const t0 = performance.now();
          // All members at once (each waits on its own server); thaw releases every one tried.
          const holding = members.filter((m) => m.hold);
          held.set(members, holding);
          const tries = await Promise.allSettled(holding.map((m) => (m.hold as NonNullable<OpenMember['hold']>)(limitMs, maxHoldMs)));
          for (const [i, t] of tries.entries()) {
            if (t.status === 'fulfilled') continue;
            const err: unknown = t.reason;
            // A lock that did not come free within the limit (SQLite's busy timeout) is an overrun.
            if (performance.now() - t0 < limitMs - 10) throw err;
            throw new LifeboatError('HOLD_EXCEEDED', `group "${group}": freeze ran past max_hold (${maxHoldMs} ms): ${err instanceof Error ? err.message : String(err)}`, {
              hint: `${(holding[i] as OpenMember).name} could not be held in time (a long write transaction?); raise max_hold or capture when it is quieter`,
              cause: err,
            });
          }
          return { ok: true, timedOut: false, outcome: 'held', said: '' };
        }
      : async () => {
          const failed: string[] = [];
          await Promise.all(
            (held.get(members) ?? []).map((m) => m.release?.().catch((err: unknown) => void failed.push(`${m.name}: ${err instanceof Error ? err.message : String(err)}`))),
          );
          held.delete(members);
          return failed.length === 0 ? { ok: true, timedOut: false, outcome: 'released', said: '' } : { ok: false, timedOut: false, outcome: `could not release ${failed.length} member(s)`, said: failed.join('; ') };
        };
  }
  if ('command' in h) {
    const env = { ...process.env, LIFEBOAT_GROUP: group, LIFEBOAT_GROUP_POINT: point };
    return async (limitMs) => commandRun(await runHook(h.command, limitMs, cwd, { env }));
  }
  const request = prepareHttpHook(h.http, cwd, group);
  return (limitMs) => request(which, point, limitMs);
}

/** Throws HOLD_BROKEN naming each member that `moved` says writes reached while frozen. */
function holdBroken(group: string, members: OpenMember[], moved: Array<string | undefined>): void {
  const said = members.flatMap((m, i) => (moved[i] === undefined ? [] : [`"${m.name}" (${m.kind}): ${moved[i]}`]));
  if (said.length === 0) return;
  throw new LifeboatError('HOLD_BROKEN', `group "${group}": writes reached members while the freeze held them: ${said.join('; ')}; thaw ran and no point was stored`, {
    hint: 'the freeze hook returned but writes went on: does the application keep its freeze across a restart, and is every writer behind it? (docs/groups.md)',
  });
}

/** The members whose built-in hold was taken (or being taken), per capture. */
const held = new WeakMap<OpenMember[], OpenMember[]>();

/**
 * Captures one point of group `name` and stores it. Nothing is stored when freeze,
 * a position or thaw fails, or when the hold exceeded max_hold (HOLD_EXCEEDED); what
 * files and bucket members stored for it is removed again.
 */
export async function groupBackup(repo: Repository, config: LifeboatConfig, name: string, opts: GroupBackupOptions = {}): Promise<GroupPoint> {
  const group = findGroup(config, name);
  const sources = group.members.map((m) => config.sources.get(m)!);
  for (const s of sources) checkMemberKind(s, name);
  const cwd = path.dirname(path.resolve(config.file));
  const started = (opts.now ?? (() => new Date()))();
  const id = `${started.getTime().toString(16).padStart(12, '0')}-${randomBytes(4).toString('hex')}`;
  const pointName = restorePointName(name, id);
  const warn = (message: string) => opts.onEvent?.({ type: 'warning', message });

  const members: OpenMember[] = [];
  let t0 = 0;
  try {
    // Set at the start of freeze (below); files and bucket snapshots read it after.
    let frozenAt = started;
    for (const s of sources) {
      const hook = group.snapshots.get(s.name);
      members.push(
        await openMember(s, config.file, {
          repo,
          group: name,
          pointId: id,
          pointTime: () => frozenAt,
          ...(hook ? { snapshotHook: hook } : {}),
          left: () => group.maxHoldMs - (performance.now() - t0),
          warn,
        }),
      );
    }
    const freeze = group.freeze && prepareHook(group.freeze, 'freeze', cwd, name, id, members, group.maxHoldMs);
    const thaw = group.thaw && prepareHook(group.thaw, 'thaw', cwd, name, id, members, group.maxHoldMs);

    if (group.freeze === 'builtin') for (const m of members) await m.prepareHold?.();
    const positions: MemberPosition[] = [];
    let failure: unknown;
    let thawFailure: string | undefined;
    let recording: Promise<void> | undefined;
    let stopped = false;
    frozenAt = (opts.now ?? (() => new Date()))();
    t0 = performance.now();
    let froze = false;
    try {
      if (freeze) {
        froze = true;
        const f = await within(freeze(group.maxHoldMs), group.maxHoldMs + 1000, name, group.maxHoldMs).catch((err: unknown): HookRun => {
          throw isLifeboatError(err, 'HOLD_EXCEEDED') ? new LifeboatError('HOLD_EXCEEDED', `group "${name}": freeze ran past max_hold (${group.maxHoldMs} ms)`, { hint: 'the freeze must return within max_hold; raise max_hold or make it faster' }) : err;
        });
        if (f.timedOut) throw new LifeboatError('HOLD_EXCEEDED', hookError('freeze', name, f) + ` (max_hold ${group.maxHoldMs} ms)`, { hint: 'the freeze must return within max_hold; raise max_hold or make it faster' });
        if (!f.ok) throw new LifeboatError('FAILED', hookError('freeze', name, f), { hint: 'thaw ran anyway; fix the freeze and retry' });
      }
      const left = group.maxHoldMs - (performance.now() - t0);
      recording = (async () => {
        // Log members only read a position: all at once, each a round trip to its own
        // server (under load a round trip is the hold's largest part). Files and buckets
        // copy or list: one after another, and after an overrun no member starts.
        const quick = members.map((m, i) => (DATA_KINDS.has(m.kind) ? undefined : m.position(pointName).then((p) => (positions[i] = p))));
        await Promise.all(quick);
        for (const [i, m] of members.entries()) if (DATA_KINDS.has(m.kind) && !stopped) positions[i] = await m.position(pointName);
      })();
      recording.catch(() => {});
      await within(recording, left, name, group.maxHoldMs);
      // An application's freeze is its promise, not the servers': shown kept (an application
      // that restarted while frozen forgets it, and writes), each member read once more
      // before thaw. The built-in holds are the servers' own (PostgreSQL's is not a hold).
      if (group.freeze !== undefined && group.freeze !== 'builtin' && !stopped) {
        const moved = await within(Promise.all(members.map((m) => m.writesSince?.())), group.maxHoldMs - (performance.now() - t0), name, group.maxHoldMs);
        holdBroken(name, members, moved);
      }
    } catch (err) {
      failure = err;
      stopped = true;
    } finally {
      if (froze && thaw) {
        const t = await thaw(THAW_LIMIT_MS).catch((err: unknown): HookRun => ({ ok: false, timedOut: false, outcome: err instanceof Error ? err.message : String(err), said: '' }));
        if (!t.ok) thawFailure = hookError('thaw', name, t);
      }
    }
    const holdMs = performance.now() - t0;
    let error: unknown;
    if (thawFailure !== undefined) {
      const before = failure === undefined ? '' : ` (and before it: ${failure instanceof Error ? failure.message : String(failure)})`;
      error = new LifeboatError('FAILED', `${thawFailure}${before}; writes may still be held`, { hint: 'check the application now and release writes by hand; no point was stored' });
    } else if (failure !== undefined) error = failure;
    else if (holdMs > group.maxHoldMs) {
      error = new LifeboatError('HOLD_EXCEEDED', `group "${name}": writes were held ${holdMs.toFixed(1)} ms, more than max_hold (${group.maxHoldMs} ms); no point was stored`, {
        hint: 'thaw ran; raise max_hold, or make freeze and thaw faster (a files member copied while frozen grows the hold with its data: give it a snapshot hook)',
      });
    }
    let proofs: Array<{ at: string; reach: string } | undefined>;
    try {
      if (error !== undefined) throw error;
      // What moved inside the hold but may not be a write (PostgreSQL's transactions) is looked at now, outside it.
      holdBroken(name, members, await Promise.all(members.map((m) => m.writesOnCloserLook?.())));
      // After thaw: files and bucket members store what was fixed at the point.
      for (const [i, m] of members.entries()) if (m.complete) positions[i] = await m.complete();
      // A position that a crash could still take back (PostgreSQL's restore point, not yet flushed) is made durable first.
      for (const [i, m] of members.entries()) await m.durable?.(positions[i] as MemberPosition);
      // Writes flow again: wait (bounded) until each log member's own archive holds its position.
      proofs = await proveArchived(repo, name, members, positions, {
        waitMs: opts.waitMs ?? DEFAULT_PROOF_WAIT_MS,
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
        ...(opts.now ? { now: opts.now } : {}),
      });
    } catch (err) {
      // What the members stored goes (each waits for its own work still running past an overrun).
      stopped = true;
      for (const m of members) await m.abandon?.().catch((e: unknown) => warn(`removing what ${m.name} stored for the failed point: ${String(e)}`));
      throw err;
    }
    const point: GroupPoint = {
      v: 1,
      group: name,
      id,
      time: frozenAt.toISOString(),
      hold_ms: Math.round(holdMs * 1000) / 1000,
      max_hold_ms: group.maxHoldMs,
      frozen: froze,
      members: members.map((m, i) => {
        const archived = proofs[i];
        return { name: m.name, kind: m.kind, position: positions[i] as MemberPosition, ...(archived ? { archived } : {}) };
      }),
    };
    await repo.putLog(sourceKey('group', name), POINTS, id, Buffer.from(JSON.stringify(point)));
    return point;
  } finally {
    for (const m of members) await m.close().catch((err: unknown) => warn(`closing ${m.name}: ${String(err)}`));
  }
}

function parsePoint(buf: Buffer, id: string, group: string): GroupPoint | undefined {
  try {
    const p = JSON.parse(buf.toString('utf8')) as GroupPoint;
    if (p.v !== 1 || p.id !== id || p.group !== group || !Array.isArray(p.members) || typeof p.hold_ms !== 'number') return undefined;
    return p;
  } catch {
    return undefined;
  }
}

/** The stored points of group `name`, newest first; ids of ones that do not parse in `unreadable`. */
export async function groupPoints(repo: Pick<Repository, 'listLogs' | 'getLog'>, name: string): Promise<{ points: GroupPoint[]; unreadable: string[] }> {
  const source = sourceKey('group', name);
  const ids = (await repo.listLogs(source))
    .filter((l) => l.timeline === POINTS)
    .map((l) => l.file)
    .sort()
    .reverse();
  const points: GroupPoint[] = [];
  const unreadable: string[] = [];
  for (const id of ids) {
    let buf: Buffer | undefined;
    try {
      buf = await repo.getLog(source, POINTS, id);
    } catch (err) {
      if (!isLifeboatError(err, 'CORRUPT')) throw err;
    }
    const p = buf && parsePoint(buf, id, name);
    if (p) points.push(p);
    else unreadable.push(id);
  }
  return { points, unreadable };
}
