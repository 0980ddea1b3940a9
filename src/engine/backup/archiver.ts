/**
 * The Archiver turns directory trees into a snapshot. It walks depth-first in name
 * order, reuses the parent snapshot's content for files whose size, mtime, ctime and
 * inode are unchanged, sends everything else to the chunk workers in batches, and
 * saves one tree blob per directory once its entries are done.
 *
 * Memory stays bounded: the walk waits for a free worker slot before queueing more
 * files, so only the directories with files in flight are held open.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError, errno } from '../../errors.js';
import { exportKey } from '../../codec/crypto.js';
import { decodeEntries } from '../../repo/pack/pack.js';
import type { Repository } from '../../repo/repository.js';
import { PROGRAM_VERSION } from '../../repo/repository.js';
import type { PackWriter } from '../../repo/pack/pack-writer.js';
import { checkSnapshotTime, emptySummary, usableParent, type Snapshot, type SnapshotManifest, type SnapshotSummary } from '../../repo/snapshot/snapshot.js';
import type { Tree, TreeNode } from '../../repo/snapshot/tree.js';
import { nodeFromStat, sameFile } from '../../sources/files/metadata.js';
import { PathMatcher } from '../../util/glob.js';
import { Semaphore } from '../../util/limit.js';
import { ChunkPool } from '../workers/chunk-pool.js';
import type { FileResult } from '../workers/protocol.js';
import { realLater, throttleProgress, type ItemError, type ProgressFn } from '../progress.js';
import { acquireLock, type HeldLock } from '../../repo/lock.js';
import { indexCacheDir, WriteOnlyCache } from './write-cache.js';
import { SpillDir, withPackWriter } from '../../repo/pack/spill.js';

export interface BackupOptions {
  paths: string[];
  tags?: string[];
  hostname?: string;
  excludes?: string[];
  /** Snapshot time (imports, tests); default now. */
  time?: Date;
  /** Explicit parent snapshot; default: the newest with the same host and paths. */
  parent?: Snapshot | null;
  source?: { kind: string; name?: string };
  consistency?: Record<string, unknown>;
  /**
   * Called after every file is stored and before the snapshot is written; what it
   * returns becomes the snapshot's consistency point (a database's stop LSN, say).
   */
  beforeSnapshot?: () => Promise<Record<string, unknown>>;
  /** Files that vanish during the backup are not errors (a live database's temp files). */
  ignoreVanished?: boolean;
  threads?: number;
  onProgress?: ProgressFn;
}

/**
 * Where a backup finds what it compares against: the parent snapshot and its trees.
 * Normally the repository; a write-only client, which cannot open either, uses its
 * local cache (write-cache.ts). Deduplication goes through `repo.index` either way: a
 * write-only client fills it from the same cache.
 */
export interface ParentSource {
  /** The newest snapshot usable as the parent of these paths, or undefined. */
  findParent(hostname: string, paths: string[]): Promise<Pick<Snapshot, 'id' | 'tree'> | undefined>;
  /** A tree of the parent; raises when it cannot be read (the backup fails). */
  loadTree(id: string): Promise<Tree>;
  /** Told once per directory of every tree this run saves. */
  treeSaved(id: string, tree: Tree): Promise<void>;
}

/** The normal source: the repository's own snapshots and trees. */
export function repoParents(repo: Pick<Repository, 'listSnapshots' | 'loadTree'>): ParentSource {
  return {
    async findParent(hostname, paths) {
      const key = JSON.stringify(paths);
      const all = await repo.listSnapshots();
      return all.reverse().find((s) => usableParent(s) && s.hostname === hostname && JSON.stringify(s.paths) === key);
    },
    loadTree: (id) => repo.loadTree(id),
    treeSaved: async () => {},
  };
}

export interface BackupResult {
  snapshot: Snapshot;
  errors: ItemError[];
}

/** The parent snapshot's tree of a directory: its id and its entries as stored. */
interface PrevTree {
  id: string;
  nodes: TreeNode[];
}

