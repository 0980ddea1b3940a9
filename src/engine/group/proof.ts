/**
 * The proof that each log member's own archive holds the position a group point
 * recorded (docs/groups.md). A point only names positions; it is worth something only
 * when each member's continuous log (PostgreSQL WAL archiving or `pg stream`, `sqlite
 * replicate`, `redis replicate`) has stored the member's history up to that position,
 * so `group backup` waits for that after thaw, bounded, and stores the point only then.
 * `group restore` asks the same question again before it starts anything (a segment
 * may have been forgotten since).
 *
 * - postgres: the WAL segment holding the restore point record, whole or (streamed) far
 *   enough (sources/postgres/wal-reach.ts). Such a segment reaches the archive only when
 *   it is full or switched; when the archive is still behind after a short grace and the
 *   server still writes into that segment, `pg_switch_wal()` closes it (once).
 * - sqlite: the commit with the recorded salts, frame and checksum is stored, and a
 *   snapshot of its generation reaches it without a gap (sources/sqlite/locate.ts).
 * - redis: a base and unbroken command segments of that replication id reach the
 *   offset, which ends a command outside a transaction (sources/redis/locate.ts).
 */
import { LifeboatError, isLifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { walReach } from '../../sources/postgres/wal-reach.js';
import { parseLsn } from '../../sources/postgres/wal.js';
import { locateWalPosition } from '../../sources/sqlite/locate.js';
import { baseFor } from '../../sources/sqlite/restore.js';
import { locateOffset } from '../../sources/redis/locate.js';
import type { MemberPosition, OpenMember } from './members.js';

export type ProofRepo = Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog' | 'store'>;

/** How long `group backup` waits for every member's archive by default: a few of any archiver's shipping intervals. */
export const DEFAULT_PROOF_WAIT_MS = 60_000;
/** Between two looks at the repository. */
const POLL_MS = 500;
/** How long the archive may lag before a PostgreSQL member's WAL segment is switched (at most a third of the wait). */
const SWITCH_GRACE_MS = 2000;

export interface Reach {
  reached: boolean;
  /** What holds the position, or what is missing. */
  detail: string;
}

/** Where a PostgreSQL member's WAL stands (asked on its connection, after thaw). */
export interface PgWalFacts {
  timeline: number;
  segSize: number;
}

/** Whether the repository holds member `name`'s history up to `position`. Kinds without a log (files, bucket) have nothing to prove. */
export async function memberReach(repo: ProofRepo, name: string, position: MemberPosition, pg?: PgWalFacts): Promise<Reach | undefined> {
  if (position.kind === 'postgres') {
    const lsn = parseLsn(position.lsn);
    const timelines = pg ? [pg.timeline] : await pgTimelines(repo, name);
    const segSize = pg?.segSize ?? (await pgSegSize(repo, name));
    const r = await walReach(repo, name, lsn, timelines, segSize, position.restore_point);
    return { reached: r.reached, detail: r.detail };
  }
  if (position.kind === 'sqlite') {
    const at = await locateWalPosition(repo, name, position);
    if (!at) return { reached: false, detail: `no stored commit is WAL frame ${position.frame} of cycle ${hex(position.salt1)}/${hex(position.salt2)}` };
    try {
      await baseFor(repo, name, at);
    } catch (err) {
      if (isLifeboatError(err, 'ARCHIVE_BEHIND')) return { reached: false, detail: err.message };
      throw err;
    }
    return { reached: true, detail: `generation ${at.generation}, cycle ${at.position.cycle}, frame ${at.position.frame}` };
  }
  if (position.kind === 'redis') {
    const at = await locateOffset(repo, name, position.replid, position.offset);
    if (at.found) return { reached: true, detail: `generation ${at.found.generation}, offset ${position.offset}` };
    return { reached: false, detail: at.why };
  }
  return undefined;
}

const hex = (n: number) => n.toString(16);

/** The timelines a PostgreSQL archive holds, newest first (a restore-time check, without the server). */
async function pgTimelines(repo: ProofRepo, name: string): Promise<number[]> {
  const { logSource, streamSource } = await import('../../sources/postgres/names.js');
  const tls = new Set<number>();
  for (const src of [logSource(name), streamSource(name)]) for (const l of await repo.listLogs(src)) if (/^[0-9A-F]{8}$/.test(l.timeline)) tls.add(parseInt(l.timeline, 16));
  return [...tls].sort((a, b) => b - a);
}

async function pgSegSize(repo: ProofRepo, name: string): Promise<number> {
  const { requirePgPoint } = await import('../../sources/postgres/point.js');
  const s = (await repo.listSnapshots()).find((x) => x.source.kind === 'postgres' && x.source.name === name && x.consistency);
  return (s && requirePgPoint(s).walSegSize) || 16 * 1024 * 1024;
}

/** What to check when a member's archive does not reach its position. */
export function archiveHint(kind: string, name: string): string {
  if (kind === 'postgres') {
    return `is WAL archived for it (archive_command running \`lifeboat pg archive-push --name ${name}\`, or \`lifeboat pg stream --name ${name}\`)? Closing the segment needs pg_switch_wal(): superuser, or GRANT EXECUTE ON FUNCTION pg_switch_wal()`;
  }
  if (kind === 'sqlite') return `is \`lifeboat sqlite replicate --name ${name}\` running for it?`;
  if (kind === 'redis') return `is \`lifeboat redis replicate --name ${name}\` running for it?`;
  return 'check that its backup ran';
}

export interface ProveOptions {
  waitMs: number;
  signal?: AbortSignal;
  onEvent?: (e: { type: 'warning'; message: string }) => void;
  now?: () => Date;
}

/**
 * Waits until every log member's archive holds its position, at most `waitMs`.
 * Returns per member (in order) the proof, or undefined for kinds without a log.
 * ARCHIVE_BEHIND naming the first member still behind when the time is up.
 */
export async function proveArchived(
  repo: ProofRepo,
  group: string,
  members: readonly OpenMember[],
  positions: readonly MemberPosition[],
  opts: ProveOptions,
): Promise<Array<{ at: string; reach: string } | undefined>> {
  const now = opts.now ?? (() => new Date());
  const started = Date.now();
  const deadline = started + opts.waitMs;
  const proofs: Array<{ at: string; reach: string } | undefined> = members.map(() => undefined);
  const pending = new Set(members.map((_, i) => i));
  const facts = new Map<number, PgWalFacts>();
  const switched = new Set<number>();
  const warned = new Set<string>();
  const last = new Map<number, string>();
  for (const [i, m] of members.entries()) {
    const p = positions[i] as MemberPosition;
    if (p.kind === 'postgres' && m.walFacts) facts.set(i, await m.walFacts(p.lsn));
  }
  for (;;) {
    for (const i of [...pending]) {
      const m = members[i] as OpenMember;
      const r = await memberReach(repo, m.name, positions[i] as MemberPosition, facts.get(i));
      if (!r) pending.delete(i);
      else if (r.reached) {
        proofs[i] = { at: now().toISOString(), reach: r.detail };
        pending.delete(i);
      } else last.set(i, r.detail);
    }
    if (pending.size === 0) return proofs;
    const elapsed = Date.now() - started;
    for (const i of pending) {
      const m = members[i] as OpenMember;
      const p = positions[i] as MemberPosition;
      if (p.kind !== 'postgres' || !m.switchWal || switched.has(i) || elapsed < Math.min(SWITCH_GRACE_MS, opts.waitMs / 3)) continue;
      switched.add(i);
      try {
        await m.switchWal(p.lsn);
      } catch (err) {
        // A server that is down (restarting) is asked again on the next look; a refusal of the privilege is final.
        if (!isLifeboatError(err, 'PERMISSION')) switched.delete(i);
        const message = `${m.name}: ${err instanceof Error ? err.message : String(err)}`;
        if (!warned.has(message)) opts.onEvent?.({ type: 'warning', message });
        warned.add(message);
      }
    }
    if (opts.signal?.aborted) throw new LifeboatError('INTERRUPTED', `group "${group}": interrupted while waiting for the members' archives; no point was stored`);
    if (Date.now() >= deadline) {
      const behind = [...pending].map((i) => ({ m: members[i] as OpenMember, detail: last.get(i) ?? 'not found' }));
      const within = `within ${(opts.waitMs / 1000).toFixed(opts.waitMs % 1000 ? 1 : 0)} s`;
      const one = behind[0] as (typeof behind)[number];
      throw new LifeboatError(
        'ARCHIVE_BEHIND',
        behind.length === 1
          ? `group "${group}": the archive of member "${one.m.name}" (${one.m.kind}) did not reach the point's position ${within} (${one.detail}); no point was stored`
          : `group "${group}": the archives of members ${behind.map((b) => `"${b.m.name}" (${b.m.kind}: ${b.detail})`).join(' and ')} did not reach the point's positions ${within}; no point was stored`,
        { hint: behind.map((b) => archiveHint(b.m.kind, b.m.name)).join('; ') },
      );
    }
    await new Promise((res) => setTimeout(res, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
  }
}
