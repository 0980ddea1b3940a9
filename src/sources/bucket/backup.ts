/**
 * `lifeboat bucket backup`: the objects under a bucket prefix become the files of a
 * snapshot tree (names.ts maps keys to paths), each file's node carrying the object's
 * ETag, modification time, content type, user metadata and version id.
 *
 * Incremental: an object whose ETag, size and last-modified match its node in the
 * parent snapshot (the newest of the same source) is not read again; its chunks are
 * reused. Everything else is streamed through the repository's chunker
 * (engine/backup/stream.ts's storeChunks), `parallel` objects at once.
 *
 * Memory stays bounded: the listing is read a page at a time and waits for a transfer
 * slot; each transfer holds one chunking buffer, sized to the object up to 2 × the
 * maximum chunk, and the sum of those buffers is capped (BUFFER_BUDGET). The tree is
 * built while listing: S3 and Azure list in key order, which keeps each folder's keys
 * together, so a directory is complete as soon as a key outside it arrives, and its
 * tree blob is saved then (a server that lists otherwise is refused, not trusted).
 * Only the open directories' nodes, the names of their saved subdirectories, and the
 * parent snapshot's trees along the same path are held.
 */
import * as os from 'node:os';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { storeChunks } from '../../engine/backup/stream.js';
import { realLater, throttleProgress, type ProgressFn } from '../../engine/progress.js';
import { withPackWriter } from '../../repo/pack/spill.js';
import { indexCacheDir } from '../../engine/backup/write-cache.js';
import { acquireLock, type HeldLock } from '../../repo/lock.js';
import type { PackWriter } from '../../repo/pack/pack-writer.js';
import { PROGRAM_VERSION, type Repository } from '../../repo/repository.js';
import { emptySummary, usableParent, type Snapshot, type SnapshotManifest, type SnapshotSummary } from '../../repo/snapshot/snapshot.js';
import type { Tree, TreeNode } from '../../repo/snapshot/tree.js';
import type { ListedObject, ObjectAccess } from '../../storage/objects.js';
import { Semaphore } from '../../util/limit.js';
import { collidedName, keyParts } from './names.js';
import type { BucketPoint } from './point.js';

export interface BucketBackupOptions {
  name: string;
  location: string;
  objects: ObjectAccess;
  parallel: number;
  tags?: string[];
  hostname?: string;
  /** The snapshot's time when the objects were fixed earlier (a group's listing at its point); default: the listing's start. */
  time?: Date;
  /** More fields for the snapshot's consistency record (a group's `{group, point}`). */
  extra?: Record<string, unknown>;
  onProgress?: ProgressFn;
}

/** Chunking buffers of all transfers together: 4 large objects at 2 × 8 MiB, or thousands of small ones. */
const BUFFER_BUDGET = 64 << 20;
/** A body that breaks off is read again from the start (its stored chunks are deduplicated), this many times in all. */
const OBJECT_ATTEMPTS = 3;

export async function bucketBackup(repo: Repository, opts: BucketBackupOptions): Promise<Snapshot> {
  if (repo.role === 'write') {
    throw new LifeboatError('USAGE', 'a bucket backup needs to read its parent snapshot, which a write-only key cannot', { hint: 'open the repository with a full key' });
  }
  const lock = await acquireLock(repo.store, 'shared', `bucket backup ${opts.name}`);
  try {
    repo.indexCacheDir ??= indexCacheDir(repo);
    await repo.loadIndex();
    await repo.indexOrphanPacks();
    return await new BucketArchiver(repo, opts, lock).run().catch((err: unknown) => {
      repo.resetIndex();
      throw err;
    });
  } finally {
    repo.releaseDiskIndex();
    await lock.release();
  }
}

/** A directory being filled: its entries (settling as their transfers finish) and the parent snapshot's same directory. */
interface Frame {
  name: string;
  /** The raw key prefix up to and including this directory's '/' ('' for the root). */
  rawPrefix: string;
  pending: Array<Promise<TreeNode>>;
  prev: Map<string, TreeNode> | undefined;
  /** Subdirectories already saved: a key inside one of them now would come too late. */
  closed: Set<string>;
}

class BucketArchiver {
  private writer!: PackWriter;
  private readonly slots: Semaphore;
  private budget = BUFFER_BUDGET;
  private readonly budgetWaiters: Array<() => void> = [];
  private readonly emit: ReturnType<typeof throttleProgress>;
  private readonly summary: SnapshotSummary = emptySummary();
  private readonly point = { downloaded: 0, reused: 0, vanished: 0, objects: 0, bytes: 0 };
  private failure: unknown;
  private doneFiles = 0;
  private doneBytes = 0;
  /** Directories have no time of their own in a bucket: they get the listing's start. */
  private dirTime = '0';

  constructor(
    private readonly repo: Repository,
    private readonly opts: BucketBackupOptions,
    private readonly lock: Pick<HeldLock, 'assertHeld'>,
  ) {
    this.slots = new Semaphore(Math.max(1, opts.parallel));
    this.emit = throttleProgress(opts.onProgress, 100, Date.now, realLater);
  }

