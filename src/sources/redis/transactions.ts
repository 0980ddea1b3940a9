/**
 * Redis transactions by number: every transaction the replicator shipped (a write
 * command, or a whole MULTI…EXEC block: scanner.ts's TxnTracker) has a number in its
 * generation, 1 for the first after the generation's first RDB, so an operator can name
 * "the DEL" and restore to just before it (restore-plan.ts's planToCut), whatever the
 * clock said. docs/redis.md, "Transaction numbers", has why the number is recorded.
 *
 * Numbers are recorded by the replicator (segment.ts's firstTxn/txns); where each
 * transaction ends is found again by scanning the stored bytes with the same tracker,
 * so a number always maps to the same offset: the end of its last command. History
 * written without numbers is numbered by counting from the oldest stored segment.
 *
 * Memory: one segment at a time; descriptions are bounded (MAX_KEYS keys and
 * MAX_COMMANDS commands per transaction) and never hold a value.
 */
import { LifeboatError } from '../../errors.js';
import { aroundSlice, MAX_AROUND, pickGeneration, relisting, vanished, type TimeSpan } from '../../engine/txn-history.js';
import type { Repository } from '../../repo/repository.js';
import { keyIndexes, showKey } from './command-keys.js';
import { basesOf, segmentsOf } from './history.js';
import { logSource } from './names.js';
import { RespReader } from './resp.js';
import { CommandScanner, TxnTracker } from './scanner.js';
import { chainFrom, decodeSegment, type Segment, type SegmentName } from './segment.js';

export { MAX_AROUND };

type Repo = Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>;

/** Keys shown per command, and commands per transaction; the rest are counted. */
export const MAX_KEYS = 8;
export const MAX_COMMANDS = 10;

export interface RedisTxn {
  generation: string;
  seq: number;
  /** The replication id of the segment it is stored in. */
  replid: string;
  /**
   * Where its first command (MULTI for a block) starts: a cut point, and the same however
   * the stream is cut into segments (housekeeping such as PING or SELECT before it is not
   * part of it, and changes no data).
   */
  before: number;
  /** The offset just after its last command (EXEC for a block). */
  end: number;
  /** When the replicator had received all of it (Unix ms): not when the server ran it, up to a read later. */
  time: number;
}

export interface TxnCommand {
  name: string;
  /** Up to MAX_KEYS keys, readable (command-keys.ts's showKey). */
  keys: string[];
  /** How many keys it names; null when the command is not in command-keys.ts's table. */
  keyCount: number | null;
}

export interface DescribedTxn extends RedisTxn {
  /** The database it ran in when a SELECT before it in its segment says so. */
  db: number | null;
  /** Its commands (MULTI/EXEC and housekeeping left out), at most MAX_COMMANDS. */
  commands: TxnCommand[];
  /** How many commands it has in all. */
  commandCount: number;
  /** A MULTI…EXEC block. */
  block: boolean;
}

export interface RedisGenerationSpan extends TimeSpan {
  names: SegmentName[];
  /** The offsets of its base snapshots kept: nothing before the oldest can be restored. */
  bases: number[];
}

const what = (name: string) => ({ source: `Redis "${name}"`, historyCommand: 'lifeboat redis history NAME --around TIME', shipCommand: 'lifeboat redis replicate' });

/** The generations of server `name` with what their stored history spans, newest first. */
export async function generationSpans(repo: Repo, name: string): Promise<RedisGenerationSpan[]> {
  const logs = await repo.listLogs(logSource(name));
  const spans = new Map<string, RedisGenerationSpan>();
  for (const b of basesOf(await repo.listSnapshots(), name)) {
    const gen = b.point.generation;
    const t = Date.parse(b.snapshot.time);
    const g = spans.get(gen) ?? { generation: gen, from: t, to: t, names: segmentsOf(logs, gen), bases: [] };
    g.from = Math.min(g.from, t);
    g.bases.push(b.point.offset);
    g.to = Math.max(g.to, t, ...g.names.map((n) => n.lastTime));
    spans.set(gen, g);
  }
  return [...spans.values()].sort((a, b) => b.to - a.to || b.generation.localeCompare(a.generation));
}

/** A segment a restore can replay, with the offset of the base it is replayed from. */
type Reachable = SegmentName & { base: number };

