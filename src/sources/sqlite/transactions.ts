/**
 * Transactions by number: every transaction a replicator shipped has a number in its
 * generation (segment.ts's Commit.seq: 1 for the first after the generation's first
 * snapshot, then one more each), so an operator can name "the one that deleted the
 * rows" and restore to just before it, whatever the clock said.
 *
 * The number is read from the stored history, never from a clock, so it is the same on
 * every read: a commit carries its `seq` (replicators since 2026-12-03); one without
 * (older history) is numbered one more than the commit before it in the generation's
 * chain, and the first stored commit without one is 1 — for such older generations the
 * numbers count from the oldest segment retention kept.
 *
 * Memory: one segment at a time plus the page numbers of the transactions listed.
 */
import type { Repository } from '../../repo/repository.js';
import { LifeboatError } from '../../errors.js';
import { logSource } from './names.js';
import { DIVERGED, segmentsOf, trustedUntil } from './history.js';
import { FRAME_HEADER_SIZE, frameInfo } from './wal.js';
import { chainFrom, comparePos, decodeSegment, type Commit, type Position, type Segment, type SegmentName } from './segment.js';
import { sqlitePoint } from './point.js';
import type { Located } from './locate.js';
import { aroundSlice, MAX_AROUND, pickGeneration as pickSpan, relisting, vanished as vanishedFrom } from '../../engine/txn-history.js';

export { MAX_AROUND };

type Repo = Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>;

export interface NumberedTxn {
  generation: string;
  seq: number;
  /** Position of its commit frame. */
  position: Position;
  /** Where the history stood just before it (the commit before, or where its segment starts). */
  before: Position;
  /** When the replicator first saw it in the WAL (not when SQLite committed it: up to one poll later). */
  time: number;
  /** Distinct database pages it wrote, ascending. */
  pages: number[];
  /** Database size in pages after it. */
  dbPages: number;
}

/** Generations of a database with what their stored history spans, newest first. */
export interface GenerationSpan {
  generation: string;
  /** Time of its oldest snapshot, and of its newest stored transaction (or snapshot). */
  from: number;
  to: number;
  names: SegmentName[];
  trusted?: Position | null;
  /** The oldest snapshot position: history before it cannot be rebuilt (retention removed its base). */
  base: Position;
}

export async function generationSpans(repo: Repo, name: string): Promise<GenerationSpan[]> {
  const source = logSource(name);
  const logs = await repo.listLogs(source);
  const spans = new Map<string, GenerationSpan>();
  for (const s of await repo.listSnapshots()) {
    if (s.source.kind !== 'sqlite' || s.source.name !== name) continue;
    const gen = sqlitePoint(s)?.generation;
    if (!gen) continue;
    const t = Date.parse(s.time);
    const pos = sqlitePoint(s)?.position ?? { cycle: 0, frame: 0 };
    const g = spans.get(gen) ?? { generation: gen, from: t, to: t, names: segmentsOf(logs, gen), base: pos };
    g.from = Math.min(g.from, t);
    if (comparePos(pos, g.base) < 0) g.base = pos;
    g.to = Math.max(g.to, t, ...g.names.map((n) => n.lastTime));
    spans.set(gen, g);
  }
  for (const g of spans.values()) {
    if (logs.some((l) => l.timeline === g.generation && l.file === DIVERGED)) {
      const trusted = await trustedUntil(repo, source, g.generation);
      g.trusted = trusted ?? null;
    }
  }
  return [...spans.values()].sort((a, b) => b.to - a.to);
}

/** The stored chain of a generation, oldest segment first. */
function chainOf(g: GenerationSpan): SegmentName[] {
  const first = [...g.names].sort((a, b) => comparePos(a.start, b.start))[0];
  if (!first) return [];
  return chainFrom(first.start, g.names).chain;
}