  /** Transfers still running: a failed backup waits for them before it lets go of its lock. */
  private readonly inFlight = new Set<Promise<TreeNode>>();

  async run(): Promise<Snapshot> {
    return withPackWriter(this.repo, async (writer) => {
      this.writer = writer;
      try {
        return await this.archive();
      } catch (err) {
        this.failure ??= err;
        await Promise.allSettled([...this.inFlight]);
        throw err;
      } finally {
        this.emit.cancel();
      }
    });
  }

  private async archive(): Promise<Snapshot> {
    const started = Date.now();
    const hostname = this.opts.hostname ?? os.hostname();
    const parent = (await this.repo.listSnapshots())
      .reverse()
      .find((s) => usableParent(s) && s.source.kind === 'bucket' && s.source.name === this.opts.name);
    const versioned = await this.opts.objects.versioned();
    const stack: Frame[] = [{ name: '', rawPrefix: '', pending: [], prev: parent ? this.byName(await this.repo.loadTree(parent.tree)) : undefined, closed: new Set() }];
    const listStarted = new Date();
    this.dirTime = (BigInt(listStarted.getTime()) * 1_000_000n).toString();
    for await (const o of this.opts.objects.listObjects('')) {
      this.throwIfFailed();
      const raw = o.key.split('/');
      const parts = keyParts(o.key);
      // Leave directories the key is not in, then enter those it is in.
      while (stack.length > 1 && !o.key.startsWith((stack[stack.length - 1] as Frame).rawPrefix)) await this.closeFrame(stack);
      for (let depth = stack.length - 1; depth < parts.length - 1; depth++) {
        const top = stack[stack.length - 1] as Frame;
        const name = parts[depth] as string;
        const prevDir = top.prev?.get(name);
        // A directory is saved when the listing leaves it: its keys must come together.
        if (top.closed.has(name)) throw this.unordered(o.key);
        const prev = prevDir?.type === 'dir' && prevDir.subtree ? this.byName(await this.repo.loadTree(prevDir.subtree)) : undefined;
        stack.push({ name, rawPrefix: `${raw.slice(0, depth + 1).join('/')}/`, pending: [], prev, closed: new Set() });
      }
      const top = stack[stack.length - 1] as Frame;
      const fileName = parts[parts.length - 1] as string;
      const prev = [top.prev?.get(fileName), top.prev?.get(collidedName(fileName))].find((n) => n?.type === 'file' && n.object?.key === o.key);
      top.pending.push((await this.object(o, fileName, prev)).node);
    }
    const listEnded = new Date();
    while (stack.length > 1) await this.closeFrame(stack);
    const root = stack[0] as Frame;
    const rootTree = await this.saveDir(root);
    await this.writer.flush();
    this.throwIfFailed();
    this.summary.addedBytes = this.writer.stats.storedBytes;
    this.summary.durationMs = Date.now() - started;
    const point: BucketPoint = {
      location: this.opts.location,
      listStarted: listStarted.toISOString(),
      listEnded: listEnded.toISOString(),
      objects: this.point.objects,
      bytes: this.point.bytes,
      downloaded: this.point.downloaded,
      reused: this.point.reused,
      vanished: this.point.vanished,
      versioned,
      ...this.opts.extra,
    };
    const manifest: SnapshotManifest = {
      version: 1,
      // The listing's start: no object changed later than this is meant to be in it.
      time: (this.opts.time ?? listStarted).toISOString(),
      hostname,
      username: os.userInfo().username,
      paths: [this.opts.location],
      tags: this.opts.tags ?? [],
      excludes: [],
      tree: rootTree,
      ...(parent ? { parent: parent.id } : {}),
      source: { kind: 'bucket', name: this.opts.name },
      consistency: point as unknown as Record<string, unknown>,
      summary: this.summary,
      programVersion: PROGRAM_VERSION,
    };
    this.lock.assertHeld();
    const id = await this.repo.saveSnapshot(manifest);
    this.emit({ phase: 'done', files: this.doneFiles, bytes: this.doneBytes, errors: 0 }, true);
    return { ...manifest, id };
  }

  private unordered(key: string): LifeboatError {
    return new LifeboatError('FAILED', `${this.opts.location}: the listing is not grouped by prefix (${JSON.stringify(key)} came after other keys had left its folder)`, {
      hint: 'S3 and Azure list keys in ascending order, which keeps each folder together; this server does not, so it cannot be backed up as a bucket',
    });
  }

  private byName(tree: Tree): Map<string, TreeNode> {
    return new Map(tree.nodes.map((n) => [n.name, n]));
  }

  /** Pops the top directory and hands its node, once its entries settle, to the one below. */
  private async closeFrame(stack: Frame[]): Promise<void> {
    const frame = stack.pop() as Frame;
    const below = stack[stack.length - 1] as Frame;
    below.closed.add(frame.name);
    this.summary.dirs++;
    const node = this.saveDir(frame).then((subtree): TreeNode => ({ ...dirMeta(frame.name, this.dirTime), subtree }));
    node.catch(() => {}); // awaited when the directory below is saved
    below.pending.push(node);
  }

