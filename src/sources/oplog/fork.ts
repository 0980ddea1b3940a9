/**
 * A restored journal put back in place continues its history instead of repeating it.
 *
 * Every `oplog restore` that writes records (to a file or stdout) stores a restore
 * record: the pieces of history it wrote (generation, from, to), the length of its
 * output and SHA-256 of it. When a shipper starts a new generation (the file was
 * replaced, truncated or rotated), it asks whether the file begins with a whole restore
 * output, byte for byte. If so the new generation is a fork: its first segments carry
 * those pieces (segment.ts `fork`) and it ships from the end of the copy, so a restore
 * writes the history up to the restored moment once, then the records written after
 * it. A file that is still a prefix of a restore output (being copied) ships nothing
 * until it is one or differs. Anything else starts from its first byte as before.
 *
 * Exact identity, not a guess from a few matching records: a new file that merely
 * begins with the same header line as the old one (logrotate) is not a fork, because
 * no restore output is that header alone unless a restore wrote exactly it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import { chainFrom, decodeSegment, validFork, type Fork, type Piece } from './segment.js';
import { generations, type Generation } from './history.js';
import { logSource } from './names.js';

/** Restore records live beside the generations, under this name (never 20 hex digits). */
const RESTORES = 'restores';
/** The newest this many restore records are candidates. */
const CANDIDATES = 16;
const HEAD = 4096;

export interface RestoreRecord {
  v: 1;
  /** When the restore ran (Unix ms). */
  time: number;
  bytes: number;
  /** SHA-256 of the output, and of its first min(4096, bytes) bytes. */
  sha256: string;
  head: string;
  pieces: Piece[];
}

/** Hashes an output as it is written: the whole of it and its first 4 KiB. */
export class OutputHash {
  private readonly all = createHash('sha256');
  private readonly first = createHash('sha256');
  private headLeft = HEAD;
  bytes = 0;

  update(buf: Buffer): void {
    this.all.update(buf);
    if (this.headLeft > 0) {
      const part = buf.subarray(0, this.headLeft);
      this.first.update(part);
      this.headLeft -= part.length;
    }
    this.bytes += buf.length;
  }

  record(pieces: Piece[], time: number): RestoreRecord {
    return { v: 1, time, bytes: this.bytes, sha256: this.all.digest('hex'), head: this.first.digest('hex'), pieces };
  }
}

export async function storeRestoreRecord(repo: Repository, name: string, rec: RestoreRecord): Promise<void> {
  const file = `${rec.time.toString(16).padStart(12, '0')}-${randomBytes(4).toString('hex')}`;
  await repo.putLog(logSource(name), RESTORES, file, Buffer.from(JSON.stringify(rec)));
}

function parseRecord(buf: Buffer): RestoreRecord | undefined {
  try {
    const r = JSON.parse(buf.toString('utf8')) as RestoreRecord;
    const hex = (s: unknown) => typeof s === 'string' && /^[0-9a-f]{64}$/.test(s);
    if (r.v !== 1 || !Number.isSafeInteger(r.time) || !hex(r.sha256) || !hex(r.head)) return undefined;
    return validFork({ bytes: r.bytes, pieces: r.pieces }) ? r : undefined;
  } catch {
    return undefined;
  }
}

async function restoreFiles(repo: Pick<Repository, 'listLogs'>, name: string): Promise<string[]> {
  return (await repo.listLogs(logSource(name))).filter((l) => l.timeline === RESTORES).map((l) => l.file).sort();
}

/** The newest restore records of `name`, newest first (unreadable ones are skipped: they only cost a fork). */
export async function restoreRecords(repo: Repository, name: string): Promise<RestoreRecord[]> {
  const out: RestoreRecord[] = [];
  for (const file of (await restoreFiles(repo, name)).reverse().slice(0, CANDIDATES)) {
    const buf = await repo.getLog(logSource(name), RESTORES, file);
    const r = buf && parseRecord(buf);
    if (r) out.push(r);
  }
  return out;
}

