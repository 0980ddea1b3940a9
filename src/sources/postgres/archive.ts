/**
 * WAL archiving for archive_command and restore_command. archive-push validates a
 * segment against its name and the cluster before sealing it into logs/; pushing the
 * same file twice succeeds, different content under an archived name fails loudly.
 * archive-get writes the file atomically where PostgreSQL asked for it.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, errno } from '../../errors.js';
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import type { Store } from '../../storage/store.js';
import { parseWalName, validateSegment } from './wal.js';
import { logSource, streamSource, timelineDir } from './names.js';

export interface ClusterIdentity {
  systemId: string;
  pgMajor: number;
}

/** Where a base backup records the cluster's identity: one small object per push to read. */
const IDENTITY = ['identity', 'cluster.json'] as const;

export async function recordIdentity(repo: Repository, name: string, id: ClusterIdentity): Promise<void> {
  const data = Buffer.from(JSON.stringify(id));
  // Unchanged (the usual case) is not rewritten: an append-only client may not replace it.
  const stored = await repo.getLog(logSource(name), IDENTITY[0], IDENTITY[1]);
  if (stored?.equals(data)) return;
  await repo.putLog(logSource(name), IDENTITY[0], IDENTITY[1], data, { replace: true });
}

/** The identity to check segments against (none before the first base backup). */
export async function knownCluster(repo: Repository, name: string): Promise<Partial<ClusterIdentity>> {
  const raw = await repo.getLog(logSource(name), IDENTITY[0], IDENTITY[1]);
  return raw ? (JSON.parse(raw.toString('utf8')) as ClusterIdentity) : {};
}

export async function archivePush(repo: Repository, name: string, file: string): Promise<'stored' | 'exists'> {
  const source = logSource(name);
  const wal = parseWalName(path.basename(file));
  let data: Buffer;
  try {
    data = await fs.readFile(file);
  } catch (err) {
    throw new LifeboatError('NOT_FOUND', `cannot read ${file}: ${errno(err) ?? String(err)}`, {
      hint: 'archive_command must pass %p (run from the data directory)',
    });
  }
  if (wal.kind === 'segment') validateSegment(wal, data, await knownCluster(repo, name));
  try {
    return await repo.putLog(source, timelineDir(wal.timeline), wal.name, data);
  } catch (err) {
    if (err instanceof LifeboatError && err.code === 'ALREADY_EXISTS') {
      throw new LifeboatError('CORRUPT', `refusing ${wal.name}: already archived for ${name} with different content`, {
        hint: err.hint ?? '',
      });
    }
    throw err;
  }
}

/**
 * Returns false when the file is not in the archive (PostgreSQL asks for files that
 * may not exist). Looks in archive_command's archive, then in streamed WAL, then at
 * the streamed partial segment: the newest WAL there is, which is what keeps the
 * data-loss window of a streamed cluster at about a second.
 */
/**
 * Whether archiveGet could find `file` at all, from the object names alone (they are
 * not secret: docs/format.md): a file that is not there (the history files recovery
 * asks for at its end, the segment past the archive's end) is answered without
 * deriving the key. A name that is there is still read and authenticated by archiveGet.
 */
export async function archiveHas(store: Pick<Store, 'stat'>, name: string, file: string): Promise<boolean> {
  // Every place is asked: one whose answer failed (a destination down) may not be the
  // one that holds it; "not there" only when none failed.
  let failed: unknown;
  for (const [source, tl, object] of placesOf(name, file)) {
    try {
      if (await store.stat(keys.log(source, tl, object), { sure: true })) return true;
    } catch (err) {
      failed ??= err;
    }
  }
  if (failed !== undefined) throw failed;
  return false;
}

/**
 * Where WAL file `file` of source `name` may be stored, in the order to look: archived;
 * for a segment, then streamed whole, its streamed partial, and the streamed whole once
 * more, since `pg stream` stores it and then deletes its partial, possibly between the two
 * looks before (src/sources/postgres/stream.ts). Missing both would tell PostgreSQL the
 * segment is not archived, and a restore to the latest moment would end before it.
 */