  /** Saves a directory's tree once every entry settled; a file named like a directory beside it takes its collided name. */
  private async saveDir(frame: Frame): Promise<string> {
    const nodes = (await Promise.all(frame.pending)).filter((n) => n !== VANISHED);
    const dirs = new Set(nodes.filter((n) => n.type === 'dir').map((n) => n.name));
    for (const n of nodes) if (n.type === 'file' && dirs.has(n.name)) n.name = collidedName(n.name);
    return this.repo.saveTree(this.writer, { nodes });
  }

  /**
   * Starts one object: reused from the parent when unchanged, else read and chunked
   * in the background. Resolves (to a promise of its node) once it holds a transfer
   * slot, which is what paces the listing. (A wrapper: a promise of a promise would collapse into one.)
   */
  private async object(o: ListedObject, name: string, prev: TreeNode | undefined): Promise<{ node: Promise<TreeNode> }> {
    if (prev?.object && prev.size === o.size && prev.object.etag === o.etag && prev.object.lastModified === o.lastModified && (prev.content ?? []).every((id) => this.repo.index.hasHex(id))) {
      this.summary.filesUnmodified++;
      this.counted(o.size);
      this.point.reused++;
      return { node: Promise.resolve({ ...prev, name }) };
    }
    const reserve = Math.min(o.size + 1, 2 * this.repo.config.chunker.max);
    await this.slots.acquire();
    await this.takeBudget(reserve);
    const node = this.download(o, name, prev).finally(() => {
      this.giveBudget(reserve);
      this.slots.release();
    });
    this.inFlight.add(node);
    node.then(
      () => this.inFlight.delete(node),
      () => this.inFlight.delete(node),
    );
    node.catch((err: unknown) => {
      this.failure ??= err;
    });
    return { node };
  }

  private async download(o: ListedObject, name: string, prev: TreeNode | undefined): Promise<TreeNode> {
    for (let attempt = 1; ; attempt++) {
      let opened;
      try {
        opened = await this.opts.objects.openObject(o.key);
      } catch (err) {
        if (isLifeboatError(err, 'NOT_FOUND')) {
          // Deleted since it was listed: a bucket has no atomic snapshot (docs/bucket.md).
          this.point.vanished++;
          return VANISHED;
        }
        throw err;
      }
      try {
        let read = 0;
        const content = await storeChunks(this.repo, this.writer, opened.body, (n) => (read += n), opened.size);
        if (read !== opened.size) throw new LifeboatError('STORE_UNAVAILABLE', `${o.key}: read ${read} of ${opened.size} bytes`);
        if (prev?.type === 'file') this.summary.filesChanged++;
        else this.summary.filesNew++;
        this.summary.processedBytes += read;
        this.point.downloaded++;
        this.counted(read);
        const ns = (BigInt(Date.parse(opened.lastModified)) * 1_000_000n).toString();
        return {
          name,
          type: 'file',
          mode: 0o600,
          uid: OWNER.uid,
          gid: OWNER.gid,
          mtime: ns,
          ctime: ns,
          inode: '0',
          dev: '0',
          nlink: 1,
          size: read,
          content,
          object: {
            key: o.key,
            etag: opened.etag,
            lastModified: opened.lastModified,
            ...(opened.contentType ? { contentType: opened.contentType } : {}),
            ...(Object.keys(opened.metadata).length ? { metadata: opened.metadata } : {}),
            ...(opened.versionId ?? o.versionId ? { versionId: (opened.versionId ?? o.versionId) as string } : {}),
          },
        };
      } catch (err) {
        opened.body.destroy();
        // A pack the repository refused is final; a body that broke off is read again.
        const transient = isLifeboatError(err, 'STORE_UNAVAILABLE') || !(err instanceof LifeboatError);
        if (!transient || attempt >= OBJECT_ATTEMPTS || this.failure !== undefined) throw err;
      }
    }
  }

  private counted(bytes: number): void {
    this.point.objects++;
    this.point.bytes += bytes;
    this.summary.totalFiles++;
    this.summary.totalBytes += bytes;
    this.doneFiles++;
    this.doneBytes += bytes;
    this.emit({ phase: 'backup', files: this.doneFiles, bytes: this.doneBytes, errors: 0 });
  }

  private async takeBudget(n: number): Promise<void> {
    while (this.budget < n) await new Promise<void>((resolve) => this.budgetWaiters.push(resolve));
    this.budget -= n;
  }

  private giveBudget(n: number): void {
    this.budget += n;
    for (const w of this.budgetWaiters.splice(0)) w();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

/** Who a restored directory of objects belongs to: whoever ran the backup (an object has no owner). */
const OWNER = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };

function dirMeta(name: string, ns = '0'): TreeNode {
  return { name, type: 'dir', mode: 0o700, uid: OWNER.uid, gid: OWNER.gid, mtime: ns, ctime: ns, inode: '0', dev: '0', nlink: 2 };
}

/** A marker for an object deleted between listing and reading; saveDir leaves it out. */
const VANISHED: TreeNode = { ...dirMeta(''), type: 'fifo' };
