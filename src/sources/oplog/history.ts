/**
 * What the repository holds of a journal: its generations in order, each with its
 * segment names, and where shipping stopped (for a restarted replicator, which
 * continues from there instead of from what it remembers: it remembers nothing).
 */
import { createHash } from 'node:crypto';
import type { Repository } from '../../repo/repository.js';
import { logSource } from './names.js';
import { chainFrom, decodeSegment, parseSegmentName, type Fork, type Piece, type SegmentMeta, type SegmentName } from './segment.js';

export interface Generation {
  id: string;
  names: SegmentName[];
}

/**
 * The id of the generation that follows `previous` ('' for the first) in the file
 * (dev, ino): a sequence number, 12 hex digits (so ids sort in history order), and 8
 * hex digits of a hash of what it follows and the file. Derived, not random, so two
 * shippers that see the same change (a backup beside a replicator, both starting on a
 * journal nothing was shipped of yet) continue the same generation instead of storing
 * the same records twice under two.
 */
export function generationId(previous: string, dev: number, ino: number): string {
  const seq = previous ? parseInt(previous.slice(0, 12), 16) + 1 : 1;
  const tail = createHash('sha256').update(`${previous}/${dev}/${ino}`).digest('hex').slice(0, 8);
  return seq.toString(16).padStart(12, '0') + tail;
}

/** Every generation of `name`, oldest first, with its segments in order. */
export async function generations(repo: Pick<Repository, 'listLogs'>, name: string): Promise<Generation[]> {
  const byGen = new Map<string, SegmentName[]>();
  for (const l of await repo.listLogs(logSource(name))) {
    const n = parseSegmentName(l.file);
    if (!n || !/^[0-9a-f]{20}$/.test(l.timeline)) continue;
    byGen.set(l.timeline, [...(byGen.get(l.timeline) ?? []), n]);
  }
  return [...byGen.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([id, names]) => ({ id, names: names.sort((a, b) => a.start - b.start || a.end - b.end) }));
}

export interface ShippedEnd {
  generation: string;
  /** The newest segment of the newest generation: where shipping stopped, and from which file. */
  meta: SegmentMeta;
}

/** Where shipping of `name` stopped, or undefined when nothing was ever shipped. */
export async function shippedEnd(repo: Pick<Repository, 'listLogs' | 'getLog'>, name: string): Promise<ShippedEnd | undefined> {
  const gens = await generations(repo, name);
  const gen = gens[gens.length - 1];
  if (!gen) return undefined;
  // The segment reaching furthest: shipping continues after it (a gap before it is the restore's to report).
  const last = gen.names.reduce<SegmentName | undefined>((m, n) => (!m || n.end > m.end ? n : m), undefined);
  if (!last) return undefined;
  const buf = await repo.getLog(logSource(name), gen.id, last.file);
  if (!buf) return undefined;
  return { generation: gen.id, meta: decodeSegment(buf, `${gen.id}/${last.file}`).meta };
}

/** A generation as a restore sees it: whether it continues a restored copy, and when its own records begin. */
export interface GenerationInfo extends Generation {
  fork?: Fork;
  /** The time of its first own stored record (Unix ms), undefined when it has none. */
  firstTime?: number;
}

/** Reads the first own segment of every generation (one object each). */
export async function describeGenerations(repo: Pick<Repository, 'getLog'>, name: string, gens: readonly Generation[]): Promise<GenerationInfo[]> {
  const out: GenerationInfo[] = [];
  for (const g of gens) {
    const from = Math.min(...g.names.map((n) => n.start));
    const first = chainFrom(from, g.names).chain[0];
    const buf = first && (await repo.getLog(logSource(name), g.id, first.file));
    if (!buf) {
      out.push(g);
      continue;
    }
    const { meta } = decodeSegment(buf, `${g.id}/${first.file}`);
    out.push({ ...g, ...(meta.fork ? { fork: meta.fork } : {}), ...(meta.marks[0] ? { firstTime: meta.marks[0][1] } : {}) });
  }
  return out;
}

/**
 * The history a restore to `limit` writes, as pieces [generation, from, to) in order.
 * It follows the newest generation whose own records had begun by then (one that began
 * later did not exist at that moment): its history is the pieces its fork names (a
 * restored copy it continues) or, without one, the whole history of the generation
 * before it, and then its own records.
 */
export function historyFor(gens: readonly GenerationInfo[], limit: number): Piece[] {
  let i = gens.length - 1;
  while (i > 0 && !((gens[i]?.firstTime ?? Infinity) <= limit)) i--;
  const tail: Piece[] = [];
  for (; i >= 0; i--) {
    const g = gens[i] as GenerationInfo;
    tail.push([g.id, g.fork ? g.fork.bytes : 0, Infinity]);
    if (g.fork) return [...g.fork.pieces, ...tail.reverse()];
  }
  return tail.reverse();
}