/**
 * Whether two entry lists encode to the same tree bytes: the same entries in the same
 * order, each with the same keys in the same order and equal values (arrays of ids
 * element by element). Anything else, a nested object included, counts as different:
 * a false "different" only costs the encoding and the hash it would have skipped.
 */
export function sameNodes(a: readonly TreeNode[], b: readonly TreeNode[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameNode(a[i] as TreeNode, b[i] as TreeNode)) return false;
  return true;
}

/**
 * The node of an unchanged file (sameFile, its content in the index): the parent's node
 * itself when nothing else changed either (owner, mode, links), so no copy is made and
 * sameNodes finds it at once; else `node` (the walk's own, fresh from lstat) completed
 * with the parent's content ids.
 *
 * Nodes are completed in place, never copied with a spread: V8 gives every object made
 * by `{ ...node, key: value }` a hidden class of its own (measured: 466 classes for 500
 * such nodes, against 1 when the key is set on the node), and a first backup of 53 000
 * files held ~7 MB of them, besides making every access to those nodes polymorphic.
 */
export function unchangedFile(node: TreeNode, prev: TreeNode): TreeNode {
  if (sameNode(node, prev, 'content')) return prev;
  node.content = prev.content ?? [];
  return node;
}

/**
 * One entry of sameNodes. With `last`, `b` may have that one key more, as its last
 * key, and `a` stands for `b` with it set from `b` (an unchanged file's node from
 * lstat, before its content ids are taken from the parent's).
 */
function sameNode(a: TreeNode, b: TreeNode, last?: keyof TreeNode): boolean {
  if (a === b) return true;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (last !== undefined && kb.length === ka.length + 1 && kb[ka.length] === last) kb.pop();
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i] as keyof TreeNode;
    if (k !== kb[i]) return false;
    const va = a[k];
    const vb = b[k];
    if (va === vb && va !== undefined) continue;
    if (!Array.isArray(va) || !Array.isArray(vb) || va.length !== vb.length) return false;
    for (let j = 0; j < va.length; j++) if (va[j] !== vb[j] || typeof va[j] !== 'string') return false;
  }
  return true;
}

/** Files below this size travel in shared batches; larger ones get a job each. */
const BATCH_FILES = 128;
const BATCH_BYTES = 8 * 1024 * 1024;
/**
 * Files larger than this are cut into parts at these fixed offsets so several
 * workers chunk one file at once (a database's 1 GiB relation files would otherwise
 * keep one core busy and the other idle). The fixed cut costs nothing for files
 * updated in place, the common case for databases; after an insertion elsewhere,
 * content-defined chunking falls back into step within a chunk or two.
 */
export const PART_BYTES = 64 * 1024 * 1024;

/**
 * One worker per core (at least two). Each worker is an isolate with its own buffers
 * (a backup's read window and pack, a restore's pack ranges): ~45-60 MB of peak RSS
 * apiece. One more worker than cores, the earlier default, cost that much again and
 * was no faster on two cores: the main thread and the kernel's reads and writes keep
 * the cores busy while a worker waits (docs/performance.md, "Memory").
 */
export function defaultThreads(): number {
  return Math.max(2, os.availableParallelism());
}

export async function backup(repo: Repository, opts: BackupOptions): Promise<BackupResult> {
  if (opts.paths.length === 0) throw new LifeboatError('USAGE', 'nothing to back up', { hint: 'name at least one path' });
  if (opts.time) checkSnapshotTime(opts.time);
  const lock = await acquireLock(repo.store, 'shared', `backup ${opts.paths.join(' ')}`);
  try {
    if (repo.role === 'write') {
      // A write-only key reads nothing sealed (docs/keys.md): no index, no orphan
      // packs (their headers are sealed under keys it lacks), no snapshots.
      const cache = await WriteOnlyCache.open(repo);
      // Stored before anything is sealed with the session key, so whatever this run
      // leaves behind, even a crash's orphan packs, stays readable by full keys.
      await repo.startSession();
      const result = await new Archiver(repo, opts, cache, lock).run().catch((err: unknown) => {
        repo.resetIndex();
        throw err;
      });
      await cache.finish(result.snapshot);
      return result;
    }
    repo.indexCacheDir ??= indexCacheDir(repo);
    await repo.loadIndex();
    await repo.indexOrphanPacks();
    const archiver = new Archiver(repo, opts, repoParents(repo), lock);
    return await archiver.run().catch((err: unknown) => {
      repo.resetIndex();
      throw err;
    });
  } finally {
    repo.releaseDiskIndex();
    await lock.release();
  }
}

