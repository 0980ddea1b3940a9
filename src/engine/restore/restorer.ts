/**
 * Restores a snapshot below a target directory: each backed-up path P comes back as
 * TARGET/P. The tree is walked once to create directories and plan which blob goes
 * where; then packs are read once each (only the ranges needed) and worker threads
 * authenticate and write the blobs in parallel; metadata comes last, directories
 * deepest first so their times stick.
 *
 * Safety: tree names are validated when decoded (no "..", "/", duplicates), every
 * directory on the way is checked to be a real directory we made (a symlink planted
 * in the target is replaced, never followed), and files open with O_NOFOLLOW.
 */
import { constants as C, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, errno, isLifeboatError } from '../../errors.js';
import { exportKey, unseal } from '../../codec/crypto.js';
import type { Repository } from '../../repo/repository.js';
import { keys } from '../../repo/format.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';
import { applyMetadata } from '../../sources/files/metadata.js';
import { PathMatcher } from '../../util/glob.js';
import { mapLimit } from '../../util/limit.js';
import { acquireLock } from '../../repo/lock.js';
import { RestorePool } from '../workers/restore-pool.js';
import type { RestoreBlob } from '../workers/restore-protocol.js';
import { throttleProgress, type ItemError, type ProgressFn } from '../progress.js';
import { defaultThreads, PART_BYTES } from '../backup/archiver.js';
import { resolvePath } from '../browse/tree-walk.js';
import { FastCDC, gearTable } from '../../chunker/fastcdc.js';
import { removeExtra, sameContent } from './delta.js';

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
  threads?: number;
  onProgress?: ProgressFn;
}

export interface RestoreResult {
  /** With delta: files whose content already matched and were not rewritten. */
  unchanged: number;
  /** With delta: entries in the target that the snapshot does not have, removed. */
  removed: number;
  files: number;
  dirs: number;
  bytes: number;
  errors: ItemError[];
}

interface Later {
  path: string;
  node: TreeNode;
}

