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
import { promises as fs, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { LifeboatError, errno } from '../../errors.js';
import { WalFile, cycleStart, frameInfo, sameCycle, FRAME_HEADER_SIZE, type WalCursor, type WalHeader } from './wal.js';

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
  /** Undefined when the WAL was empty (the database file alone is the image). */
  wal: WalHeader | undefined;
  cursor: WalCursor;
  pageSize: number;
  pages: number;
}

/**
 * The consistent page image of `file` while `reader` holds a read transaction (the
 * caller begins it before and ends it after the image is consumed). The WAL frames of
 * the current cycle are kept in memory, one copy per page, so the image stays right
 * even if SQLite restarts the WAL while the file is read; a WAL is a few megabytes
 * under Lifeboat's checkpointing.
 */
export async function readImagePoint(file: string): Promise<{ point: ImagePoint; overlay: Map<number, Buffer> }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const wal = await WalFile.open(`${file}-wal`);
    try {
      const hdr = await wal.header();
      const overlay = new Map<number, Buffer>();
      let cursor: WalCursor = { frame: 0, checksum: [0, 0] };
      let pages = 0;
      if (hdr) {
        cursor = cycleStart(hdr);
        // The pin's snapshot is within what the file holds now; later frames are not needed.
        const limit = await wal.framesInFile(hdr);
        for (;;) {
          const got = await wal.readCommitted(hdr, cursor, 16 << 20, limit);
          if (got.commits.length === 0) break;
          const frameSize = FRAME_HEADER_SIZE + hdr.pageSize;
          for (let off = 0; off < got.data.length; off += frameSize) {
            const { pgno } = frameInfo(got.data, off);
            overlay.set(pgno, Buffer.from(got.data.subarray(off + FRAME_HEADER_SIZE, off + frameSize)));
          }
          pages = (got.commits[got.commits.length - 1] as { dbPages: number }).dbPages;
          cursor = got.end;
        }
        const again = await wal.header();
        // A restart while the frames were read could mix two cycles: read again.
        if (!again || !sameCycle(again, hdr)) continue;
      }
      const head = await readHeader(file);
      if (pages === 0) pages = head.pages;
      return { point: { wal: hdr, cursor, pageSize: hdr?.pageSize ?? head.pageSize, pages }, overlay };
    } finally {
      await wal.close();
    }
  }
  throw new LifeboatError('SOURCE_UNAVAILABLE', `${file}: the WAL kept restarting while it was read`, {
    hint: 'a connection is checkpointing with RESTART/TRUNCATE in a tight loop; retry',
  });
}

/** Page size and page count from the database header (the file size when the header's count is stale). */
async function readHeader(file: string): Promise<{ pageSize: number; pages: number }> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(100);
    const { bytesRead } = await fh.read(buf, 0, 100, 0);
    const size = (await fh.stat()).size;
    if (bytesRead === 0) return { pageSize: 4096, pages: 0 };
    if (bytesRead < 100 || buf.toString('latin1', 0, 16) !== 'SQLite format 3\u0000') {
      throw new LifeboatError('SOURCE_CORRUPT', `${file} does not start with a SQLite header`, {
        hint: 'check the path; a damaged file can still be restored from the repository',
      });
    }
    const raw = buf.readUInt16BE(16);
    const pageSize = raw === 1 ? 65536 : raw;
    const inHeader = buf.readUInt32BE(28);
    const valid = inHeader > 0 && buf.readUInt32BE(24) === buf.readUInt32BE(92);
    return { pageSize, pages: valid ? inHeader : Math.floor(size / pageSize) };
  }
  finally {
    await fh.close();
  }
}

/**
 * Yields the image page run by page run: the database file in 1 MiB reads with the
 * overlay's pages laid over it, `point.pages` pages in all (a page the file does not
 * have yet, beyond its end, can only come from the overlay).
 */
export async function* imagePages(file: string, point: ImagePoint, overlay: Map<number, Buffer>): AsyncGenerator<Buffer> {
  const { pageSize, pages } = point;
  const perRead = Math.max(1, Math.floor((1 << 20) / pageSize));
  const fh = await fs.open(file, 'r');
  try {
    for (let first = 1; first <= pages; first += perRead) {
      const count = Math.min(perRead, pages - first + 1);
      const buf = Buffer.alloc(count * pageSize);
      await fh.read(buf, 0, buf.length, (first - 1) * pageSize);
      for (let i = 0; i < count; i++) {
        const page = overlay.get(first + i);
        if (page) page.copy(buf, i * pageSize);
      }
      yield buf;
    }
  } finally {
    await fh.close();
  }
}
