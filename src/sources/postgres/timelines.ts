/**
 * Production's history in a PostgreSQL archive, and every timeline that is not on it.
 *
 * An archive can hold timelines production never ran on: a restored copy started
 * with archiving on (an older Lifeboat, or an operator who turned it back on) pushes
 * its own timeline under the source's name. PostgreSQL's `recovery_target_timeline
 * = 'latest'` follows whichever timeline is newest, so one such copy used to turn
 * every later restore into a restore of the copy. Restores therefore name the
 * timeline to follow, and this module decides which one that is:
 *
 * 1. The newest base backup's timeline, with the ancestors its history file lists up
 *    to their switch points, is production's: `pg backup` is pointed at production.
 * 2. From there production moves to a child timeline only on positive evidence that
 *    production went there: WAL that `pg stream` (connected to production) received
 *    on it or on a descendant. A newer base backup on the child makes it step 1.
 * 3. A child whose parent kept receiving WAL past its branch point has diverged: two
 *    clusters wrote from one past, and the child is a copy's unless the streamer
 *    says otherwise (then the archive alone cannot tell: "ambiguous").
 *
 * A child with neither evidence nor divergence ("unconfirmed") is not followed:
 * following a copy's timeline silently returns data production never had, while
 * not following a promoted copy is visible (every restore and check names it) and
 * ends with the base backup one takes after promoting anyway.
 *
 * Facts are gathered from the repository once; the analysis itself is pure.
 */
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { formatLsn, parseLsn, parseWalName, segmentName } from './wal.js';
import { logSource, streamSource } from './names.js';
import { requirePgPoint } from './point.js';

const DEFAULT_SEG = 16 * 1024 * 1024;

export interface TimelineFacts {
  timeline: number;
  /** Its history file's entries, oldest first: [ancestor, LSN where it switched]; undefined without one. */
  history?: Array<[number, bigint]>;
  /** Segment numbers held, whole or partial, archived or streamed. */
  segments: Set<bigint>;
  /** Files of any kind on this timeline. */
  files: number;
  /** `pg stream` received something on this timeline. */
  streamed: boolean;
}

export interface BackupRef {
  id: string;
  timeline: number;
  startLsn: bigint;
  stopLsn: bigint;
  stopTime: string;
}

/** One step of a history: a timeline and where it was left for the next (undefined: the last). */
export interface ChainLink {
  timeline: number;
  until?: bigint;
}

export type TimelineState = 'production' | 'foreign' | 'unconfirmed' | 'ambiguous';

export interface TimelineReport {
  timeline: number;
  parent: number | null;
  branchLsn: string | null;
  firstSegment: string | null;
  lastSegment: string | null;
  files: number;
  streamed: boolean;
  onProduction: boolean;
  state: TimelineState;
  /** On production's history: where production left it (null for the head). */
  productionUntil: string | null;
  reason: string;
}

export interface ProductionHistory {
  head: number;
  chain: ChainLink[];
  /** Why this is production's history, in one line. */
  basis: string;
  timelines: TimelineReport[];
}

export function parseHistory(text: string): Array<[number, bigint]> {
  const out: Array<[number, bigint]> = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (m) out.push([Number(m[1]), parseLsn(m[2]!)]);
  }
  return out;
}

export function backupRefs(snapshots: readonly Snapshot[], name: string): BackupRef[] {
  return snapshots
    .filter((s) => s.source.kind === 'postgres' && s.source.name === name && s.consistency)
    .map((s) => {
      const c = requirePgPoint(s);
      return { id: s.id, timeline: c.timeline, startLsn: parseLsn(c.startLsn), stopLsn: parseLsn(c.stopLsn), stopTime: c.stopTime };
    });
}

/** Lists the archived and streamed WAL of NAME (not what was moved aside) and reads every history file. */
/** A stored WAL file of a source, archived (archive-push) or streamed (pg stream), with its parsed name. */
export interface StoredWal {
  source: string;
  streamed: boolean;
  log: { timeline: string; file: string; size: number };
  wal: ReturnType<typeof parseWalName>;
}

