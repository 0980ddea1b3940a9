/**
 * Restores a snapshot below a target directory: each backed-up path P comes back as
 * TARGET/P. The tree is walked once to create directories and plan which blob goes
 * where, in batches of a few thousand files: while one batch's packs are read (once
 * each per batch, only the ranges needed) and worker threads authenticate and write
 * its blobs, the walk plans the next, so memory holds two batches' plans whatever the
 * snapshot's size and the first files are written before the walk ends. Metadata of
 * directories, symlinks and hard links comes last, directories deepest first so
 * their times stick. --delta sweeps each directory of what the snapshot lacks as the walk
 * reaches it (its tree names all it keeps), before any of its files is planned.
 *
 * Safety: tree names are validated when decoded (no "..", "/", duplicates). The
 * target is created exclusively (an existing one only with --delta/--overwrite) below
 * parents nobody else can write (target.ts), and everything under it is written
 * relative to directory descriptors, one component at a time, never following a
 * symlink (util/safe-fs.ts): a directory swapped for a symlink mid-restore fails the
 * write instead of redirecting it. Each file is written under a temporary name and
 * renamed to its own only when all its blobs are authenticated and written, so a
 * restore that stops part-way (a full disk, a damaged pack) leaves no file that looks
 * complete but is not; it removes its temporaries and names what is missing.
 */