/** Removes restore records older than `cutoff` (all of them without one); returns how many. */
export async function trimRestoreRecords(repo: Repository, name: string, cutoff: number | undefined, dryRun: boolean): Promise<number> {
  let removed = 0;
  for (const file of await restoreFiles(repo, name)) {
    const time = parseInt(file.slice(0, 12), 16);
    if (cutoff !== undefined && !(time < cutoff)) continue;
    if (!dryRun) await repo.store.delete(keys.log(logSource(name), RESTORES, file));
    removed++;
  }
  return removed;
}

export type ReadAt = (position: number, length: number) => Promise<Buffer>;

/** A candidate being compared with a file that is still shorter than it. */
interface Pending {
  rec: RestoreRecord;
  /** Bytes of the file already found equal to the restore output. */
  verified: number;
}

/**
 * Decides what a file that starts a new generation is, against the restore records
 * (compared lazily, across polls, as a copy grows): `{ fork }` when it begins with a
 * whole restore output, `wait` while it is a proper prefix of one, `none` otherwise.
 */
export class ForkCheck {
  private pending: Pending[] | undefined;
  private gens: Map<string, Generation> | undefined;

  constructor(
    private readonly repo: Repository,
    private readonly name: string,
  ) {}

  async decide(read: ReadAt, size: number): Promise<{ fork: Fork } | 'wait' | 'none'> {
    this.pending ??= (await restoreRecords(this.repo, this.name)).map((rec) => ({ rec, verified: 0 }));
    let best: Pending | undefined;
    const still: Pending[] = [];
    // The file's first n bytes hashed once per decision, whatever number of candidates share n.
    const hashes = new Map<number, Promise<string>>();
    const prefix = (n: number) => hashes.get(n) ?? (hashes.set(n, hashOf(read, n)), hashes.get(n) as Promise<string>);
    for (const p of this.pending) {
      const { rec } = p;
      if (best && rec.bytes <= best.rec.bytes) continue;
      if (size >= rec.bytes) {
        if ((await prefix(Math.min(HEAD, rec.bytes))) === rec.head && (await prefix(rec.bytes)) === rec.sha256) best = p;
        continue;
      }
      // Shorter than the output: a copy in progress only while every byte so far is the output's.
      if (size >= HEAD && (await prefix(HEAD)) !== rec.head) continue;
      if (await this.equalToHistory(rec.pieces, read, p.verified, size)) {
        p.verified = size;
        still.push(p);
      }
    }
    // The longest whole copy wins; a longer copy still in progress is waited for.
    const longer = still.filter((p) => !best || p.rec.bytes > best.rec.bytes);
    if (longer.length > 0) {
      this.pending = best ? [best, ...longer] : longer;
      return 'wait';
    }
    this.pending = [];
    return best ? { fork: { bytes: best.rec.bytes, pieces: best.rec.pieces } } : 'none';
  }

  /** Whether bytes [from, to) of the file equal those of the history pieces (one stored segment at a time). */
  private async equalToHistory(pieces: readonly Piece[], read: ReadAt, from: number, to: number): Promise<boolean> {
    if (from >= to) return true;
    this.gens ??= new Map((await generations(this.repo, this.name)).map((g) => [g.id, g]));
    let base = 0; // where the piece starts in the output
    for (const [id, pFrom, pTo] of pieces) {
      const len = pTo - pFrom;
      if (base + len <= from) {
        base += len;
        continue;
      }
      if (base >= to) break;
      const gen = this.gens.get(id);
      if (!gen) return false;
      let at = pFrom + Math.max(0, from - base);
      const until = pFrom + Math.min(len, to - base);
      for (const n of chainFrom(at, gen.names).chain) {
        if (at >= until) break;
        const buf = await this.repo.getLog(logSource(this.name), id, n.file);
        if (!buf) return false;
        const { meta, data } = decodeSegment(buf, `${id}/${n.file}`);
        const end = Math.min(meta.end, until);
        const stored = data.subarray(at - meta.start, end - meta.start);
        if (!stored.equals(await read(base + (at - pFrom), stored.length))) return false;
        at = end;
      }
      if (at < until) return false;
      base += len;
    }
    return true;
  }
}

async function hashOf(read: ReadAt, length: number): Promise<string> {
  const h = createHash('sha256');
  for (let at = 0; at < length; ) {
    const buf = await read(at, Math.min(8 << 20, length - at));
    if (buf.length === 0) break;
    h.update(buf);
    at += buf.length;
  }
  return h.digest('hex');
}