function placesOf(name: string, file: string): Array<[source: string, timeline: string, object: string]> {
  const wal = parseWalName(file);
  const tl = timelineDir(wal.timeline);
  const places: Array<[string, string, string]> = [[logSource(name), tl, wal.name]];
  if (wal.kind === 'segment') places.push([streamSource(name), tl, wal.name], [streamSource(name), tl, `${wal.name}.partial`], [streamSource(name), tl, wal.name]);
  return places;
}

export async function archiveGet(repo: Repository, name: string, file: string, dest: string): Promise<boolean> {
  let data: Buffer | undefined;
  for (const [source, tl, object] of placesOf(name, file)) if ((data = await repo.getLog(source, tl, object))) break;
  if (!data) return false;
  const tmp = `${dest}.lifeboat-${process.pid}`;
  await fs.writeFile(tmp, data);
  await fs.rename(tmp, dest);
  return true;
}

/**
 * Batching for archive_command. PostgreSQL calls it once per segment, in order, and
 * each call pays for a process and the key derivation. So a push also ships the
 * next segments already marked `.ready` in pg_wal/archive_status, and leaves a
 * marker for each in a spool inside the data directory; when PostgreSQL then asks
 * for one of them, the marker answers without opening the repository. A marker is
 * written only after its segment is stored; a lost marker just means one more
 * (idempotent) push. Only the postgres user can write the spool (data directory 0700).
 */
export const PUSH_SPOOL = 'lifeboat-archive-spool';
export const PUSH_BATCH = 8;

/** The spool for a WAL path given as %p (…/pg_wal/NAME); undefined when not in a pg_wal. */
export function pushSpool(walPath: string): string | undefined {
  const dir = path.dirname(path.resolve(walPath));
  return path.basename(dir) === 'pg_wal' ? path.join(path.dirname(dir), PUSH_SPOOL) : undefined;
}

/** What a marker says: which repository and source it was stored in. */
export function markerText(repoId: string, name: string): string {
  return `${repoId} ${name}\n`;
}

/**
 * True (and the marker consumed) when this segment was already shipped by a batch
 * to this repository and source. A marker for another target (archive_command was
 * changed since) is dropped and the segment pushed as usual.
 */
export async function takePushMarker(walPath: string, expect: string): Promise<boolean> {
  const spool = pushSpool(walPath);
  if (!spool) return false;
  const marker = path.join(spool, `${path.basename(walPath)}.pushed`);
  let text: string;
  try {
    text = await fs.readFile(marker, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
  await fs.unlink(marker);
  return text === expect;
}

/** Pushes up to `batch - 1` segments that follow `walPath` and are ready; returns how many. */
export async function pushAhead(repo: Repository, name: string, walPath: string, batch = PUSH_BATCH): Promise<number> {
  const spool = pushSpool(walPath);
  if (!spool) return 0;
  const walDir = path.dirname(path.resolve(walPath));
  const current = path.basename(walPath);
  let ready: string[];
  try {
    ready = (await fs.readdir(path.join(walDir, 'archive_status')))
      .filter((f) => f.endsWith('.ready'))
      .map((f) => f.slice(0, -'.ready'.length))
      .filter((f) => /^[0-9A-F]{24}$/.test(f) && f > current)
      .sort()
      .slice(0, batch - 1);
  } catch {
    return 0;
  }
  await fs.mkdir(spool, { recursive: true, mode: 0o700 });
  let n = 0;
  for (const f of ready) {
    try {
      await archivePush(repo, name, path.join(walDir, f));
    } catch (err) {
      // Leave it to PostgreSQL's own call for this segment, which reports the error.
      if (err instanceof LifeboatError) break;
      throw err;
    }
    await fs.writeFile(path.join(spool, `${f}.pushed`), markerText(repo.config.id, name));
    n++;
  }
  return n;
}