/** Every stored WAL file of source NAME, archived first, then streamed; objects whose name is not WAL (identity/cluster.json) are skipped. */
export async function* storedWal(repo: Pick<Repository, 'listLogs'>, name: string, segSize = DEFAULT_SEG): AsyncGenerator<StoredWal> {
  for (const [source, streamed] of [[logSource(name), false], [streamSource(name), true]] as const) {
    for (const log of await repo.listLogs(source)) {
      let wal;
      try {
        wal = parseWalName(log.file, segSize);
      } catch {
        continue;
      }
      yield { source, streamed, log, wal };
    }
  }
}

export async function gatherTimelines(repo: Pick<Repository, 'listLogs' | 'getLog'>, name: string, segSize = DEFAULT_SEG): Promise<Map<number, TimelineFacts>> {
  const facts = new Map<number, TimelineFacts>();
  const at = (t: number): TimelineFacts => {
    let f = facts.get(t);
    if (!f) facts.set(t, (f = { timeline: t, segments: new Set(), files: 0, streamed: false }));
    return f;
  };
  for await (const { source, streamed, log: l, wal: w } of storedWal(repo, name, segSize)) {
    const f = at(w.timeline);
    f.files++;
    if (streamed) f.streamed = true;
    if (w.segno !== undefined) f.segments.add(w.segno);
    if (w.kind === 'history' && !f.history) {
      const text = await repo.getLog(source, l.timeline, l.file);
      if (text) f.history = parseHistory(text.toString('utf8'));
    }
  }
  return facts;
}

/** The history that ends on TIMELINE, from its history file: [ancestors…, timeline]. */
export function ancestry(facts: ReadonlyMap<number, TimelineFacts>, timeline: number): ChainLink[] {
  const h = facts.get(timeline)?.history ?? [];
  return [...h.map(([t, lsn]) => ({ timeline: t, until: lsn })), { timeline }];
}

