/**
 * Opening a SQLite database the way a backup tool must: never creating one by
 * mistake, turning SQLite's error codes into Lifeboat's (locked, missing, not a
 * database), and reading a consistent image of the file while writers keep writing.
 *
 * The image is read the way Litestream reads its snapshots, not with the online
 * backup API: a read transaction pins a snapshot (while it is open SQLite neither
 * restarts the WAL nor checkpoints past it), the WAL frames of the current cycle are
 * read into a page map, and the database file is read with those pages laid over it.
 * The backup API would need a temporary copy of the whole file and restarts its copy
 * whenever another connection writes; this costs one pass over the file and never
 * starts again. docs/sqlite.md has the argument for why the result is consistent.
 */
import { statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { LifeboatError, errno } from '../../errors.js';
import type { LiveFiles } from './live-files.js';
import { cycleStart, frameInfo, FRAME_HEADER_SIZE, type Checksum, type WalCursor, type WalHeader } from './wal.js';

export type Connection = Database.Database;

export interface OpenOptions {
  readonly?: boolean;
  /** How long a statement waits for another connection's lock before failing (ms). */
  busyTimeoutMs?: number;
}

/** SQLite's result codes as better-sqlite3 reports them, mapped to ours. */
export function sqliteError(err: unknown, file: string, doing: string): LifeboatError {
  const code = errno(err) ?? '';
  const detail = err instanceof Error ? err.message : String(err);
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new LifeboatError('SOURCE_UNAVAILABLE', `${file} is locked by another connection (${doing})`, {
      hint: 'retry when the writer is done; a connection in locking_mode=EXCLUSIVE must close first',
      cause: err,
    });
  }
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new LifeboatError('SOURCE_CORRUPT', `${file} is not a usable SQLite database: ${detail}`, {
      hint: 'check the path; a damaged file can still be restored from the repository',
      cause: err,
    });
  }
  if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_PERM') || code.startsWith('SQLITE_READONLY')) {
    return new LifeboatError('PERMISSION', `cannot open ${file}: ${detail}`, {
      hint: 'the database, its directory and its -wal/-shm files must be readable and writable by this user',
      cause: err,
    });
  }
  if (err instanceof LifeboatError) return err;
  return new LifeboatError('FAILED', `${file}: ${doing} failed: ${detail}`, { cause: err });
}

/** Opens an existing database; never creates one (a typo must not become an empty backup). */
export function openDatabase(file: string, opts: OpenOptions = {}): Connection {
  try {
    if (!statSync(file).isFile()) throw new LifeboatError('USAGE', `${file} is not a file`, { hint: 'give the path of the database file itself' });
  } catch (err) {
    if (errno(err) === 'ENOENT') {
      throw new LifeboatError('NOT_FOUND', `no database file ${file}`, { hint: 'check the path (it is not created)' });
    }
    if (errno(err) === 'EACCES') throw new LifeboatError('PERMISSION', `cannot read ${file}`, { hint: 'run as a user who can read the database and write its directory' });
    throw err;
  }
  let db: Connection | undefined;
  try {
    db = new Database(file, { fileMustExist: true, readonly: opts.readonly ?? false });
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    // Reading the schema is what tells a database from any other file.
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return db;
  } catch (err) {
    db?.close();
    throw sqliteError(err, file, 'open');
  }
}

export function journalMode(db: Connection): string {
  return String(db.pragma('journal_mode', { simple: true })).toLowerCase();
}

/**
 * Switches a database to WAL, which continuous replication needs. Only on request:
 * WAL is persistent, needs every connection on the same host, and older SQLite
 * versions (before 3.7) cannot open the file afterwards.
 */
export function ensureWal(db: Connection, file: string, enable: boolean): void {
  const mode = journalMode(db);
  if (mode === 'wal') return;
  if (!enable) {
    throw new LifeboatError('USAGE', `${file} uses the ${mode} journal, and continuous replication needs WAL`, {
      hint: 'rerun with --enable-wal to switch it to WAL (persistent), or use `lifeboat sqlite backup` for snapshots only',
    });
  }
  try {
    if (String(db.pragma('journal_mode = WAL', { simple: true })).toLowerCase() !== 'wal') {
      throw new LifeboatError('FAILED', `${file} could not be switched to WAL`, {
        hint: 'an in-memory or exclusive-locking database cannot use WAL',
      });
    }
  } catch (err) {
    throw sqliteError(err, file, 'switching to WAL');
  }
}