/**
 * An entry's node: the node itself when it is final at once (an unchanged file, a
 * symlink, a skipped entry), else a promise that settles when its content is stored.
 * Most entries of a backup are final at once; giving them no promise of their own
 * keeps tens of thousands of promises, and the turns of the microtask queue to settle
 * them, off an unchanged backup's walk.
 */
type Settling = TreeNode | undefined | Promise<TreeNode | undefined>;

/** An entry that has been queued. (A wrapper, because a promise of a promise would collapse into one.) */
interface Queued {
  node: Settling;
}

const SKIPPED: Queued = { node: undefined };

/**
 * Marks a promise the walk awaits only later (a file's parts, an entry's node) as
 * handled now. Once the pool fails, each rejects at once while the walk goes on for
 * many more turns of the event loop; Node would count the rejection as unhandled and
 * end the process with a stack trace instead of the backup's own error (issue 19's
 * NO_SPACE test, CI at 5d0b60b). The rejection itself still reaches whoever awaits it.
 */
function awaitedLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

interface Pending {
  path: string;
  range?: { offset: number; length: number };
  /** What the scan's lstat saw; the worker refuses the file if it is no longer that. */
  expect?: { dev: string; ino: string };
  resolve: (r: FileResult) => void;
  reject: (err: unknown) => void;
}

class Archiver {
  private writer!: PackWriter;
  /** Made by run(), once the spill directory the workers write packs to exists. */
  private pool!: ChunkPool;
  private readonly slots: Semaphore;
  private readonly excludes: PathMatcher;
  private readonly reserved = new Set<string>();
  private readonly errors: ItemError[] = [];
  private batch: Pending[] = [];
  private batchBytes = 0;
  private readonly summary: SnapshotSummary = emptySummary();
  /** How many of the paths asked for were found (intermediate directories do not count). */
  private pathsFound = 0;
  private doneFiles = 0;
  private doneBytes = 0;
  private readonly emit: ReturnType<typeof throttleProgress>;

  constructor(
    private readonly repo: Repository,
    private readonly opts: BackupOptions,
    private readonly parents: ParentSource,
    private readonly lock: Pick<HeldLock, 'assertHeld'>,
  ) {
    this.emit = throttleProgress(opts.onProgress, 100, Date.now, realLater);
    this.excludes = new PathMatcher(opts.excludes ?? []);
    this.slots = new Semaphore((opts.threads ?? defaultThreads()) * 2);
  }

  /**
   * The workers' pool, writing packs in `spill`. A pack is handed over as a file and
   * stored from it (the file is removed once stored, or once its upload failed).
   */
  private startPool(spill: SpillDir): ChunkPool {
    const { repo } = this;
    return new ChunkPool(
      {
        key: exportKey(repo.key),
        chunker: repo.config.chunker,
        compression: repo.compression,
        spillDir: spill.path,
      },
      this.opts.threads ?? defaultThreads(),
      {
        need: (ids) => this.need(ids),
        acceptPack: async (pack) => {
          // (A pack refused here fails the backup; its file goes with the spill directory.)
          const file = spill.file(pack.file, pack.size);
          const entries = decodeEntries(Buffer.from(pack.entries), 'worker pack');
          await this.writer.storePack(Buffer.from(pack.packId), file, entries, true);
          for (const e of entries) this.reserved.delete(e.id.toString('hex'));
        },
        discardPack: (pack) => spill.discard(pack.file),
      },
    );
  }