/**
 * The segments a restore can replay, in order: the chain from the oldest base up to a
 * gap, then from the first base after the gap (a periodic snapshot), and so on. A
 * transaction in them is restorable when it starts at or after its chain's base.
 */
function chainOf(g: RedisGenerationSpan): Reachable[] {
  const out: Reachable[] = [];
  let end = -1;
  for (const base of [...g.bases].sort((a, b) => a - b)) {
    if (base <= end) continue; // an earlier chain reaches it already (or stopped at a gap just there)
    const { chain } = chainFrom(base, g.names);
    out.push(...chain.map((n) => ({ ...n, base })));
    end = chain.at(-1)?.end ?? base;
  }
  return out;
}

async function readSegment(repo: Repo, name: string, generation: string, n: SegmentName): Promise<Segment> {
  const data = await repo.getLog(logSource(name), generation, n.file);
  if (!data) throw vanished(`Redis "${name}"`);
  return decodeSegment(data, n.file);
}

/** Every command of a segment: where it starts and ends (offsets) and what it does to the count. */
function commandsOf(seg: Segment): Array<{ start: number; end: number; step: ReturnType<TxnTracker['step']>; kind: string }> {
  const out: Array<{ start: number; end: number; step: ReturnType<TxnTracker['step']>; kind: string }> = [];
  const tracker = new TxnTracker();
  let at = seg.meta.start;
  new CommandScanner().scan(seg.stream, (end, kind) => {
    out.push({ start: at, end: seg.meta.start + end, step: tracker.step(kind), kind });
    at = seg.meta.start + end;
  });
  return out;
}

/**
 * A segment's transactions, numbered from `firstSeq` (its recorded firstTxn, or the
 * count so far for older history). CORRUPT when the recorded count disagrees with the bytes.
 */
function txnsOf(generation: string, seg: Segment, firstSeq: number): RedisTxn[] {
  const out: RedisTxn[] = [];
  let begin: number | undefined;
  let seq = firstSeq;
  let m = 0;
  const marks = seg.meta.marks;
  for (const c of commandsOf(seg)) {
    if (c.step === 'cut') continue;
    begin ??= c.start;
    if (c.step !== 'txn') continue;
    while (m < marks.length && (marks[m] as readonly [number, number])[0] < c.end) m++;
    const time = (marks[m] ?? marks[marks.length - 1] ?? [0, 0])[1];
    out.push({ generation, seq: seq++, replid: seg.meta.replid, before: begin, end: c.end, time });
    begin = undefined;
  }
  if (seg.meta.txns !== undefined && seg.meta.txns !== out.length) {
    throw new LifeboatError('CORRUPT', `command segment at offset ${seg.meta.start} of generation ${generation} records ${seg.meta.txns} transactions but holds ${out.length}`, {
      hint: '`lifeboat check` reports damaged log segments',
    });
  }
  return out;
}

/** The number of the first transaction of chain segment `i`: recorded, or counted from the chain's start (older history). */
async function firstSeqOf(repo: Repo, name: string, g: RedisGenerationSpan, chain: readonly Reachable[], i: number, seg: Segment): Promise<number> {
  if (seg.meta.firstTxn !== undefined) return seg.meta.firstTxn;
  let next = 1;
  for (let j = 0; j < i; j++) {
    const s = await readSegment(repo, name, g.generation, chain[j] as Reachable);
    next = s.meta.firstTxn !== undefined ? s.meta.firstTxn + (s.meta.txns ?? 0) : next + txnsOf(g.generation, s, next).length;
  }
  return next;
}

export interface AroundOptions {
  around: Date;
  /** How many transactions, nearest to the moment first (listed in order). */
  limit: number;
  generation?: string;
}

/**
 * `limit` transactions around a moment (by the replicator's time), in order, described:
 * from the generation whose history spans the moment (or the one named). Only those a
 * restore can reach (after the oldest base kept) are listed.
 */
