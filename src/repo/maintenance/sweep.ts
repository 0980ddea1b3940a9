/**
 * The sweep of prune: deletes packs on retiring lists without trusting the index.
 *
 * Index files are claims by whoever wrote them (an append-only client may write any),
 * so before a pack is deleted its own header says what it holds, and every blob in it
 * that a snapshot needs must have a surviving copy: in a pack that exists, is not being
 * deleted, whose header lists the blob where the index says, and whose bytes there
 * authenticate as that blob. Among the copies of a blob the survivor is chosen by one
 * rule (packs not being deleted first, then the lowest pack id), so that two prunes
 * never keep different copies. A candidate pack that is some blob's survivor, or whose
 * header cannot be read, is spared.
 *
 * Costs stay bounded: headers are read for the candidates and for the packs holding
 * the other copies of their live blobs; blob bytes only for those other copies (a
 * wholly dead pack costs one header read).
 */
import { isLifeboatError } from '../../errors.js';
import { listAll } from '../../storage/store.js';
import { keys, packIdFromKey } from '../format.js';
import { parsePackHeader, TRAILER_LEN, type PackEntry } from '../pack/pack.js';
import type { Repository } from '../repository.js';

/** Most pack headers fit in this much of the pack's tail: one read. */
const TAIL_GUESS = 64 * 1024;

type Header = { entries: Map<string, PackEntry>; size: number } | 'missing' | 'damaged';

export interface SweepPlan {
  /** Packs to delete, each with the packs holding the surviving copies of its live blobs. */
  doomed: Map<string, Set<string>>;
  /** Candidates that exist but are kept, with why. */
  spared: Map<string, string>;
  /** Candidates already gone from the store. */
  missing: Set<string>;
  sizes: Map<string, number>;
}

export class SweepPlanner {
  private readonly headers = new Map<string, Promise<Header>>();
  private readonly verified = new Map<string, Promise<boolean>>();

  constructor(
    private readonly repo: Repository,
    private readonly isLive: (id: Buffer) => boolean,
  ) {}

  async plan(candidates: ReadonlySet<string>): Promise<SweepPlan> {
    const plan: SweepPlan = { doomed: new Map(), spared: new Map(), missing: new Set(), sizes: new Map() };
    // Live blobs found in candidates' headers: blob id → candidates holding it.
    const holders = new Map<string, string[]>();
    for (const hex of [...candidates].sort()) {
      const h = await this.header(hex);
      if (h === 'missing') plan.missing.add(hex);
      else if (h === 'damaged') plan.spared.set(hex, 'its header cannot be read');
      else {
        plan.sizes.set(hex, h.size);
        plan.doomed.set(hex, new Set());
        for (const [idHex, e] of h.entries) if (this.isLive(e.id)) holders.set(idHex, [...(holders.get(idHex) ?? []), hex]);
      }
    }
    for (const [idHex, held] of holders) {
      const id = Buffer.from(idHex, 'hex');
      const survivor = await this.survivor(id, candidates);
      if (survivor === undefined) {
        for (const hex of held) spare(plan, hex, `holds blob ${idHex.slice(0, 16)}, which has no other verified copy`);
        continue;
      }
      if (candidates.has(survivor)) spare(plan, survivor, `keeps blob ${idHex.slice(0, 16)}`);
      for (const hex of held) if (hex !== survivor) plan.doomed.get(hex)?.add(survivor);
    }
    return plan;
  }

  /**
   * The copy of a live blob that survives: the first, in the shared order, of the
   * indexed copies that check out. Undefined when none does.
   */
  private async survivor(id: Buffer, candidates: ReadonlySet<string>): Promise<string | undefined> {
    const copies = this.repo.index.locations(id).map((loc) => ({ loc, hex: this.repo.index.packId(loc.packIndex).toString('hex') }));
    copies.sort((a, b) => Number(candidates.has(a.hex)) - Number(candidates.has(b.hex)) || (a.hex < b.hex ? -1 : a.hex > b.hex ? 1 : 0));
    for (const { loc, hex } of copies) {
      const h = await this.header(hex);
      if (typeof h === 'string') continue;
      const e = h.entries.get(id.toString('hex'));
      // The index entry counts only when the pack's own header agrees with it.
      if (!e || e.offset !== loc.offset || e.length !== loc.length) continue;
      if (await this.authentic(hex, e)) return hex;
    }
    return undefined;
  }

  /** Whether the blob's bytes at the header's place open and match its id. */
  private authentic(hex: string, e: PackEntry): Promise<boolean> {
    const k = `${hex}/${e.id.toString('hex')}`;
    let p = this.verified.get(k);
    if (!p) {
      const key = keys.pack(hex);
      p = this.repo.store.get(key, { offset: e.offset, length: e.length }).then(
        (sealed) => {
          try {
            this.repo.openBlob(e.id, sealed, key, e.type, e.rawLength);
            return true;
          } catch {
            return false;
          }
        },
        (err: unknown) => {
          if (isLifeboatError(err, 'NOT_FOUND') || isLifeboatError(err, 'CORRUPT')) return false;
          throw err;
        },
      );
      this.verified.set(k, p);
    }
    return p;
  }

  header(hex: string): Promise<Header> {
    let p = this.headers.get(hex);
    if (!p) this.headers.set(hex, (p = readHeader(this.repo, hex)));
    return p;
  }
}

function spare(plan: SweepPlan, hex: string, why: string): void {
  if (plan.doomed.delete(hex)) plan.spared.set(hex, why);
}

/** A pack's blob list from its own header (one or two ranged reads of its tail). */
async function readHeader(repo: Repository, hex: string): Promise<Header> {
  const key = keys.pack(hex);
  try {
    const info = await repo.store.stat(key);
    if (!info) return 'missing';
    let tail = await repo.store.get(key, { offset: Math.max(0, info.size - TAIL_GUESS), length: Math.min(info.size, TAIL_GUESS) });
    if (tail.length < TRAILER_LEN) return 'damaged';
    const need = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength).readUInt32LE(tail.length - TRAILER_LEN) + TRAILER_LEN;
    if (need > tail.length && need <= info.size) tail = await repo.store.get(key, { offset: info.size - need, length: need });
    const entries = new Map<string, PackEntry>();
    for (const e of parsePackHeader(repo.key, tail, info.size, key)) entries.set(e.id.toString('hex'), e);
    return { entries, size: info.size };
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND')) return 'missing';
    if (isLifeboatError(err, 'CORRUPT')) return 'damaged';
    throw err;
  }
}

/**
 * Rewrites every index file that names a doomed pack, or a pack no longer in data/,
 * without it; the new file first, the old one after. index/ is listed before data/,
 * so the packs of an index file written meanwhile are in the data listing.
 */
export async function dropFromIndexFiles(repo: Repository, doomed: ReadonlySet<string>): Promise<number> {
  const files = await listAll(repo.store, 'index/');
  const present = new Set<string>();
  for await (const o of repo.store.list('data/')) present.add(packIdFromKey(o.key));
  let rewritten = 0;
  for (const f of files) {
    let packs;
    try {
      packs = await repo.readIndexFile(f.key);
    } catch (err) {
      if (isLifeboatError(err, 'NOT_FOUND')) continue;
      throw err;
    }
    const kept = packs.filter((p) => {
      const hex = p.packId.toString('hex');
      return !doomed.has(hex) && present.has(hex);
    });
    if (kept.length === packs.length) continue;
    await repo.writeIndex(kept);
    await repo.store.delete(f.key);
    rewritten++;
  }
  return rewritten;
}