  /** Marks which ids are new; reserves them so a second copy in flight is not sealed twice. */
  private need(ids: Uint8Array): Uint8Array {
    const n = ids.length / 32;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const id = ids.subarray(i * 32, i * 32 + 32);
      if (this.repo.index.has(id)) continue;
      const hex = Buffer.from(id).toString('hex');
      if (this.reserved.has(hex)) continue;
      this.reserved.add(hex);
      out[i] = 1;
    }
    return out;
  }

  async run(): Promise<BackupResult> {
    const started = Date.now();
    const paths = [...new Set(this.opts.paths.map((p) => path.resolve(p)))].sort();
    const hostname = this.opts.hostname ?? os.hostname();
    const parent = this.opts.parent === undefined ? await this.parents.findParent(hostname, paths) : this.opts.parent;
    // Tree packs are written to files in the spill directory too, like the workers' packs.
    return withPackWriter(this.repo, async (writer, spill) => {
      this.writer = writer;
      this.pool = this.startPool(spill);
      try {
        const rootTree = parent ? await this.parents.loadTree(parent.tree) : undefined;
        const root = await this.buildVirtualDir('/', paths, rootTree);
        await this.flushBatch();
        const rootNode = await root.node;
        await this.pool.flush();
        await this.writer.flush();
        this.summary.addedBytes = this.writer.stats.storedBytes;
        this.summary.errors = this.errors.length;
        this.summary.durationMs = Date.now() - started;
        if (!rootNode || this.pathsFound === 0) {
          throw new LifeboatError('FAILED', 'none of the given paths could be read; no snapshot was saved', {
            hint: this.errors[0]?.message ?? 'check the paths',
          });
        }
        const consistency = this.opts.beforeSnapshot ? await this.opts.beforeSnapshot() : this.opts.consistency;
        const manifest: SnapshotManifest = {
          version: 1,
          time: (this.opts.time ?? new Date()).toISOString(),
          hostname,
          username: os.userInfo().username,
          paths,
          tags: this.opts.tags ?? [],
          excludes: this.opts.excludes ?? [],
          tree: rootNode.subtree as string,
          ...(parent ? { parent: parent.id } : {}),
          source: this.opts.source ?? { kind: 'files' },
          ...(consistency ? { consistency } : {}),
          summary: this.summary,
          programVersion: PROGRAM_VERSION,
        };
        this.lock.assertHeld();
        const id = await this.repo.saveSnapshot(manifest);
        this.report(true);
        return { snapshot: { ...manifest, id }, errors: this.errors };
      } finally {
        this.emit.cancel();
        // Before the writer settles: after a failure, workers may still hand it packs.
        await this.pool.close();
      }
    });
  }

  /**
   * The snapshot's root mirrors the filesystem: intermediate directories leading to
   * the backed-up paths are recorded with their metadata but only the entries on the
   * way (as restic does), so restore recreates /a/b/c below the target.
   */
  private async buildVirtualDir(dir: string, paths: string[], parentTree: Tree | undefined): Promise<Queued> {
    const children = new Map<string, string[]>();
    const leaves = new Set<string>();
    for (const p of paths) {
      const rel = path.relative(dir, p);
      const [head, ...rest] = rel.split(path.sep);
      if (!head) continue;
      if (rest.length === 0) leaves.add(head);
      else children.set(head, [...(children.get(head) ?? []), p]);
    }
    const parentNodes = new Map((parentTree?.nodes ?? []).map((n) => [n.name, n]));
    const pending: Settling[] = [];
    for (const name of [...new Set([...leaves, ...children.keys()])].sort()) {
      const full = path.join(dir, name);
      const prev = parentNodes.get(name);
      if (leaves.has(name)) {
        pending.push(
          awaitedLater(
            Promise.resolve((await this.entry(full, name, prev)).node).then((n) => {
              if (n) this.pathsFound++;
              return n;
            }),
          ),
        );
        continue;
      }
      const st = this.lstat(full);
      if (!st) continue;
      const prevTree = prev?.type === 'dir' && prev.subtree ? await this.parents.loadTree(prev.subtree) : undefined;
      const sub = await this.buildVirtualDir(full, children.get(name) ?? [], prevTree);
      pending.push(
        awaitedLater(
          Promise.resolve(sub.node).then((n) => {
            if (!n) return undefined;
            const dirNode = nodeFromStat(name, st);
            dirNode.subtree = n.subtree as string; // in place, not a spread: see unchangedFile
            return dirNode;
          }),
        ),
      );
    }
    return this.finishDir(dir === '/' ? '' : path.basename(dir), undefined, pending);
  }

  /**
   * Metadata calls are synchronous on purpose: for cached inodes lstatSync costs a few
   * microseconds, the promise version 3-4x more in thread-pool hand-offs. The walk
   * yields to the event loop every few milliseconds so workers' questions are answered.
   */
  private lstat(full: string): fs.BigIntStats | undefined {
    try {
      return fs.lstatSync(full, { bigint: true });
    } catch (err) {
      this.error(full, err);
      return undefined;
    }
  }

  private lastYield = performance.now();
  /** Whether the walk has run long enough to let the event loop in (checked per entry, without a promise). */
  private yieldDue(): boolean {
    return performance.now() - this.lastYield >= 4;
  }
  private async yieldNow(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    this.lastYield = performance.now();
  }

  /**
   * Starts one entry: returns it queued, or a promise of that where queueing has to
   * wait (a directory's walk, a file waiting for a batch slot).
   */
  private entry(full: string, name: string, prev: TreeNode | undefined): Queued | Promise<Queued> {
    if (this.excludes.matches(full)) return SKIPPED;
    const st = this.lstat(full);
    if (!st) return SKIPPED;
    const node = nodeFromStat(name, st);
    switch (node.type) {
      case 'dir':
        return this.walkDir(full, node, prev?.type === 'dir' ? prev.subtree : undefined);
      case 'file':
        return this.saveFile(full, node, prev);
      case 'symlink':
        try {
          node.target = fs.readlinkSync(full);
        } catch (err) {
          this.error(full, err);
          return SKIPPED;
        }
        return { node };
      default:
        return { node };
    }
  }

  private async walkDir(full: string, node: TreeNode, prevSubtree: string | undefined): Promise<Queued> {
    let names: string[];
    try {
      names = fs.readdirSync(full).sort();
    } catch (err) {
      this.error(full, err);
      return SKIPPED;
    }
    let prev: PrevTree | undefined;
    let prevNodes: Map<string, TreeNode> | undefined;
    if (prevSubtree) {
      prev = { id: prevSubtree, nodes: (await this.parents.loadTree(prevSubtree)).nodes };
      prevNodes = new Map(prev.nodes.map((n) => [n.name, n]));
    }
    const pending: Settling[] = [];
    for (const name of names) {
      if (this.yieldDue()) await this.yieldNow();
      const queued = this.entry(path.join(full, name), name, prevNodes?.get(name));
      pending.push((queued instanceof Promise ? await queued : queued).node);
    }
    this.summary.dirs++;
    return this.finishDir(node.name, node, pending, prev);
  }

  private finishDir(
    name: string,
    node: TreeNode | undefined,
    pending: Settling[],
    prev?: PrevTree,
  ): Queued {
    return {
      node: awaitedLater((async () => {
      const nodes = (pending.some((p) => p instanceof Promise) ? await Promise.all(pending) : pending).filter((n): n is TreeNode => n !== undefined);
      // Entry for entry what the parent's tree holds (and that tree is in the index):
      // it would encode to the same bytes, so it is that tree, with no encoding and no hash.
      const same = prev !== undefined && sameNodes(nodes, prev.nodes) && this.repo.index.hasHex(prev.id);
      const subtree = same ? prev.id : await this.repo.saveTree(this.writer, { nodes });
      await this.parents.treeSaved(subtree, { nodes });
      if (!node) return { name, type: 'dir', subtree } as TreeNode;
      node.subtree = subtree; // in place, not a spread: see unchangedFile
      return node;
      })()),
    };
  }

  private saveFile(full: string, node: TreeNode, prev: TreeNode | undefined): Queued | Promise<Queued> {
    this.summary.totalFiles++;
    this.summary.totalBytes += node.size ?? 0;
    if (prev && sameFile(prev, node) && (prev.content ?? []).every((id) => this.repo.index.hasHex(id))) {
      this.summary.filesUnmodified++;
      this.progressed(node.size ?? 0);
      return { node: unchangedFile(node, prev) };
    }
    if (prev?.type === 'file') this.summary.filesChanged++;
    else this.summary.filesNew++;
    return this.readFile(full, node);
  }

  /** Queues a new or changed file's parts for the chunk workers. */
  private async readFile(full: string, node: TreeNode): Promise<Queued> {
    const size = node.size ?? 0;
    const parts: Array<Promise<FileResult>> = [];
    for (let offset = 0; offset === 0 || offset < size; offset += PART_BYTES) {
      // The last part reads to the end, however far the file has grown since lstat.
      const range = size > PART_BYTES ? { offset, length: offset + PART_BYTES >= size ? Number.MAX_SAFE_INTEGER - offset : PART_BYTES } : undefined;
      parts.push(
        awaitedLater(
          new Promise<FileResult>((resolve, reject) => {
            this.batch.push({ path: full, ...(range ? { range } : {}), expect: { dev: node.dev, ino: node.inode }, resolve, reject });
          }),
        ),
      );
      this.batchBytes += Math.min(PART_BYTES, size);
      if (this.batch.length >= BATCH_FILES || this.batchBytes >= BATCH_BYTES) await this.flushBatch();
    }
    const result = Promise.all(parts).then((rs): FileResult => {
      const failed = rs.find((r) => r.error !== undefined);
      if (failed) return failed;
      return { ids: Buffer.concat(rs.map((r) => r.ids)), size: rs.reduce((n, r) => n + r.size, 0) };
    });
    const done = awaitedLater(result.then((r) => {
      if (r.error !== undefined) {
        if (!(this.opts.ignoreVanished && r.errorCode === 'ENOENT')) this.errors.push({ path: full, message: r.error });
        return undefined;
      }
      this.summary.processedBytes += r.size;
      this.progressed(r.size);
      const content: string[] = [];
      for (let i = 0; i < r.ids.length; i += 32) content.push(Buffer.from(r.ids.subarray(i, i + 32)).toString('hex'));
      node.size = r.size; // in place, not a spread: see unchangedFile
      node.content = content;
      return node;
    }));
    return { node: done };
  }

  private async flushBatch(): Promise<void> {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    await this.slots.acquire();
    const job = this.pool.run(batch.map((b) => ({ path: b.path, ...(b.range ? { range: b.range } : {}), ...(b.expect ? { expect: b.expect } : {}) })));
    job.then(
      (results) => batch.forEach((b, i) => b.resolve(results[i] as FileResult)),
      // The pool failed (a worker crashed, the store refused a pack): the whole
      // backup fails; no snapshot is written over missing data.
      (err: unknown) => batch.forEach((b) => b.reject(err)),
    ).finally(() => this.slots.release());
  }

  private error(p: string, err: unknown): void {
    const code = errno(err);
    if (this.opts.ignoreVanished && code === 'ENOENT') return;
    const msg = err instanceof Error ? err.message : String(err);
    this.errors.push({ path: p, message: code ? msg : `${p}: ${msg}` });
  }

  private progressed(bytes: number): void {
    this.doneFiles++;
    this.doneBytes += bytes;
    this.report(false);
  }

  private report(final: boolean): void {
    this.emit({ phase: final ? 'done' : 'backup', files: this.doneFiles, bytes: this.doneBytes, errors: this.errors.length }, final);
  }
}