export async function transactionsAround(repo: Repo, name: string, opts: AroundOptions): Promise<{ generation: RedisGenerationSpan; txns: DescribedTxn[] }> {
  if (!(opts.limit >= 1 && opts.limit <= MAX_AROUND)) throw new LifeboatError('USAGE', `--limit must be between 1 and ${MAX_AROUND}`);
  const t = opts.around.getTime();
  return relisting(async () => {
    const g = pickGeneration(await generationSpans(repo, name), t, opts.generation, what(name));
    const chain = chainOf(g);
    if (chain.length === 0) return { generation: g, txns: [] };
    // The first segment reaching the moment (names carry their last mark's time).
    let k = chain.findIndex((n) => n.lastTime >= t);
    if (k < 0) k = chain.length - 1;
    // Per segment only the last `limit` seen before the moment and the first `limit` at or
    // after it are kept (times ascend along the stream): all the listing can take, so memory
    // stays at one segment's transactions plus a few `limit`s, however many a segment holds.
    const found = new Map<number, RedisTxn[]>();
    const txnsAt = async (i: number) => {
      let txns = found.get(i);
      if (!txns) {
        const seg = await readSegment(repo, name, g.generation, chain[i] as Reachable);
        const all = txnsOf(g.generation, seg, await firstSeqOf(repo, name, g, chain, i, seg)).filter((x) => x.before >= (chain[i] as Reachable).base);
        const split = ((j) => (j < 0 ? all.length : j))(all.findIndex((x) => x.time >= t));
        txns = [...all.slice(Math.max(0, split - opts.limit), split), ...all.slice(split, split + opts.limit)];
        found.set(i, txns);
      }
      return txns;
    };
    // Back from there until `limit` before the moment, forward until `limit` at or after it.
    let lo = k;
    for (let before = 0; lo > 0; lo--) {
      before += (await txnsAt(lo)).filter((x) => x.time < t).length;
      if (before >= opts.limit) break;
    }
    let hi = k;
    for (let after = 0; hi < chain.length - 1; hi++) {
      after += (await txnsAt(hi)).filter((x) => x.time >= t).length;
      if (after >= opts.limit) break;
    }
    const all: Array<RedisTxn & { segment: number }> = [];
    for (let i = lo; i <= hi; i++) all.push(...(await txnsAt(i)).map((x) => ({ ...x, segment: i })));
    const chosen = aroundSlice(all, t, opts.limit);
    // Described from their segments, read again one at a time (only the few that hold them).
    const out: DescribedTxn[] = [];
    for (const i of [...new Set(chosen.map((x) => x.segment))]) {
      const seg = await readSegment(repo, name, g.generation, chain[i] as Reachable);
      out.push(...describe(seg, chosen.filter((x) => x.segment === i).map(({ segment: _s, ...x }) => x)));
    }
    return { generation: g, txns: out };
  });
}

/**
 * Transaction `seq` of a generation (the newest when none is named). NOT_FOUND, with the
 * numbers a restore can reach, when there is no such transaction.
 */
export async function findTransaction(repo: Repo, name: string, seq: number, generation?: string): Promise<RedisTxn> {
  return relisting(async () => {
    const spans = await generationSpans(repo, name);
    const g = generation !== undefined ? pickGeneration(spans, 0, generation, what(name)) : spans[0];
    if (!g) throw new LifeboatError('NOT_FOUND', `no replicated history of Redis "${name}" in this repository`, { hint: '`lifeboat redis replicate` ships transactions; `lifeboat snapshots` lists what is stored' });
    const chain = chainOf(g);
    const numbered = async (i: number) => {
      const seg = await readSegment(repo, name, g.generation, chain[i] as Reachable);
      return txnsOf(g.generation, seg, await firstSeqOf(repo, name, g, chain, i, seg)).filter((x) => x.before >= (chain[i] as Reachable).base);
    };
    // Numbers grow along the chain: a binary search reads a handful of segments (and
    // walks over those holding none, PING only, to the nearest on the left that does).
    let lo = 0;
    let hi = chain.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      let j = mid;
      let txns = await numbered(j);
      while (txns.length === 0 && j > lo) txns = await numbered(--j);
      const first = txns[0];
      const last = txns.at(-1);
      if (!first || !last) {
        lo = mid + 1;
        continue;
      }
      const hit = txns.find((x) => x.seq === seq);
      if (hit) return hit;
      if (seq < first.seq) hi = j - 1;
      else if (seq > last.seq) lo = mid + 1;
      else break;
    }
    const stored = await storedRange(numbered, chain.length);
    throw new LifeboatError('NOT_FOUND', `Redis "${name}" has no transaction ${seq} in generation ${g.generation}` + (stored ? ` (stored: ${stored[0]} to ${stored[1]})` : ' (none stored)'), {
      hint: '`lifeboat redis history NAME --around TIME` lists transactions with their numbers',
    });
  });
}