export function productionHistory(facts: ReadonlyMap<number, TimelineFacts>, backups: readonly BackupRef[], segSize = DEFAULT_SEG): ProductionHistory {
  const seg = BigInt(segSize);
  const parentOf = (t: number) => facts.get(t)?.history?.at(-1);
  // A new timeline's number is above every one it knew of: a history naming a later parent is damaged, not a child.
  const kids = (t: number) => [...facts.keys()].filter((k) => k > t && parentOf(k)?.[0] === t).sort((a, b) => a - b);
  const descendants = (t: number): number[] => kids(t).flatMap((k) => [k, ...descendants(k)]);
  const streamedOn = (t: number) => [t, ...descendants(t)].some((d) => facts.get(d)?.streamed);
  /** The parent wrote past L: a segment after the one holding L (or holding only WAL after it), or a backup that ended past it. */
  const diverged = (parent: number, lsn: bigint) =>
    [...(facts.get(parent)?.segments ?? [])].some((s) => s > lsn / seg || (s === lsn / seg && lsn % seg === 0n)) ||
    backups.some((b) => b.timeline === parent && b.stopLsn > lsn);

  const newest = [...backups].sort((a, b) => Date.parse(a.stopTime) - Date.parse(b.stopTime)).at(-1);
  const anchor = newest?.timeline ?? Math.min(...facts.keys(), ...(facts.size ? [] : [1]));
  const chain = ancestry(facts, anchor);
  const basis = [newest ? `the newest base backup (${newest.id.slice(0, 8)}, ${newest.stopTime}) is on timeline ${anchor}` : `no base backup yet: timeline ${anchor}, the oldest in the archive`];
  const ambiguous = new Set<number>();
  for (;;) {
    const head = chain.at(-1)!.timeline;
    const next = kids(head).filter((k) => streamedOn(k) && !diverged(head, parentOf(k)![1]));
    if (next.length !== 1) {
      next.forEach((k) => ambiguous.add(k));
      break;
    }
    const k = next[0]!;
    chain.at(-1)!.until = parentOf(k)![1];
    chain.push({ timeline: k });
    basis.push(`pg stream received WAL on timeline ${k}`);
  }

  const head = chain.at(-1)!.timeline;
  const onChain = new Map(chain.map((l) => [l.timeline, l]));
  const classify = (t: number): Pick<TimelineReport, 'state' | 'reason'> => {
    const link = onChain.get(t);
    if (link) {
      return link.until === undefined
        ? { state: 'production', reason: `production's timeline now: ${basis.join('; ')}` }
        : { state: 'production', reason: `production's history until ${formatLsn(link.until)}, where it went on as timeline ${chain[chain.indexOf(link) + 1]!.timeline}` };
    }
    const p = parentOf(t);
    if (!p) return { state: 'foreign', reason: 'its history file is not in the archive, so where it branched from is unknown' };
    const [parent, lsn] = p;
    const at = `at ${formatLsn(lsn)}`;
    const parentLink = onChain.get(parent);
    if (!parentLink) return { state: 'foreign', reason: `it branched from timeline ${parent}, which is not on production's history` };
    if (parent !== head) {
      return { state: 'foreign', reason: `it branched from timeline ${parent} ${at}; production left timeline ${parent} at ${formatLsn(parentLink.until!)} for timeline ${chain[chain.indexOf(parentLink) + 1]!.timeline}` };
    }
    if (ambiguous.has(t)) return { state: 'ambiguous', reason: `pg stream received WAL on it and on another child of timeline ${head}` };
    const d = diverged(head, lsn);
    if (d && streamedOn(t)) return { state: 'ambiguous', reason: `pg stream received WAL on it, but timeline ${head} also went on past its branch point ${formatLsn(lsn)}` };
    if (d) return { state: 'foreign', reason: `it branched from timeline ${head} ${at} and production went on past that point on timeline ${head}: a copy's timeline` };
    return { state: 'unconfirmed', reason: `it branched from production's timeline ${head} ${at}, and no base backup or streamed WAL shows production on it` };
  };

  const all = new Set([...facts.keys(), ...chain.map((l) => l.timeline)]);
  const timelines = [...all]
    .sort((a, b) => a - b)
    .map((t): TimelineReport => {
      const f = facts.get(t);
      const segs = [...(f?.segments ?? [])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const p = parentOf(t);
      const link = onChain.get(t);
      return {
        timeline: t,
        parent: p?.[0] ?? null,
        branchLsn: p ? formatLsn(p[1]) : null,
        firstSegment: segs.length ? segmentName(t, segs[0]!, segSize) : null,
        lastSegment: segs.length ? segmentName(t, segs.at(-1)!, segSize) : null,
        files: f?.files ?? 0,
        streamed: f?.streamed ?? false,
        onProduction: link !== undefined,
        productionUntil: link?.until !== undefined ? formatLsn(link.until) : null,
        ...classify(t),
      };
    });
  return { head, chain, basis: basis.join('; '), timelines };
}

/**
 * One warning line per timeline that is not production's, with both ways out: a
 * point-in-time recovery put into service looks like a copy until its first base
 * backup, so the warning never only says "move it aside".
 */
export function timelineWarnings(name: string, h: ProductionHistory): string[] {
  return h.timelines
    .filter((t) => !t.onProduction)
    .map(
      (t) =>
        `timeline ${t.timeline} in the archive of ${name} is not on production's history (${t.state}: ${t.reason}); restores ignore it. ` +
        `If that cluster is production now, take a base backup of it (\`lifeboat pg backup --name ${name} …\`); ` +
        `if not, move it aside: \`lifeboat pg timelines --name ${name} --move-aside ${t.timeline}\``,
    );
}

/** The timeline a restore recovers along, and its history. */
export function chainFor(facts: ReadonlyMap<number, TimelineFacts>, h: ProductionHistory, timeline?: number): ChainLink[] {
  if (timeline === undefined) return h.chain.map((l) => ({ ...l }));
  return ancestry(facts, timeline);
}

/** Whether a base backup lies on CHAIN: on one of its timelines, before production left it. */
export function backupOnChain(chain: readonly ChainLink[], b: Pick<BackupRef, 'timeline' | 'stopLsn'>): boolean {
  const link = chain.find((l) => l.timeline === b.timeline);
  return link !== undefined && (link.until === undefined || b.stopLsn <= link.until);
}
