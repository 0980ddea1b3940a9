/**
 * The snapshot browser behind the API: one directory of a snapshot at a time
 * (`lifeboat ls SNAP --depth 1 --limit N -- PATH`), and one file streamed out of it
 * (`lifeboat dump SNAP -- PATH`), each in a job child like every other repository
 * read (reads.ts), so the daemon never holds a repository key itself.
 *
 * Bounded everywhere: a listing stops at MAX_ENTRIES, a download refuses a file past
 * MAX_DOWNLOAD_BYTES before it starts and never passes on more bytes than the tree
 * announced, at most MAX_DOWNLOADS children stream at once (429 beyond), and the bytes
 * flow with back-pressure from the child's pipe to the socket (a slow client holds the
 * child, not the daemon's memory). A path is checked before any child starts: absolute,
 * no `.` or `..` component, no NUL or other control character.
 */
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { LifeboatConfig } from '../config/config.js';
import { LifeboatError } from '../errors.js';
import { runLifeboat, type JobOutcome } from './job-child.js';
import { requireRepository } from './jobs.js';
import { RepositoryReads } from './reads.js';

/**
 * Entries one listing returns. 2000 rows is more than a person scrolls through in a
 * browser, and the child's result stays far below the job protocol's 16 MiB event
 * (about 300 bytes an entry); a larger directory says `truncated`.
 */
export const MAX_ENTRIES = 2000;
/**
 * The largest file the API streams: a download is for the one file someone lost,
 * not for a database image; beyond 1 GiB a restore (to a place below the restore
 * roots) is the better tool, and one stuck browser cannot hold a child for hours.
 */
export const MAX_DOWNLOAD_BYTES = 1024 ** 3;
/** Downloads streaming at once, daemon-wide: each is a child process holding a repository key. */
export const MAX_DOWNLOADS = 4;
/** How long an abandoned download's child has after SIGTERM before SIGKILL. */
const KILL_AFTER_MS = 5_000;
/** The longest path accepted (PATH_MAX on Linux). */
const MAX_PATH_BYTES = 4096;

/** Codes of a child that are about the request (its snapshot or path) and keep their HTTP status. */
const REQUEST_CODES = new Set(['USAGE', 'NOT_FOUND']);

export interface BrowseEntry {
  name: string;
  /** Absolute path in the snapshot. */
  path: string;
  type: string;
  /** Bytes, for a file. */
  size: number | null;
  /** Permission bits, octal text ("0644"). */
  mode: string;
  mtime: string | null;
  /** A symlink's target. */
  target: string | null;
}

export interface BrowseListing {
  repository: string;
  snapshot: string;
  path: string;
  /** What `path` is: a directory lists its entries, a file has none. */
  type: string;
  size: number | null;
  entries: BrowseEntry[];
  /** More than MAX_ENTRIES entries: the first ones in name order are listed. */
  truncated: boolean;
}

export interface Download {
  /** The file's name (its last path component), to be made safe for a header by the caller. */
  name: string;
  size: number;
  /** The file's bytes; fails (so the response is cut, never wrong) if the child fails or sends other than `size` bytes. */
  stream: Readable;
  /** Stops the child (the client went away). */
  abort(): void;
}

/** A snapshot id or a unique prefix of one (hex); "latest" is no id here: a repository holds many sources. */
export function checkSnapshotId(id: string): string {
  if (!/^[0-9a-f]{4,64}$/.test(id)) throw new LifeboatError('USAGE', `"${id.slice(0, 80)}" is not a snapshot id`, { hint: 'give the id (or 4 or more of its first hex digits), as GET /api/v1/backups lists it' });
  return id;
}