/** Neighbouring blobs closer than this are fetched in one read. */
const MERGE_GAP = 1024 * 1024;
/** A single read never covers more than this (memory bound per in-flight job). */
const MAX_READ = 16 * 1024 * 1024;

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
  private readonly target: string;
  private readonly include: PathMatcher;
  private readonly made = new Set<string>();
  private readonly dirs: Later[] = [];
  private readonly lateFiles: Later[] = [];
  private readonly links: Array<{ path: string; to: string }> = [];
  private readonly inodes = new Map<string, string>();
  private readonly packs = new Map<number, Map<string, RestoreBlob>>();
  private readonly errors: ItemError[] = [];
  private readonly isRoot = process.getuid?.() === 0;
  private files = 0;
  private unchanged = 0;
  private readonly restored = new Set<string>();
  private readonly chunker: FastCDC | undefined;
  private total = 0;
  private written = 0;
  private readonly emit: ReturnType<typeof throttleProgress>;

  constructor(
    private readonly repo: Repository,
    private readonly opts: RestoreOptions,
  ) {
    this.emit = throttleProgress(opts.onProgress);
    this.chunker = opts.delta ? new FastCDC(gearTable(repo.key.idKey), repo.config.chunker) : undefined;
    this.target = path.resolve(opts.target);
    this.include = new PathMatcher(opts.include ?? []);
  }

  async run(snapshot: Snapshot): Promise<RestoreResult> {
    await fs.mkdir(this.target, { recursive: true });
    this.made.add(this.target);
    if (this.opts.root) {
      const found = await resolvePath(this.repo, snapshot.tree, this.opts.root);
      if (!('node' in found) || found.node.type !== 'dir' || !found.node.subtree) {
        throw new LifeboatError('NOT_FOUND', `${this.opts.root} is not a directory in snapshot ${snapshot.id.slice(0, 8)}`);
      }
      this.base = found.path;
      this.dirs.push({ path: this.target, node: found.node });
      await this.walk(found.node.subtree, found.path);
    } else {
      await this.walk(snapshot.tree, '/');
    }
    // Delta: what the snapshot does not have goes, so the target equals the snapshot.
    const removed = this.opts.delta && this.include.empty ? await removeExtra(this.target, this.restored) : 0;
    await this.writeContent();
    for (const l of this.links) {
      await fs.rm(l.path, { force: true });
      await fs.link(l.to, l.path);
    }
    await mapLimit(this.lateFiles, 16, (f) => this.meta(f));
    // Deepest directories first, so setting a child's times does not touch the parent's.
    this.dirs.sort((a, b) => b.path.length - a.path.length);
    for (const d of this.dirs) await this.meta(d);
    this.report(true);
    return { files: this.files, unchanged: this.unchanged, removed, dirs: this.dirs.length, bytes: this.written, errors: this.errors };
  }

  private async meta(item: Later): Promise<void> {
    try {
      await applyMetadata(item.path, item.node, this.isRoot);
    } catch (err) {
      this.errors.push({ path: item.path, message: (err as Error).message });
    }
  }

  /** Creates a directory we own; a non-directory in the way (a planted symlink) is replaced. */
  private async ensureDir(dir: string): Promise<void> {
    this.restored.add(dir);
    if (this.made.has(dir)) return;
    const parent = path.dirname(dir);
    if (!this.made.has(parent)) await this.ensureDir(parent);
    try {
      await fs.mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
      const st = await fs.lstat(dir);
      if (!st.isDirectory()) {
        await fs.rm(dir, { force: true });
        await fs.mkdir(dir, { mode: 0o700 });
      }
    }
    this.made.add(dir);
  }

  /** Snapshot path that maps to the target itself ("/" unless restoring a subtree). */
  private base = '/';

  private local(snapPath: string): string {
    const out = path.join(this.target, path.posix.relative(this.base, snapPath));
    if (out !== this.target && !out.startsWith(this.target + path.sep)) {
      throw new LifeboatError('UNSAFE_PATH', `refusing to write ${snapPath} outside ${this.target}`);
    }
    return out;
  }

  private wanted(snapPath: string): boolean {
    return this.include.empty || this.include.matches(snapPath);
  }

  private async walk(treeId: string, dirPath: string): Promise<void> {
    const tree = await this.repo.loadTree(treeId);
    for (const node of tree.nodes) {
      const snapPath = path.posix.join(dirPath, node.name);
      const dest = this.local(snapPath);
      if (node.type === 'dir') {
        if (this.wanted(snapPath)) {
          await this.ensureDir(dest);
          this.dirs.push({ path: dest, node });
        }
        if (node.subtree) await this.walk(node.subtree, snapPath);
        continue;
      }
      if (!this.wanted(snapPath)) continue;
      await this.ensureDir(path.dirname(dest));
      await this.leaf(node, dest);
    }
  }

  private async leaf(node: TreeNode, dest: string): Promise<void> {
    this.restored.add(dest);
    if (node.type !== 'file') {
      await fs.rm(dest, { force: true, recursive: false }).catch(() => {});
      if (node.type === 'symlink') await fs.symlink(node.target ?? '', dest);
      else if (node.type === 'fifo') await mkfifo(dest, node);
      else {
        this.errors.push({ path: dest, message: `${node.type} not restored (special files are recorded, not recreated)` });
        return;
      }
      this.lateFiles.push({ path: dest, node });
      return;
    }
    this.files++;
    if (node.nlink > 1) {
      const inodeKey = `${node.dev}:${node.inode}`;
      const first = this.inodes.get(inodeKey);
      if (first) {
        this.links.push({ path: dest, to: first });
        return;
      }
      this.inodes.set(inodeKey, dest);
    }
    const content = node.content ?? [];
    this.total += node.size ?? 0;
    if (this.chunker && (await isFileOfSize(dest, node.size ?? 0)) && (await sameContent(dest, node, this.chunker, this.repo.key, PART_BYTES))) {
      this.unchanged++;
      this.lateFiles.push({ path: dest, node });
      return;
    }
    if (content.length === 1) {
      await this.plan(content[0] as string, { path: dest, offset: 0, whole: node });
      return;
    }
    // Empty and multi-blob files: created (sparse, at full size) here, filled by
    // workers. Always a new inode: an existing file may be a hard link to one
    // outside the target.
    await fs.rm(dest, { recursive: true, force: true });
    const fh = await fs.open(dest, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    try {
      await fh.truncate(node.size ?? 0);
    } finally {
      await fh.close();
    }
    let offset = 0;
    for (const id of content) offset += await this.plan(id, { path: dest, offset });
    this.lateFiles.push({ path: dest, node });
  }

  /** Records where a blob must go; returns its plaintext length. */
  private async plan(idHex: string, target: { path: string; offset: number; whole?: TreeNode }): Promise<number> {
    const id = Buffer.from(idHex, 'hex');
    const loc = await this.repo.locate(id);
    let blobs = this.packs.get(loc.packIndex);
    if (!blobs) this.packs.set(loc.packIndex, (blobs = new Map()));
    let blob = blobs.get(idHex);
    if (!blob) blobs.set(idHex, (blob = { id, offset: loc.offset, length: loc.length, maxPlain: this.repo.blobLimit(loc), targets: [] }));
    const w = target.whole;
    blob.targets.push(
      w
        ? { path: target.path, offset: 0, whole: { mode: w.mode, uid: w.uid, gid: w.gid, mtime: w.mtime, ...(w.atime ? { atime: w.atime } : {}) } }
        : { path: target.path, offset: target.offset },
    );
    return loc.rawLength;
  }

  private async writeContent(): Promise<void> {
    const threads = this.opts.threads ?? defaultThreads();
    const pool = new RestorePool({ key: exportKey(this.repo.key) }, threads);
    try {
      const reads: Array<{ packIndex: number; blobs: RestoreBlob[] }> = [];
      for (const [packIndex, blobMap] of this.packs) {
        const blobs = [...blobMap.values()].sort((a, b) => a.offset - b.offset);
        let run: RestoreBlob[] = [];
        for (const b of blobs) {
          const first = run[0];
          const last = run[run.length - 1];
          if (first && last && (b.offset - (last.offset + last.length) > MERGE_GAP || b.offset + b.length - first.offset > MAX_READ)) {
            reads.push({ packIndex, blobs: run });
            run = [];
          }
          run.push(b);
        }
        if (run.length) reads.push({ packIndex, blobs: run });
      }
      this.packs.clear();
      // Read ahead of the workers by one job each: the store and the CPUs both stay busy.
      await mapLimit(reads, threads + 1, async (r) => {
        const packKey = keys.pack(this.repo.index.packId(r.packIndex).toString('hex'));
        const first = r.blobs[0] as RestoreBlob;
        const last = r.blobs[r.blobs.length - 1] as RestoreBlob;
        const range = { offset: first.offset, length: last.offset + last.length - first.offset };
        // Read the count after the await: `x += await y` would add to a stale x.
        const n = await this.readRun(packKey, range, r.blobs, pool).catch(async (err: unknown) => {
          // The pack was pruned since the index was loaded (its blobs were stored again
          // elsewhere first), or it is damaged: each blob from whichever copy works.
          if (!isLifeboatError(err, 'NOT_FOUND') && !isLifeboatError(err, 'CORRUPT')) throw err;
          if (isLifeboatError(err, 'NOT_FOUND')) this.repo.index.markGone(r.packIndex);
          let done = 0;
          for (const b of r.blobs) {
            done += await this.repo.withBlobCopy(b.id, async (loc, key) => {
              const data = await this.repo.store.get(key, { offset: loc.offset, length: loc.length });
              return pool.run({ packKey: key, base: loc.offset, data, blobs: [{ ...b, offset: loc.offset, length: loc.length }] });
            });
          }
          return done;
        });
        this.written += n;
        this.report(false);
      });
    } finally {
      await pool.close();
    }
  }

  /** Reads one run of neighbouring blobs of a pack and has the workers write them. */
  private async readRun(packKey: string, range: { offset: number; length: number }, blobs: RestoreBlob[], pool: RestorePool): Promise<number> {
    const base = range.offset;
    const data = await this.repo.store.get(packKey, range);
    return pool.run({ packKey, base, data, blobs }).catch(async (err: unknown) => {
      if (!isLifeboatError(err, 'CORRUPT')) throw err;
      // A damaged copy. Read it again with every blob checked here, so that a
      // store with retries or several destinations can serve a good one (the
      // workers rewrite the same offsets; nothing unauthenticated was written).
      const again = await this.repo.store.get(packKey, range, { verify: (d) => blobs.every((b) => opens(this.repo, d, b.offset - base, b.length, b.maxPlain)) });
      return pool.run({ packKey, base, data: again, blobs });
    });
  }

  private report(final: boolean): void {
    this.emit({ phase: final ? 'done' : 'restore', files: this.files, bytes: this.written, totalBytes: this.total, errors: this.errors.length }, final);
  }
}

/** Whether the sealed blob at [offset, offset+length) of `data` authenticates. */
function opens(repo: Pick<Repository, 'key'>, data: Uint8Array, offset: number, length: number, maxPlain: number): boolean {
  try {
    unseal(repo.key, data.subarray(offset, offset + length), 'restore check', { kind: 'data' }, maxPlain);
    return true;
  } catch {
    return false;
  }
}

/** A delta candidate: a plain file of the right size that shares its inode with nothing. */
async function isFileOfSize(p: string, size: number): Promise<boolean> {
  const st = await fs.lstat(p).catch(() => undefined);
  return st !== undefined && st.isFile() && st.size === size && st.nlink === 1;
}

async function mkfifo(dest: string, _node: TreeNode): Promise<void> {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync('mkfifo', [dest]);
  if (r.status !== 0) throw new Error(`mkfifo ${dest} failed`);
}