/** Starts a read transaction that pins the current snapshot until `endRead`. */
export function beginRead(db: Connection, file: string): void {
  try {
    db.exec('BEGIN');
    db.prepare('SELECT count(*) FROM sqlite_master').get();
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw sqliteError(err, file, 'starting a read transaction');
  }
}

export function endRead(db: Connection): void {
  if (db.inTransaction) db.exec('COMMIT');
}

/** Where a consistent image stands: the WAL cycle and the frames of it the image includes. */
export interface ImagePoint {
  /** The WAL cycle, by its salts as the wal-index publishes them; undefined outside WAL mode. */
  cycle: { salt1: number; salt2: number } | undefined;
  /** That cycle's WAL header, once written (a restarted WAL has none until its first commit). */
  wal: WalHeader | undefined;
  /** Frames of the cycle in the image and the checksum chain there ([0, 0] while `wal` is undefined). */
  cursor: WalCursor;
  pageSize: number;
  pages: number;
}

/**
 * The consistent page image of the database while a connection of the caller's holds a
 * read transaction (begun before, ended after the image is consumed): the database
 * file with the frames SQLite has committed in the current WAL cycle laid over it, as
 * of the newest commit the wal-index publishes (at or after the read transaction's own
 * snapshot: checkpoints cannot copy frames past that snapshot, so pages no frame of
 * the cycle touches cannot change while the file is read). Frames past the published
 * end, left by a writer that died inside COMMIT, are never read. The overlay holds one
 * copy per page; the WAL is a few megabytes under Lifeboat's checkpointing.
 */
export async function readImagePoint(files: LiveFiles): Promise<Image> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const idx = files.walIndex();
    if (!idx) {
      if (files.hasWalIndex) {
        await sleep(1); // being written, or a first connection is initialising it
        continue;
      }
      const head = await readHeader(files);
      return { point: { cycle: undefined, wal: undefined, cursor: { frame: 0, checksum: [0, 0] }, ...head }, overlay: new Map() };
    }
    const image = await readImageAt(files, { salt1: idx.salt1, salt2: idx.salt2, frame: idx.mxFrame, checksum: idx.frameChecksum });
    if (image) return image;
  }
  throw new LifeboatError('SOURCE_UNAVAILABLE', `${files.file}: the WAL kept restarting while it was read`, {
    hint: 'a connection is checkpointing with RESTART/TRUNCATE in a tight loop; retry',
  });
}

/**
 * Starts a read transaction whose snapshot is exactly the image it returns, so what
 * the transaction reads (a graph's counts, backup.ts) is what the image stores.
 * readImagePoint's image may be newer than the transaction's snapshot (a commit in
 * between); here the wal-index is read before and after the transaction starts, and
 * when both say the same position no commit came between: the snapshot is that
 * position, and the image is taken at it. Busy writers can keep the two apart: after
 * `tries` it gives up, resolving to undefined with a read transaction open at some
 * snapshot (the caller then takes readImagePoint's image and says it is not exact).
 * Outside WAL mode the transaction's shared lock holds writers off, so it always matches.
 */
export async function beginReadAtImage(db: Connection, files: LiveFiles, tries = 100): Promise<Image | undefined> {
  for (let attempt = 0; attempt < tries; attempt++) {
    const before = files.walIndex();
    if (!before && files.hasWalIndex) {
      await sleep(1); // being written, or a first connection is initialising it
      continue;
    }
    beginRead(db, files.file);
    if (!before) return readImagePoint(files);
    const after = files.walIndex();
    if (after && after.salt1 === before.salt1 && after.salt2 === before.salt2 && after.mxFrame === before.mxFrame && sameChecksum(after.frameChecksum, before.frameChecksum)) {
      const image = await readImageAt(files, { salt1: before.salt1, salt2: before.salt2, frame: before.mxFrame, checksum: before.frameChecksum });
      if (image) return image;
    }
    endRead(db);
    await new Promise((resolve) => setImmediate(resolve));
  }
  beginRead(db, files.file);
  return undefined;
}