/** The first and last numbers a restore can reach in a chain, or undefined when it holds none. */
async function storedRange(numbered: (i: number) => Promise<RedisTxn[]>, length: number): Promise<[number, number] | undefined> {
  let first: number | undefined;
  for (let i = 0; i < length && first === undefined; i++) first = (await numbered(i))[0]?.seq;
  let last: number | undefined;
  for (let i = length - 1; i >= 0 && last === undefined; i--) last = (await numbered(i)).at(-1)?.seq;
  return first !== undefined && last !== undefined ? [first, last] : undefined;
}

/** Where a restore stops for `--txn N` (including it) or `--before-txn N` (excluding it). */
export function cutOf(t: RedisTxn, include: boolean): { generation: string; offset: number } {
  return { generation: t.generation, offset: include ? t.end : t.before };
}

/**
 * The commands and keys of `txns` (all from `seg`), and the database each ran in when a
 * SELECT earlier in the segment tells. Values are skipped, never kept.
 */
function describe(seg: Segment, txns: readonly RedisTxn[]): DescribedTxn[] {
  const out: DescribedTxn[] = [];
  let db: number | null = seg.meta.db ?? null;
  let t = 0;
  const bytes = (from: number, to: number) => seg.stream.subarray(from - seg.meta.start, to - seg.meta.start);
  for (const c of commandsOf(seg)) {
    const txn = txns[t];
    if (!txn) break;
    if (c.end <= txn.before) {
      if (c.kind === 'select') db = selected(argsOf(bytes(c.start, c.end))) ?? db;
      continue;
    }
    if (c.end !== txn.end) continue;
    const d = commandsIn(bytes(txn.before, txn.end), db);
    out.push({ ...txn, db: d.db, commands: d.commands, commandCount: d.commandCount, block: d.block });
    db = d.dbAfter;
    t++;
  }
  return out;
}

/** The database a SELECT's arguments name, or undefined for another command. */
function selected(args: readonly Buffer[]): number | undefined {
  if (args[0]?.toString('latin1').toLowerCase() !== 'select') return undefined;
  const d = args[1]?.toString('latin1') ?? '';
  return /^\d{1,5}$/.test(d) ? Number(d) : undefined;
}

/**
 * The commands of one transaction's bytes (MULTI, EXEC and housekeeping left out),
 * bounded; `db` is the database selected before them: returned as the one the first
 * command ran in, and the one selected after the last.
 */
function commandsIn(stream: Buffer, db: number | null): { commands: TxnCommand[]; commandCount: number; block: boolean; db: number | null; dbAfter: number | null } {
  const commands: TxnCommand[] = [];
  let commandCount = 0;
  let block = false;
  let first: number | null | undefined;
  const reader = new RespReader();
  reader.push(stream);
  for (let v = reader.next(); v; v = reader.next()) {
    if (!Array.isArray(v.value)) continue;
    const args = v.value.filter((a): a is Buffer => Buffer.isBuffer(a));
    const name = args[0]?.toString('latin1').toLowerCase() ?? '';
    const sel = selected(args);
    if (sel !== undefined) db = sel;
    if (name === 'multi') block = true;
    if (['select', 'multi', 'exec', 'ping', 'replconf'].includes(name)) continue;
    if (first === undefined) first = db;
    commandCount++;
    if (commands.length >= MAX_COMMANDS) continue;
    const idx = keyIndexes(args);
    commands.push({
      name: showKey(Buffer.from(name.toUpperCase(), 'latin1')).slice(0, 32),
      keys: (idx ?? []).slice(0, MAX_KEYS).map((i) => showKey(args[i] as Buffer)),
      keyCount: idx === undefined ? null : idx.length,
    });
  }
  return { commands, commandCount, block, db: first ?? db, dbAfter: db };
}

/** The arguments of one command's bytes. */
function argsOf(bytes: Buffer): Buffer[] {
  const r = new RespReader();
  r.push(bytes);
  const v = r.next()?.value;
  return Array.isArray(v) ? v.filter((a): a is Buffer => Buffer.isBuffer(a)) : [];
}