import { close, closeSync, constants as C, fdatasync, fstatSync, ftruncateSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { LifeboatError, errno, isLifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';
import { PathMatcher } from '../../util/glob.js';
import { createFileAt, DirCache, linkAt, listAt, lstatAt, mkdirAt, openFileAt, removeAt, renameAt, splitRel, symlinkAt } from '../../util/safe-fs.js';
import { acquireLock } from '../../repo/lock.js';
import type { RestoreBlob } from '../workers/restore-protocol.js';
import { writeContent } from './content.js';
import { exportKey } from '../../codec/crypto.js';
import { RestorePool } from '../workers/restore-pool.js';
import { collectAll } from '../../util/gc.js';
import { getHeapStatistics } from 'node:v8';
import { realLater, throttleProgress, type ItemError, type ProgressFn } from '../progress.js';
import { defaultThreads, PART_BYTES } from '../backup/archiver.js';
import { resolvePath, walkTree } from '../browse/tree-walk.js';
import { FastCDC, gearTable } from '../../chunker/fastcdc.js';
import type { ChunkBuffer } from '../../chunker/read.js';
import { removeExtraIn, sameContent } from './delta.js';
import { metaAt, metaOnFd, mkfifoAt } from './fd-meta.js';
import { openTarget } from './target.js';

export interface RestoreOptions {
  target: string;
  /**
   * Restore only the directory at this snapshot path, with its contents directly in
   * the target (a database's data directory), instead of TARGET/<path>.
   */
  root?: string;
  include?: string[];
  /**
   * The target may hold an older copy: files whose content already matches are
   * kept (only their metadata is set), others rewritten, extra entries removed.
   */
  delta?: boolean;
  /**
   * The target may exist: entries of the snapshot replace what has their name there
   * (each file atomically, by rename); everything else in it is left alone.
   * Without this or `delta` an existing target is refused (TARGET_EXISTS).
   */
  overwrite?: boolean;
  /** The option that allows an existing target, named in the refusal's hint. */
  existingFlag?: string;
  /**
   * With `root`: directories on the way to the target may also belong to the owner
   * recorded for that root (a data directory's user, who owns the restored result anyway).
   */
  trustRootOwner?: boolean;
  /**
   * Files (paths relative to the target) that must not appear before everything else
   * is in place: each is written and given its metadata under its temporary name, and
   * left there, named in the result's `held`, for the caller to rename last (a data
   * directory's PG_VERSION, without which PostgreSQL refuses to start a copy that is
   * half-restored, or was mid-way through a --delta when the restore stopped). In a
   * target that exists, the names are removed before anything is written.
   */
  holdBack?: readonly string[];
  /**
   * Each file is flushed to disk (fdatasync, on libuv's threads, two at a time) once
   * it is complete, while the rest is written, and the restore returns when all are:
   * for a caller that makes the result durable afterwards (pg restore flushes the file
   * system before naming PG_VERSION), whose flush then finds little left to write.
   * Without it, that final flush would wait for every byte at the end.
   */
  flushEarly?: boolean;
  threads?: number;
  onProgress?: ProgressFn;
  /** How much the walk plans before that batch is written (tests make it small). */
  batch?: { files: number; bytes: number };
}

/** A batch of the plan: a few thousand files, or this many bytes of content (docs/performance.md). */
const BATCH = { files: 4096, bytes: 128 * 1024 * 1024 };
/** The main thread's heap above which a written batch is followed by a full GC. */
const GC_ABOVE = 32 * 1024 * 1024;

export interface RestoreResult {
  /** With delta: files whose content already matched and were not rewritten. */
  unchanged: number;
  /** With delta: entries in the target that the snapshot does not have, removed. */
  removed: number;
  files: number;
  dirs: number;
  bytes: number;
  errors: ItemError[];
  /** The `holdBack` files restored: each complete under its temporary name `tmp`, in the directory of `rel`. */
  held?: Array<{ rel: string; tmp: string }>;
}

/** A restore that stopped part-way carries the files it could not finish (absolute paths). */
export interface IncompleteRestore {
  incomplete: string[];
}

export function incompleteOf(err: unknown): string[] | undefined {
  const list = (err as Partial<IncompleteRestore> | undefined)?.incomplete;
  return Array.isArray(list) ? list : undefined;
}

/**
 * For a caller that must not present a partial result as restored (a database's
 * directory, a group's member): the restore's errors other than sockets and device
 * nodes (recorded, never recreated) as a RESTORE_INCOMPLETE naming them; undefined
 * when there are none.
 */
export function missingItems(r: Pick<RestoreResult, 'errors'>, target: string, opts: { also?: string; hint: string }): (LifeboatError & IncompleteRestore) | undefined {
  const failed = r.errors.filter((e) => !e.special);
  const first = failed[0];
  if (!first) return undefined;
  const err = new LifeboatError('RESTORE_INCOMPLETE', `${failed.length} item(s) of ${target} were not restored (${first.path}: ${first.message})${opts.also ? `; ${opts.also}` : ''}`, { hint: opts.hint });
  return Object.assign(err, { incomplete: failed.map((e) => e.path) });
}

/** What the recheck after a --delta found: names the snapshot does not have, restored names missing (counts, and the first few). */
class Drift {
  static readonly SHOWN = 3;
  appeared = { count: 0, first: [] as string[] };
  vanished = { count: 0, first: [] as string[] };

  note(kind: 'appeared' | 'vanished', name: string): void {
    const k = this[kind];
    if (k.count++ < Drift.SHOWN) k.first.push(name);
  }
}

interface Later {
  /** Relative to the target ("" is the target itself). */
  rel: string;
  node: TreeNode;
}

/** A regular file being restored under a temporary name. */
interface FileState {
  rel: string;
  dir: string;
  name: string;
  tmp: string;
  node: TreeNode;
  /** Blobs still to be written (files of several blobs); the main thread renames at 0. */
  remaining: number;
  done: boolean;
  /** One of `holdBack`: left under its temporary name when complete. */
  hold?: boolean;
}

/**
 * Flushes completed files to disk in the background (RestoreOptions.flushEarly), at
 * most two at a time so the pack reads on libuv's threads are not starved. Each file
 * is opened again by name below the target, without following symlinks. It only
 * starts the disk writes early: durability is the caller's final flush, so a file
 * that cannot be opened (removed after a failure) is passed over, and past QUEUED
 * waiting files (many small ones written faster than flushed) new ones are left to
 * that flush. A flush that fails (EIO, ENOSPC) fails the restore: on kernels before
 * 5.8 syncfs does not report it.
 */
class Flusher {
  private static readonly QUEUED = 256;
  private readonly queue: Array<[string, string]> = [];
  private running = 0;
  private idle: (() => void) | undefined;
  private error: unknown;

  constructor(private readonly dirs: DirCache) {}

  add(dir: string, name: string): void {
    if (this.queue.length >= Flusher.QUEUED) return;
    this.queue.push([dir, name]);
    this.next();
  }

  private next(): void {
    while (this.running < 2 && this.queue.length > 0) {
      const [dir, name] = this.queue.shift()!;
      let fd: number;
      try {
        fd = openFileAt(this.dirs.dir(dir), name, C.O_RDONLY | C.O_NONBLOCK);
      } catch {
        continue;
      }
      this.running++;
      fdatasync(fd, (err) =>
        close(fd, () => {
          if (err) this.error ??= err;
          this.running--;
          this.next();
        }),
      );
    }
    if (this.running === 0) this.idle?.();
  }

  /** Drops what waits, resolves once the flushes running are done: to the first flush that failed, if one did. */
  drain(): Promise<unknown> {
    this.queue.length = 0;
    if (this.running === 0) return Promise.resolve(this.error);
    return new Promise((resolve) => (this.idle = () => resolve(this.error)));
  }
}

/** Directory descriptors the main thread keeps open (the process allows thousands; workers keep their own). */
const OPEN_DIRS = 512;

export async function restore(repo: Repository, snapshot: Snapshot, opts: RestoreOptions): Promise<RestoreResult> {
  const lock = await acquireLock(repo.store, 'shared', `restore ${snapshot.id.slice(0, 8)}`);
  try {
    await repo.loadIndex();
    return await new Restorer(repo, opts).run(snapshot);
  } finally {
    await lock.release();
  }
}

class Restorer {
  private target: string;
  private readonly include: PathMatcher;
  private readonly replace: boolean;
  private readonly made = new Set<string>(['']);
  private readonly dirList: Later[] = [];
  private readonly lateItems: Later[] = [];
  private readonly links: Array<{ rel: string; first: FileState }> = [];
  private readonly inodes = new Map<string, FileState>();
  private readonly holdBack: ReadonlySet<string>;
  /** `holdBack` files complete under their temporary names. */
  private readonly held: FileState[] = [];
  /** The batch being planned: its files (BlobTarget.file indexes them) and its blobs by pack. */
  private fileStates: FileState[] = [];
  private packs = new Map<number, Map<string, RestoreBlob>>();
  private batchBytes = 0;
  /** Batches handed to the writer and not yet complete (a failure lists what they left undone). */
  private readonly writing = new Set<FileState[]>();
  /** The batch being written, if one is. */
  private inFlight: Promise<void> | undefined;
  private pool: RestorePool | undefined;
  /** Why writing stopped; the walk then only lists the files it would have restored. */
  private failure: unknown;
  private readonly unplanned: string[] = [];
  private walking = true;
  /** While the walk runs: the totals to show progress against (the walk's own grow with it). */
  private estimate: { files: number; bytes: number } | undefined;
  private readonly errors: ItemError[] = [];
  private readonly isRoot = process.getuid?.() === 0;
  /** Temporary names: a dot file unlikely to meet a real name, unique per restore. */
  private readonly tmpTag = `.lifeboat-${randomBytes(6).toString('hex')}-`;
  private dirs!: DirCache;
  private files = 0;
  private unchanged = 0;
  /** For progress: files finished (written or, with --delta, found unchanged) and the bytes of the unchanged ones. */
  private doneFiles = 0;
  /** Bytes of the hard links made (no bytes written): progress counts names, as snapshots do. */
  private linkedBytes = 0;
  private skippedBytes = 0;
  /** With --delta: entries the snapshot lacks, removed by the sweeps so far. */
  private removed = 0;
  /**
   * The target was created empty by this restore (below parents nobody else can
   * write, itself and every directory in it mode 0700 until the end): no name can be
   * taken already, so nothing is looked up or removed before an entry is made. An
   * entry that is there anyway fails its exclusive create (O_EXCL, symlink, mkdir,
   * rename onto a directory) instead of being replaced.
   */
  private fresh = false;
  private readonly chunker: FastCDC | undefined;
  private flusher: Flusher | undefined;
  private total = 0;
  private written = 0;
  private readonly emit: ReturnType<typeof throttleProgress>;

  constructor(
    private readonly repo: Repository,
    private readonly opts: RestoreOptions,
  ) {
    this.emit = throttleProgress(opts.onProgress, 100, Date.now, realLater);
    this.chunker = opts.delta ? new FastCDC(gearTable(repo.key.idKey), repo.config.chunker) : undefined;
    this.target = path.resolve(opts.target);
    this.include = new PathMatcher(opts.include ?? []);
    this.replace = opts.delta === true || opts.overwrite === true;
    this.holdBack = new Set(opts.holdBack ?? []);
  }

  async run(snapshot: Snapshot): Promise<RestoreResult> {
    let root: TreeNode | undefined;
    let tree = snapshot.tree;
    if (this.opts.root) {
      // Found before the target is made: a wrong --root leaves nothing behind.
      const found = await resolvePath(this.repo, snapshot.tree, this.opts.root);
      if (!('node' in found) || found.node.type !== 'dir' || !found.node.subtree) {
        throw new LifeboatError('NOT_FOUND', `${this.opts.root} is not a directory in snapshot ${snapshot.id.slice(0, 8)}`);
      }
      this.base = found.path;
      root = found.node;
      tree = found.node.subtree;
    }
    const t = openTarget(this.target, {
      mayExist: this.replace,
      flag: this.opts.existingFlag ?? '--overwrite (or --delta)',
      ...(root && this.opts.trustRootOwner ? { trustedUid: root.uid } : {}),
    });
    this.target = t.path;
    this.fresh = t.created;
    this.dirs = new DirCache(t.fd, OPEN_DIRS);
    /** The held files went to the caller; until then they are this restore's temporaries. */
    let handedOver = false;
    try {
      if (!this.fresh) for (const rel of this.holdBack) this.removeHeld(rel);
      if (this.opts.onProgress && !this.opts.delta) {
        // The snapshot's own counts when all of it is restored; else the trees, counted first.
        const s = snapshot.summary as Partial<Snapshot['summary']> | undefined;
        this.estimate =
          !this.opts.root && this.include.empty && s?.totalFiles !== undefined && s.totalBytes !== undefined
            ? { files: s.totalFiles, bytes: s.totalBytes }
            : await this.count(tree, this.base);
      }
      this.pool = new RestorePool({ key: exportKey(this.repo.key), rootFd: t.fd }, this.threads);
      if (this.opts.flushEarly) this.flusher = new Flusher(this.dirs);
      if (root) this.dirList.push({ rel: '', node: root });
      let flushFailed: unknown;
      try {
        await this.walk(tree, this.base);
        this.walking = false;
        await this.flush();
        await this.inFlight;
        flushFailed = await this.flusher?.drain();
      } catch (err) {
        // Temporaries of files planned so far go too (a directory swapped mid-walk, a
        // full disk), once the batch being written has stopped.
        await this.inFlight;
        await this.flusher?.drain();
        await this.pool.close();
        this.abandon(err);
      }
      if (this.failure !== undefined) this.abandon(this.failure);
      if (flushFailed !== undefined) {
        const e = errno(flushFailed);
        throw new LifeboatError(e === 'ENOSPC' || e === 'EDQUOT' ? 'NO_SPACE' : 'RESTORE_INCOMPLETE', `flushing ${this.target} to disk failed: ${(flushFailed as Error).message}`, {
          hint: 'the disk reported an error, so files may not hold what was written; fix the disk or free space and restore again',
          cause: flushFailed,
        });
      }
      for (const l of this.links) this.tryItem(l.rel, () => this.link(l.rel, l.first));
      for (const f of this.lateItems) this.tryItem(f.rel, () => metaAt(this.dirFor(f.rel), splitRel(f.rel).name, f.node, this.isRoot));
      // Before the directories get their modes and times: listing one would reset its
      // atime, and a mode without read access would stop the listing.
      if (this.opts.delta && this.include.empty) this.changedMeanwhile(await this.recheck(tree, this.base));
      // Deepest directories first, so setting a child's times does not touch the parent's.
      this.dirList.sort((a, b) => b.rel.length - a.rel.length);
      for (const d of this.dirList) this.tryItem(d.rel, () => metaOnFd(this.dirs.dir(d.rel), d.node, this.isRoot));
      this.report(true);
      const held = this.held.map((f) => ({ rel: f.rel, tmp: f.tmp }));
      handedOver = true;
      return { files: this.files, unchanged: this.unchanged, removed: this.removed, dirs: this.dirList.length, bytes: this.written, errors: this.errors, ...(held.length ? { held } : {}) };
    } finally {
      if (!handedOver) this.dropHeld();
      this.emit.cancel();
      await this.pool?.close();
      this.dirs.close();
      closeSync(t.fd);
    }
  }

  /**
   * --delta, once everything is written: each directory must hold exactly the names
   * its tree has. Something else writing into the target meanwhile (an application
   * left running, a second restore) can add or remove names after a directory's sweep.
   * That is found here and reported, not swept again (what appeared may be someone's
   * work) and not passed off as a target that equals the snapshot.
   */
  private async recheck(treeId: string | undefined, dirPath: string, drift = new Drift(), failed = new Set(this.errors.map((e) => e.path))): Promise<Drift> {
    const rel = this.local(dirPath);
    let present: Set<string>;
    try {
      present = new Set(listAt(this.dirs.dir(rel)));
    } catch (err) {
      // Removed, or swapped for a symlink or file (never followed) since it was restored.
      if (!['ENOENT', 'ENOTDIR', 'ELOOP'].includes(errno(err) ?? '')) throw err;
      drift.note('vanished', this.shown(rel));
      return drift;
    }
    for (const f of this.held) if (f.dir === rel) present.delete(f.tmp);
    const subdirs: Array<[string | undefined, string]> = [];
    for (const node of treeId ? (await this.repo.loadTree(treeId)).nodes : []) {
      const childRel = rel === '' ? node.name : `${rel}/${node.name}`;
      const there = present.delete(node.name);
      if (this.holdBack.has(childRel) || !['dir', 'file', 'symlink', 'fifo'].includes(node.type)) continue;
      // An item already reported as not restored is not reported again, and a directory
      // whose metadata failed is still looked into.
      if (!there) {
        if (!failed.has(this.shown(childRel))) drift.note('vanished', this.shown(childRel));
      } else if (node.type === 'dir') subdirs.push([node.subtree, path.posix.join(dirPath, node.name)]);
    }
    for (const name of present) drift.note('appeared', this.shown(rel === '' ? name : `${rel}/${name}`));
    for (const [subtree, p] of subdirs) await this.recheck(subtree, p, drift, failed);
    return drift;
  }

  private changedMeanwhile({ appeared, vanished }: Drift): void {
    if (appeared.count + vanished.count === 0) return;
    const what = [appeared.count ? `${appeared.count} name(s) appeared (${appeared.first.join(', ')})` : '', vanished.count ? `${vanished.count} restored name(s) vanished (${vanished.first.join(', ')})` : ''];
    throw new LifeboatError('TARGET_CHANGED', `${this.target} changed while it was restored: ${what.filter(Boolean).join('; ')}`, {
      hint: 'something else writes there (an application left running?); stop it and restore again with --delta. Nothing that appeared was removed',
    });
  }

  /** Held files not handed to the caller (the recheck or what followed the writes failed) are temporaries to remove. */
  private dropHeld(): void {
    for (const f of this.held) this.removeTemp(f);
  }

  private removeTemp(f: FileState): void {
    try {
      removeAt(this.dirs.dir(f.dir), f.tmp);
    } catch {
      // Its directory is gone or swapped: nothing of ours can be reached there.
    }
  }

  /** A `holdBack` name in a target that exists goes before anything is written. */
  private removeHeld(rel: string): void {
    const { dir, name } = splitRel(rel);
    try {
      removeAt(this.dirs.dir(dir), name);
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
    }
  }

  private shown(rel: string): string {
    return rel === '' ? this.target : path.join(this.target, rel);
  }

  private tryItem(rel: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.errors.push({ path: this.shown(rel), message: (err as Error).message });
    }
  }

  private dirFor(rel: string): number {
    return this.dirs.dir(splitRel(rel).dir);
  }

  /** Creates a directory we own; a non-directory in the way (a planted symlink) is replaced, never followed. */
  private ensureDir(rel: string): void {
    if (this.made.has(rel)) return;
    const { dir, name } = splitRel(rel);
    this.ensureDir(dir);
    const parent = this.dirs.dir(dir);
    try {
      mkdirAt(parent, name, 0o700);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
      if (!lstatAt(parent, name)?.isDirectory()) {
        removeAt(parent, name);
        mkdirAt(parent, name, 0o700);
      }
    }
    this.made.add(rel);
  }

  /** Snapshot path that maps to the target itself ("/" unless restoring a subtree). */
  private base = '/';

  private local(snapPath: string): string {
    const rel = path.posix.relative(this.base, snapPath);
    if (rel === '..' || rel.startsWith('../') || path.posix.isAbsolute(rel)) {
      throw new LifeboatError('UNSAFE_PATH', `refusing to write ${snapPath} outside ${this.target}`);
    }
    return rel;
  }

  private wanted(snapPath: string): boolean {
    return this.include.empty || this.include.matches(snapPath);
  }

  /**
   * --delta: what the snapshot does not have goes, so the target equals the snapshot.
   * Called as the walk reaches each directory: its tree names everything it keeps, and
   * none of its files is planned yet (so no temporary of this restore is there). Not
   * with --include (the rest is not this restore's), nor after a failure (writing has
   * stopped).
   */
  private sweep(rel: string, nodes: readonly TreeNode[]): void {
    if (!this.opts.delta || !this.include.empty || this.failure !== undefined) return;
    this.removed += removeExtraIn(this.dirs, rel, new Set(nodes.map((n) => n.name)));
  }

  private async walk(treeId: string, dirPath: string): Promise<void> {
    const tree = await this.repo.loadTree(treeId);
    this.sweep(this.local(dirPath), tree.nodes);
    for (const node of tree.nodes) {
      const snapPath = path.posix.join(dirPath, node.name);
      const rel = this.local(snapPath);
      if (node.type === 'dir') {
        if (this.wanted(snapPath) && this.failure === undefined) {
          this.ensureDir(rel);
          this.dirList.push({ rel, node });
        }
        if (node.subtree) await this.walk(node.subtree, snapPath);
        else this.sweep(rel, []);
        continue;
      }
      if (!this.wanted(snapPath)) continue;
      if (this.failure !== undefined) {
        // Writing has stopped: the rest of the snapshot is only listed, so the error
        // can name every file that is not in the target.
        if (node.type === 'file') this.unplanned.push(this.shown(rel));
        continue;
      }
      this.ensureDir(splitRel(rel).dir);
      await this.leaf(node, rel);
      if (this.fileStates.length >= this.batchSize.files || this.batchBytes >= this.batchSize.bytes) await this.flush();
    }
  }

  /** The regular files (and their bytes) a walk from `treeId` would restore. */
  private async count(treeId: string, dirPath: string): Promise<{ files: number; bytes: number }> {
    const t = { files: 0, bytes: 0 };
    for await (const { path: p, node } of walkTree(this.repo, treeId, dirPath)) {
      if (node.type !== 'file' || !this.wanted(p)) continue;
      t.files++;
      t.bytes += node.size ?? 0;
    }
    return t;
  }

  private get threads(): number {
    return this.opts.threads ?? defaultThreads();
  }

  private get batchSize(): { files: number; bytes: number } {
    return this.opts.batch ?? BATCH;
  }

  /**
   * Hands the batch planned so far to the writer once the one before it is written
   * (so at most two batches are held: one written, one planned). A failure of the
   * earlier batch is kept, and nothing more is written.
   */
  private async flush(): Promise<void> {
    await this.inFlight;
    if (this.failure !== undefined || this.fileStates.length === 0) return;
    const files = this.fileStates;
    const packs = this.packs;
    this.fileStates = [];
    this.packs = new Map();
    this.batchBytes = 0;
    this.writing.add(files);
    this.inFlight = writeContent({
      repo: this.repo,
      packs,
      pool: this.pool as RestorePool,
      readAhead: this.threads + 1,
      files,
      finish: (f) => this.finish(f as FileState),
      onWritten: (n) => {
        this.written += n;
        this.report(false);
      },
      onWholeFile: (dir, name) => {
        this.doneFiles++;
        this.flusher?.add(dir, name);
      },
    }).then((failure) => {
      if (failure === undefined) this.writing.delete(files);
      else this.failure ??= failure;
      // The batch's plan (blobs, targets, file states) is garbage now, and old enough
      // to have been promoted, where V8 lets ~100 MB of it gather before a full GC:
      // free it before the next batch adds its own (10-15 ms when the heap is past
      // 32 MB; docs/performance.md, "Restore memory").
      if (getHeapStatistics().used_heap_size > GC_ABOVE) collectAll();
    });
  }

  private async leaf(node: TreeNode, rel: string): Promise<void> {
    const { dir, name } = splitRel(rel);
    let dirFd = this.dirs.dir(dir);
    if (node.type !== 'file') {
      if (node.type !== 'symlink' && node.type !== 'fifo') {
        this.errors.push({ path: this.shown(rel), message: `${node.type} not restored (special files are recorded, not recreated)`, special: true });
        return;
      }
      if (!this.fresh) {
        this.dirs.forget(rel);
        removeAt(dirFd, name);
      }
      if (node.type === 'symlink') symlinkAt(node.target ?? '', dirFd, name);
      else mkfifoAt(dirFd, name);
      this.lateItems.push({ rel, node });
      return;
    }
    this.files++;
    const hold = this.holdBack.has(rel);
    const file: FileState = { rel, dir, name, tmp: `${this.tmpTag}${this.files}`, node, remaining: 0, done: false, ...(hold ? { hold } : {}) };
    if (node.nlink > 1 && !hold) {
      const inodeKey = `${node.dev}:${node.inode}`;
      const first = this.inodes.get(inodeKey);
      if (first) {
        // Counted as the snapshot counts it: a name, with its size, done once linked.
        this.links.push({ rel, first });
        this.total += node.size ?? 0;
        return;
      }
      this.inodes.set(inodeKey, file);
    }
    const content = node.content ?? [];
    this.total += node.size ?? 0;
    this.batchBytes += node.size ?? 0;
    if (this.chunker && !hold) {
      if (await this.alreadyThere(dirFd, name, node, this.chunker)) {
        this.unchanged++;
        this.doneFiles++;
        this.skippedBytes += node.size ?? 0;
        file.done = true;
        this.lateItems.push({ rel, node });
        return;
      }
      // The comparison awaited: other directories opened meanwhile may have evicted dirFd.
      dirFd = this.dirs.dir(dir);
    }
    // A directory in the way cannot be replaced by rename; anything else is, atomically.
    if (!this.fresh && lstatAt(dirFd, name)?.isDirectory()) {
      this.dirs.forget(rel);
      removeAt(dirFd, name);
    }
    this.fileStates.push(file);
    // A single blob is written and renamed by a worker; a held file waits for its caller.
    if (content.length === 1 && !hold) {
      const m = node;
      await this.plan(content[0] as string, {
        file: this.fileStates.length - 1,
        dir,
        tmp: file.tmp,
        offset: 0,
        whole: { name, mode: m.mode, uid: m.uid, gid: m.gid, mtime: m.mtime, ...(m.atime ? { atime: m.atime } : {}) },
      });
      return;
    }
    // Empty and multi-blob files: created (sparse, at full size) under the temporary
    // name here, filled by workers, renamed once the last piece is written.
    const fd = createFileAt(dirFd, file.tmp);
    try {
      ftruncateSync(fd, node.size ?? 0);
    } finally {
      closeSync(fd);
    }
    let offset = 0;
    for (const id of content) {
      file.remaining++;
      offset += await this.plan(id, { file: this.fileStates.length - 1, dir, tmp: file.tmp, offset });
    }
    if (file.remaining === 0) this.finish(file);
  }

  /**
   * Delta's read buffer, one for every file compared: a new one per file (twice the
   * chunker's maximum) made V8 collect garbage for three quarters of a delta restore's
   * CPU (docs/performance.md).
   */
  private deltaBuf: ChunkBuffer | undefined;

  /** Delta: a plain file of the right size, sharing its inode with nothing, whose chunks have the node's ids. */
  private async alreadyThere(dirFd: number, name: string, node: TreeNode, chunker: FastCDC): Promise<boolean> {
    let fd: number;
    try {
      fd = openFileAt(dirFd, name, C.O_RDONLY | C.O_NONBLOCK);
    } catch {
      return false;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.size !== (node.size ?? 0) || st.nlink !== 1) return false;
      this.deltaBuf ??= { buf: Buffer.allocUnsafeSlow(chunker.params.max * 2), end: 0 };
      return await sameContent(fd, node, chunker, this.repo.key, PART_BYTES, this.deltaBuf);
    } finally {
      closeSync(fd);
    }
  }

  /** A file of several blobs (or held back) is complete: metadata on its descriptor, then its real name (unless held). */
  private finish(f: FileState): void {
    const dirFd = this.dirs.dir(f.dir);
    const fd = openFileAt(dirFd, f.tmp, C.O_WRONLY);
    try {
      metaOnFd(fd, f.node, this.isRoot);
    } finally {
      closeSync(fd);
    }
    if (f.hold) this.held.push(f);
    else renameAt(dirFd, f.tmp, dirFd, f.name);
    this.flusher?.add(f.dir, f.hold ? f.tmp : f.name);
    f.done = true;
    this.doneFiles++;
  }

  private link(rel: string, first: FileState): void {
    if (!first.done) throw new Error(`not restored: the file it is a hard link of (${first.rel}) is incomplete`);
    const { dir, name } = splitRel(rel);
    const dirFd = this.dirs.dir(dir);
    if (this.replace) {
      this.dirs.forget(rel);
      removeAt(dirFd, name);
    }
    linkAt(this.dirs.dir(first.dir), first.name, dirFd, name);
    this.doneFiles++;
    this.linkedBytes += first.node.size ?? 0;
  }

  /** Records where a blob must go; returns its plaintext length. */
  private async plan(idHex: string, target: RestoreBlob['targets'][number]): Promise<number> {
    const id = Buffer.from(idHex, 'hex');
    const loc = await this.repo.locate(id);
    let blobs = this.packs.get(loc.packIndex);
    if (!blobs) this.packs.set(loc.packIndex, (blobs = new Map()));
    let blob = blobs.get(idHex);
    if (!blob) blobs.set(idHex, (blob = { id, offset: loc.offset, length: loc.length, maxPlain: this.repo.blobLimit(loc), targets: [] }));
    blob.targets.push(target);
    return loc.rawLength;
  }

  /**
   * The restore cannot finish: every temporary file goes (nothing half-written stays
   * under any name), and the error names each file that is not in the target.
   */
  private abandon(cause: unknown): never {
    const incomplete: string[] = [];
    // A held file may be both in a failed batch and complete under its temporary name.
    for (const f of new Set([...this.writing].flat().concat(this.fileStates, this.held))) {
      if (f.done && !f.hold) continue;
      incomplete.push(this.shown(f.rel));
      this.removeTemp(f);
    }
    this.held.length = 0; // removed above: nothing left for dropHeld
    // Hard links are made at the end, which a failure does not reach.
    for (const l of this.links) incomplete.push(this.shown(l.rel));
    incomplete.push(...this.unplanned);
    const why = (cause as Error).message ?? String(cause);
    const code = isLifeboatError(cause) ? cause.code : errno(cause) === 'ENOSPC' || errno(cause) === 'EDQUOT' ? 'NO_SPACE' : 'RESTORE_INCOMPLETE';
    const err = new LifeboatError(code, `restore into ${this.target} stopped: ${why}; ${incomplete.length} file(s) were not restored`, {
      hint: 'no file was left half-written under its name; fix the cause (free space, `lifeboat check --read-data`) and restore again with --delta, which keeps the files already complete',
      cause,
    });
    throw Object.assign(err, { incomplete } satisfies IncompleteRestore);
  }

  /**
   * The walk plans only a batch ahead of the writes, so its totals grow with it: while
   * it runs, progress is shown against the estimate (the snapshot's counts, or the
   * trees counted first), when there is one.
   */
  private report(final: boolean): void {
    const est = this.walking ? this.estimate : undefined;
    this.emit(
      {
        phase: final ? 'done' : 'restore',
        files: this.doneFiles,
        bytes: this.written + this.skippedBytes + this.linkedBytes,
        totalFiles: est ? est.files : this.files,
        totalBytes: est ? est.bytes : this.total,
        totalsFinal: est !== undefined || !this.walking,
        errors: this.errors.length,
      },
      final,
    );
  }
}
