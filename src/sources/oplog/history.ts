/**
 * What the repository holds of a journal: its generations in order, each with its
 * segment names, and where shipping stopped (for a restarted replicator, which
 * continues from there instead of from what it remembers: it remembers nothing).
 */
import { createHash } from 'node:crypto';
import type { Repository } from '../../repo/repository.js';
import { logSource } from './names.js';
import { decodeSegment, parseSegmentName, type SegmentMeta, type SegmentName } from './segment.js';

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
