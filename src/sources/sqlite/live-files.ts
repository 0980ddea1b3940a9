/**
 * The descriptors Lifeboat reads a live SQLite database through: the database file,
 * its `-wal` and its `-shm`, each opened once and closed only after every SQLite
 * connection of this process on the database is closed.
 *
 * Why: POSIX record locks belong to the process, and closing *any* descriptor of a
 * file drops every lock the process holds on it (sqlite.org, "How To Corrupt An SQLite
 * Database", 2.2). SQLite keeps a shared lock on the database file while a connection
 * is open; an application closing its last connection checkpoints and deletes the WAL
 * when it can take an exclusive lock, that is, when no other connection holds one.
 * A replicator that opened and closed the database file to read a page silently lost
 * its lock, and the application's next restart deleted the WAL under it. Closing a
 * descriptor of `-shm` would drop SQLite's read marks, which is worse. Nothing here
 * ever closes a descriptor before the caller has closed its connections.
 *
 * The descriptors are also how a replaced file is noticed: `replaced()` compares each
 * with what its path names now.
 */
import { closeSync, constants, fstatSync, openSync, read, readSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { errno } from '../../errors.js';
import { WAL_INDEX_HEADER_BYTES, parseWalIndexHeader, type WalIndexHeader } from './wal-index.js';
import { WalFile } from './wal.js';

export class LiveFiles {
  private closed = false;

  private constructor(
    readonly file: string,
    /** Read-only descriptor of the database file. */
    readonly db: number,
    readonly wal: WalFile,
    /** Undefined for a database not in WAL mode (or in exclusive locking mode). */
    private readonly shm: number | undefined,
  ) {}

  /**
   * Opens the descriptors. Call it after a connection of ours is open, so that in WAL
   * mode SQLite has created the `-wal` and `-shm` files; close it after every connection.
   */
  static async open(file: string): Promise<LiveFiles> {
    const flags = constants.O_RDONLY | constants.O_NOFOLLOW;
    const db = openSync(file, flags);
    let shm: number | undefined;
    try {
      shm = openSync(`${file}-shm`, flags);
    } catch (err) {
      if (errno(err) !== 'ENOENT') {
        closeSync(db);
        throw err;
      }
    }
    const wal = await WalFile.open(`${file}-wal`);
    return new LiveFiles(file, db, wal, shm);
  }

  get hasWalIndex(): boolean {
    return this.shm !== undefined;
  }

  /**
   * The wal-index header as SQLite last published it, or undefined when there is none
   * (not WAL mode) or it is being written right now (read again a moment later).
   */
  walIndex(): WalIndexHeader | undefined {
    if (this.shm === undefined) return undefined;
    const buf = Buffer.alloc(WAL_INDEX_HEADER_BYTES);
    // A plain read of the shared-memory file sees what SQLite's mapping holds (one page cache).
    for (let attempt = 0; attempt < 100; attempt++) {
      const n = readSync(this.shm, buf, 0, buf.length, 0);
      if (n < buf.length) return undefined;
      const h = parseWalIndexHeader(buf);
      if (h) return h;
    }
    return undefined;
  }

  /**
   * Which of the three files is no longer the one its path names (deleted, or replaced
   * by a copy, a restore or a new WAL), or undefined when all three still are.
   */
  replaced(): 'database' | 'wal' | 'shm' | undefined {
    const same = (fd: number | undefined, path: string): boolean => {
      if (fd === undefined) return true;
      try {
        const a = fstatSync(fd);
        const b = statSync(path);
        return a.ino === b.ino && a.dev === b.dev;
      } catch (err) {
        if (errno(err) === 'ENOENT') return false;
        throw err;
      }
    };
    if (!same(this.db, this.file)) return 'database';
    if (!same(this.wal.fd, `${this.file}-wal`)) return 'wal';
    if (!same(this.shm, `${this.file}-shm`)) return 'shm';
    return undefined;
  }

  /** Fills `buf` from the database file at `position`; returns the bytes read (short at its end). */
  async readDb(buf: Buffer, position: number): Promise<number> {
    return (await readAsync(this.db, buf, 0, buf.length, position)).bytesRead;
  }

  dbSize(): number {
    return fstatSync(this.db).size;
  }

  /** Only after every connection of this process on the database is closed (see above). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.wal.close();
    if (this.shm !== undefined) closeSync(this.shm);
    closeSync(this.db);
  }
}

const readAsync = promisify(read);