/** Reads and decodes one segment; NOT_FOUND-like vanishing (compaction merged it) is reported as undefined. */
async function readSegment(repo: Repo, name: string, generation: string, n: SegmentName): Promise<Segment | undefined> {
  const data = await repo.getLog(logSource(name), generation, n.file);
  return data ? decodeSegment(data, n.file) : undefined;
}

/** A segment's transactions with their pages; `prevSeq` is the number of the commit before the segment's first. */
function txnsOf(generation: string, seg: Segment, prevSeq: number | undefined, trusted: Position | null | undefined): NumberedTxn[] {
  const frameSize = FRAME_HEADER_SIZE + seg.meta.pageSize;
  const out: NumberedTxn[] = [];
  let begin = 0;
  let before = seg.meta.start;
  let seq = prevSeq;
  for (const c of seg.meta.commits) {
    if (trusted === null || (trusted !== undefined && comparePos(c, trusted) > 0)) break;
    seq = c.seq ?? (seq ?? 0) + 1;
    const pages = new Set<number>();
    let dbPages = 0;
    for (let o = begin; o + frameSize <= c.end && o + frameSize <= seg.frames.length; o += frameSize) {
      const f = frameInfo(seg.frames, o);
      pages.add(f.pgno);
      if (f.dbPages) dbPages = f.dbPages;
    }
    const position = { cycle: c.cycle, frame: c.frame };
    out.push({ generation, seq, position, before, time: c.time, pages: [...pages].sort((a, b) => a - b), dbPages });
    before = position;
    begin = c.end;
  }
  return out;
}

/** How many stored commits the chain holds before segment `upTo` (for history written without numbers). */
async function countBefore(repo: Repo, name: string, g: GenerationSpan, chain: SegmentName[], upTo: number): Promise<number> {
  let count = 0;
  for (let i = 0; i < upTo; i++) {
    const seg = await readSegment(repo, name, g.generation, chain[i] as SegmentName);
    if (!seg) throw vanished(name);
    count += seg.meta.commits.length;
  }
  return count;
}

const vanished = (name: string) => vanishedFrom(`SQLite "${name}"`);

export interface AroundOptions {
  around: Date;
  /** How many transactions, nearest to the moment first (listed in order). */
  limit: number;
  generation?: string;
}

/**
 * `limit` transactions around a moment (by the replicator's time), in order: a quarter
 * before it, the rest from the first seen at or after it; from the generation whose
 * history spans the moment (or the one named).
 */
export async function transactionsAround(repo: Repo, name: string, opts: AroundOptions): Promise<{ generation: GenerationSpan; txns: NumberedTxn[] }> {
  if (!(opts.limit >= 1 && opts.limit <= MAX_AROUND)) throw new LifeboatError('USAGE', `--limit must be between 1 and ${MAX_AROUND}`);
  return relisting(async () => {
    const g = pickGeneration(await generationSpans(repo, name), name, opts.around.getTime(), opts.generation);
    const chain = chainOf(g);
    const t = opts.around.getTime();
    // The first segment reaching the moment (names carry their last commit's time).
    let k = chain.findIndex((n) => n.lastTime >= t);
    if (k < 0) k = chain.length - 1;
    const read = new Map<number, Segment>();
    const get = async (i: number) => {
      let seg = read.get(i);
      if (!seg) {
        seg = await readSegment(repo, name, g.generation, chain[i] as SegmentName);
        if (!seg) throw vanished(name);
        read.set(i, seg);
      }
      return seg;
    };
    // Back from there until `limit` commits at or before the moment, forward until `limit` after it.
    let lo = k;
    let before = 0;
    for (; lo >= 0; lo--) {
      before += (await get(lo)).meta.commits.filter((c) => c.time <= t).length;
      if (before >= opts.limit) break;
    }
    lo = Math.max(lo, 0);
    let hi = k;
    for (let after = 0; hi >= 0 && hi < chain.length; hi++) {
      after += (await get(hi)).meta.commits.filter((c) => c.time > t).length;
      if (after >= opts.limit) break;
    }
    hi = Math.min(hi, chain.length - 1);
    if (chain.length === 0) return { generation: g, txns: [] };
    const firstSeg = await get(lo);
    let prevSeq: number | undefined = firstSeg.meta.commits[0]?.seq !== undefined ? undefined : await countBefore(repo, name, g, chain, lo);
    const all: NumberedTxn[] = [];
    for (let i = lo; i <= hi; i++) {
      const txns = txnsOf(g.generation, await get(i), prevSeq, g.trusted);
      // Only what a restore can rebuild: from the oldest snapshot kept on.
      all.push(...txns.filter((x) => comparePos(x.before, g.base) >= 0));
      prevSeq = txns.at(-1)?.seq ?? prevSeq;
      read.delete(i);
    }
    return { generation: g, txns: aroundSlice(all, t, opts.limit) };
  });
}