export interface Image {
  point: ImagePoint;
  overlay: Map<number, Buffer>;
}

/** A committed position in a WAL cycle: frames of the cycle named by its salts, and the checksum chain there. */
export interface CyclePosition {
  salt1: number;
  salt2: number;
  frame: number;
  /** Not checked at frame 0 (a restarted WAL has no header, so no chain start, until its first commit). */
  checksum: Checksum;
}

/**
 * The image as of `at`, under a read transaction whose snapshot is `at` or later (see
 * readImagePoint), or undefined when the WAL no longer holds `at`: it restarted, or
 * its frames are not the ones committed there (the caller tries again).
 */
export async function readImageAt(files: LiveFiles, at: CyclePosition): Promise<Image | undefined> {
  const hdr = await files.wal.header();
  const current = hdr !== undefined && hdr.salt1 === at.salt1 && hdr.salt2 === at.salt2;
  const cycle = { salt1: at.salt1, salt2: at.salt2 };
  if (at.frame === 0) {
    const head = await readHeader(files);
    const cursor: WalCursor = current ? cycleStart(hdr) : { frame: 0, checksum: [0, 0] };
    return { point: { cycle, wal: current ? hdr : undefined, cursor, ...head }, overlay: new Map() };
  }
  if (!current) return undefined;
  const overlay = new Map<number, Buffer>();
  const frameSize = FRAME_HEADER_SIZE + hdr.pageSize;
  let cursor: WalCursor = cycleStart(hdr);
  let pages = 0;
  for (;;) {
    const got = await files.wal.readCommitted(hdr, cursor, 16 << 20, at.frame);
    if (got.commits.length === 0) break;
    for (let off = 0; off < got.data.length; off += frameSize) {
      const { pgno } = frameInfo(got.data, off);
      overlay.set(pgno, Buffer.from(got.data.subarray(off + FRAME_HEADER_SIZE, off + frameSize)));
    }
    pages = (got.commits[got.commits.length - 1] as { dbPages: number }).dbPages;
    cursor = got.end;
  }
  // Short of the position, or another chain: the WAL restarted while it was read.
  if (cursor.frame !== at.frame || !sameChecksum(cursor.checksum, at.checksum)) return undefined;
  return { point: { cycle, wal: hdr, cursor, pageSize: hdr.pageSize, pages }, overlay };
}

export function sameChecksum(a: Checksum, b: Checksum): boolean {
  return a[0] === b[0] && a[1] === b[1];
}

/** Page size and page count from the database header (the file size when the header's count is stale). */
async function readHeader(files: LiveFiles): Promise<{ pageSize: number; pages: number }> {
  const buf = Buffer.alloc(100);
  const bytesRead = await files.readDb(buf, 0);
  const size = files.dbSize();
  if (bytesRead === 0) return { pageSize: 4096, pages: 0 };
  if (bytesRead < 100 || buf.toString('latin1', 0, 16) !== 'SQLite format 3\u0000') {
    throw new LifeboatError('SOURCE_CORRUPT', `${files.file} does not start with a SQLite header`, {
      hint: 'check the path; a damaged file can still be restored from the repository',
    });
  }
  const raw = buf.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  const inHeader = buf.readUInt32BE(28);
  const valid = inHeader > 0 && buf.readUInt32BE(24) === buf.readUInt32BE(92);
  return { pageSize, pages: valid ? inHeader : Math.floor(size / pageSize) };
}

/**
 * Yields the image page run by page run: the database file in 1 MiB reads with the
 * overlay's pages laid over it, `point.pages` pages in all (a page the file does not
 * have yet, beyond its end, can only come from the overlay).
 */
export async function* imagePages(files: LiveFiles, { point, overlay }: Image): AsyncGenerator<Buffer> {
  const { pageSize, pages } = point;
  const perRead = Math.max(1, Math.floor((1 << 20) / pageSize));
  for (let first = 1; first <= pages; first += perRead) {
    const count = Math.min(perRead, pages - first + 1);
    const buf = Buffer.alloc(count * pageSize);
    await files.readDb(buf, (first - 1) * pageSize);
    for (let i = 0; i < count; i++) {
      const page = overlay.get(first + i);
      if (page) page.copy(buf, i * pageSize);
    }
    yield buf;
  }
}