/** A path in a snapshot as the API accepts it; returns it without a trailing slash. */
export function checkSnapshotPath(p: string | undefined): string {
  const value = p === undefined || p === '' ? '/' : p;
  const hint = 'give an absolute path as the tree listing names it, e.g. /home/alice/notes.txt';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new LifeboatError('USAGE', 'a snapshot path must not contain NUL or other control characters', { hint });
  if (Buffer.byteLength(value) > MAX_PATH_BYTES) throw new LifeboatError('USAGE', `a snapshot path is at most ${MAX_PATH_BYTES} bytes`, { hint });
  if (!value.startsWith('/')) throw new LifeboatError('USAGE', `the snapshot path ${JSON.stringify(value)} is not absolute`, { hint });
  const parts = value.split('/').filter(Boolean);
  if (parts.some((x) => x === '.' || x === '..')) throw new LifeboatError('USAGE', `the snapshot path ${JSON.stringify(value)} has a "." or ".." component`, { hint });
  return `/${parts.join('/')}`;
}

/** A file name fit for Content-Disposition: the quoted ASCII fallback and the RFC 5987 UTF-8 form. */
export function contentDisposition(name: string): string {
  const base = path.posix.basename(name) || 'download';
  const ascii = base.replace(/[^A-Za-z0-9._ +@=,-]/g, '_').replace(/^\.+/, '_').slice(0, 200) || 'download';
  const utf8 = encodeURIComponent(base.slice(0, 200)).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${utf8}`;
}

/** An entry as `ls --json` prints it: the tree node's metadata with its path. */
interface LsEntry {
  path: string;
  name: string;
  type: string;
  mode: number;
  mtime?: string;
  size?: number;
  target?: string;
}

function entryOf(e: LsEntry): BrowseEntry {
  let mtime: string | null = null;
  try {
    if (e.mtime !== undefined) mtime = new Date(Number(BigInt(e.mtime) / 1_000_000n)).toISOString();
  } catch {
    mtime = null;
  }
  return {
    name: e.name,
    path: e.path,
    type: e.type,
    size: e.type === 'file' ? (e.size ?? 0) : null,
    mode: (e.mode & 0o7777).toString(8).padStart(4, '0'),
    mtime,
    target: e.target ?? null,
  };
}

export class SnapshotBrowser {
  /** Listings are shared and cached like the daemon's other reads (a snapshot never changes; forget drops it). */
  private readonly reads: RepositoryReads;
  private downloads = 0;

  constructor(
    private readonly config: LifeboatConfig,
    private readonly entry?: string,
  ) {
    this.reads = new RepositoryReads(async (repository, args) => {
      const r = await this.run(repository, args);
      if (r.error) throw this.failure(r);
      return r.result;
    });
  }

  private run(repository: string, args: string[], hooks: { stdout?: (s: Readable) => void; onSpawn?: (c: ChildProcess) => void } = {}): Promise<JobOutcome> {
    return runLifeboat(this.config, repository, args, { ...hooks, ...(this.entry !== undefined ? { entry: this.entry } : {}) });
  }

  /** A child's failure: its own code when it is about the request, FAILED (the daemon's) otherwise. */
  private failure(r: JobOutcome): LifeboatError {
    const e = r.error as NonNullable<JobOutcome['error']>;
    return new LifeboatError(REQUEST_CODES.has(e.code) ? e.code : 'FAILED', e.message, e.hint !== undefined ? { hint: e.hint } : {});
  }

  /** The entries of a directory of a snapshot (or the one entry of a file). */
  async list(repositoryName: string, snapshotId: string, p: string | undefined): Promise<BrowseListing> {
    const repository = requireRepository(this.config, repositoryName);
    const snapshot = checkSnapshotId(snapshotId);
    const at = checkSnapshotPath(p);
    // `--` ends the options: a path can never be read as one.
    const raw = (await this.reads.get(repository, ['ls', snapshot, '--depth', '1', '--limit', String(MAX_ENTRIES + 2), '--', at])) as LsEntry[];
    const entries = raw.map(entryOf);
    if (at === '/') {
      return { repository, snapshot, path: '/', type: 'dir', size: null, entries: entries.slice(0, MAX_ENTRIES), truncated: entries.length > MAX_ENTRIES };
    }
    const self = entries[0];
    if (!self) throw new LifeboatError('NOT_FOUND', `${at} is not in snapshot ${snapshot}`, { hint: 'list its parent directory to see what is there' });
    const children = entries.slice(1);
    return { repository, snapshot, path: self.path, type: self.type, size: self.size, entries: children.slice(0, MAX_ENTRIES), truncated: children.length > MAX_ENTRIES };
  }

  /** The file at `p` if it may be downloaded: a regular file of at most 1 GiB. */
  async downloadable(repositoryName: string, snapshotId: string, p: string | undefined): Promise<BrowseListing> {
    const found = await this.list(repositoryName, snapshotId, p);
    if (found.type !== 'file') {
      throw new LifeboatError('USAGE', `${found.path} is a ${found.type === 'dir' ? 'directory' : found.type}, not a file`, { hint: 'download one file; restore a directory (POST /api/v1/restores)' });
    }
    const size = found.size ?? 0;
    if (size > MAX_DOWNLOAD_BYTES) {
      throw new LifeboatError('USAGE', `${found.path} has ${size} bytes, more than a download takes (${MAX_DOWNLOAD_BYTES})`, { hint: 'restore it instead: POST /api/v1/restores to a place below the restore roots' });
    }
    return found;
  }

  /**
   * Starts streaming one file. Resolves once the child has sent its first bytes (or
   * ended), so a snapshot or path that is not there, or a blob missing from the index,
   * is still an error answer rather than a cut download.
   */
  async open(repositoryName: string, snapshotId: string, p: string | undefined): Promise<Download> {
    const found = await this.downloadable(repositoryName, snapshotId, p);
    const size = found.size ?? 0;
    if (this.downloads >= MAX_DOWNLOADS) {
      throw new LifeboatError('BUSY', `${this.downloads} downloads are already running`, { hint: 'retry when one has finished (Retry-After)' });
    }
    this.downloads++;
    let stdout: Readable | undefined;
    let child: ChildProcess | undefined;
    const outcome = this.run(found.repository, ['dump', found.snapshot, '--', found.path], { stdout: (s) => (stdout = s), onSpawn: (c) => (child = c) });
    void outcome.finally(() => this.downloads--);
    const out = stdout as unknown as Readable;
    let passed = 0;
    const failure = this.failure.bind(this);
    // Passes the bytes on, never more than the tree announced; at the end, the child's verdict decides.
    const checker = new Transform({
      transform(chunk: Buffer, _enc, done: TransformCallback) {
        passed += chunk.length;
        if (passed > size) return done(new LifeboatError('CORRUPT', `${found.path}: the snapshot sent more than the ${size} bytes its tree records`));
        done(null, chunk);
      },
      flush(done: TransformCallback) {
        void outcome.then((r) => {
          if (r.error) return done(failure(r));
          if (passed !== size) return done(new LifeboatError('CORRUPT', `${found.path}: ${passed} bytes came, the tree records ${size}`));
          done();
        });
      },
    });
    const first = await Promise.race([
      new Promise<'data' | 'end'>((resolve) => {
        out.once('data', (chunk: Buffer) => {
          out.pause();
          checker.write(chunk);
          resolve('data');
        });
        out.once('end', () => resolve('end'));
      }),
      outcome.then(() => 'exit' as const),
    ]);
    if (first !== 'data') {
      const r = await outcome;
      if (r.error) {
        out.destroy();
        checker.destroy();
        throw failure(r);
      }
    }
    if (out.readableEnded) checker.end();
    else out.pipe(checker);
    return {
      name: path.posix.basename(found.path),
      size,
      stream: checker,
      abort: () => {
        // Closing our end first: a child blocked writing into the full pipe (a synchronous write
        // never lets it see a signal) gets EPIPE at once; SIGTERM for one that is reading.
        out.unpipe(checker);
        out.destroy();
        checker.destroy();
        const c = child;
        if (!c || c.exitCode !== null || c.signalCode !== null) return;
        c.kill('SIGTERM');
        setTimeout(() => {
          if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        }, KILL_AFTER_MS).unref();
      },
    };
  }
}