function pickGeneration(spans: GenerationSpan[], name: string, t: number, wanted: string | undefined): GenerationSpan {
  return pickSpan(spans, t, wanted, { source: `SQLite "${name}"`, historyCommand: 'lifeboat sqlite history NAME --around T', shipCommand: 'lifeboat sqlite replicate' });
}

/**
 * Transaction `seq` of a generation (the newest when none is named). NOT_FOUND, with
 * the numbers that exist, when there is no such transaction.
 */
export async function findTransaction(repo: Repo, name: string, seq: number, generation?: string): Promise<NumberedTxn> {
  return relisting(async () => {
    const spans = await generationSpans(repo, name);
    const g = generation ? pickGeneration(spans, name, 0, generation) : spans[0];
    if (!g) throw new LifeboatError('NOT_FOUND', `no replicated history of SQLite "${name}" in this repository`, { hint: '`lifeboat sqlite replicate` ships transactions' });
    const chain = chainOf(g);
    // Newest first while the segments carry their numbers (they only grow along the chain).
    let lowest: number | undefined;
    let highest: number | undefined;
    for (let i = chain.length - 1; i >= 0; i--) {
      const seg = await readSegment(repo, name, g.generation, chain[i] as SegmentName);
      if (!seg) throw vanished(name);
      const first = seg.meta.commits[0]?.seq;
      if (first === undefined) {
        // Older history without numbers: counted from the oldest stored segment.
        let prev = 0;
        lowest = undefined;
        for (let j = 0; j < chain.length; j++) {
          const s = j === i ? seg : await readSegment(repo, name, g.generation, chain[j] as SegmentName);
          if (!s) throw vanished(name);
          const txns = txnsOf(g.generation, s, prev, g.trusted);
          const hit = txns.find((x) => x.seq === seq);
          if (hit) return hit;
          lowest ??= txns[0]?.seq;
          if (j >= i) highest = txns.at(-1)?.seq ?? highest;
          prev = txns.at(-1)?.seq ?? prev;
          if (txns.length < s.meta.commits.length) break; // past the trusted end
        }
        break;
      }
      const txns = txnsOf(g.generation, seg, first - 1, g.trusted);
      highest ??= txns.at(-1)?.seq;
      lowest = txns[0]?.seq ?? lowest;
      const hit = txns.find((x) => x.seq === seq);
      if (hit) return hit;
      if (first <= seq) break;
    }
    throw new LifeboatError('NOT_FOUND', `SQLite "${name}" has no transaction ${seq} in generation ${g.generation}` + (lowest !== undefined ? ` (stored: ${lowest} to ${highest ?? lowest})` : ' (none stored)'), {
      hint: '`lifeboat sqlite history NAME --around TIME` lists transactions with their numbers',
    });
  });
}

/** Where a restore stops for `--txn N` (including it) or `--before-txn N` (excluding it). */
export function restorePoint(t: NumberedTxn, include: boolean): Located {
  return { generation: t.generation, position: include ? t.position : t.before };
}

export type { Commit };
