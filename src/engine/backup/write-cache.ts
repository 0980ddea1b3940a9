/**
 * The local cache a write-only client backs up with (docs/keys.md, "Write-only
 * slots"). Such a client holds no key that opens the repository's index, snapshots or
 * trees, so it never reads them; it deduplicates against the blobs *it* stored and
 * detects changes against the trees of *its* last snapshot of the same paths, both
 * kept here:
 *
 *   <cache dir>/<repository id>/blobs      one line per blob: id, pack, offset, length, raw length, type
 *                               parents.json  {"<host>\0<paths>": {id, tree, time}}
 *                               trees/<id>    the tree blob's plaintext (encodeTree)
 *
 * The cache dir is LIFEBOAT_CACHE_DIR, else $XDG_CACHE_HOME/lifeboat, else
 * ~/.cache/lifeboat. Trees are plaintext: they hold names and metadata of files this
 * host read anyway. Blob entries whose pack is no longer in data/ (pruned, re-sealed)
 * are dropped when a run starts, so nothing deduplicates against deleted data; an
 * unchanged file whose blobs were dropped is read again. The cache is written after
 * the snapshot is stored: a run that fails leaves the previous cache, and its packs are
 * only not reused.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Repository } from '../../repo/repository.js';
import { packIdFromKey } from '../../repo/format.js';
import { BLOB_DATA, BLOB_TREE } from '../../repo/format.js';
import { decodeTree, encodeTree, type Tree } from '../../repo/snapshot/tree.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { cacheRoot } from '../../util/cache-root.js';
import type { ParentSource } from './archiver.js';

interface ParentEntry {
  id: string;
  tree: string;
  time: string;
}

/** Where a large repository's blob index is kept on disk (repo/index/index-cache.ts). */
export function indexCacheDir(repo: Pick<Repository, 'config'>, root = cacheRoot()): string {
  return path.join(root, repo.config.id, 'index');
}

const parentKey = (hostname: string, paths: string[]) => `${hostname}\0${JSON.stringify(paths)}`;

export class WriteOnlyCache implements ParentSource {
  private parents: Record<string, ParentEntry> = {};

  private constructor(
    private readonly repo: Repository,
    readonly dir: string,
  ) {}

  /**
   * Opens the cache of `repo` and fills `repo.index` with the entries of blobs this
   * host stored in packs that are still in data/. Reads only the data/ listing.
   */
  static async open(repo: Repository, root = cacheRoot()): Promise<WriteOnlyCache> {
    const c = new WriteOnlyCache(repo, path.join(root, repo.config.id));
    await fs.mkdir(path.join(c.dir, 'trees'), { recursive: true, mode: 0o700 });
    try {
      c.parents = JSON.parse(await fs.readFile(path.join(c.dir, 'parents.json'), 'utf8')) as Record<string, ParentEntry>;
    } catch {
      c.parents = {}; // missing or damaged: the next run reads every file
    }
    const present = new Set<string>();
    for await (const o of repo.store.list('data/')) present.add(packIdFromKey(o.key));
    let text = '';
    try {
      text = await fs.readFile(path.join(c.dir, 'blobs'), 'utf8');
    } catch {
      // no cache yet
    }
    for (const line of text.split('\n')) {
      const [id, pack, offset, length, rawLength, type] = line.split(' ');
      if (!id || !pack || !present.has(pack) || id.length !== 64) continue;
      const handle = repo.index.packHandle(pack) ?? repo.index.addPack(Buffer.from(pack, 'hex'));
      repo.index.add(Buffer.from(id, 'hex'), {
        packIndex: handle,
        offset: Number(offset),
        length: Number(length),
        rawLength: Number(rawLength),
        type: Number(type) === BLOB_TREE ? BLOB_TREE : BLOB_DATA,
      });
    }
    return c;
  }

  async findParent(hostname: string, paths: string[]): Promise<Pick<Snapshot, 'id' | 'tree'> | undefined> {
    const p = this.parents[parentKey(hostname, paths)];
    if (!p || !(await this.hasTree(p.tree))) return undefined;
    return { id: p.id, tree: p.tree };
  }

  private async hasTree(id: string): Promise<boolean> {
    return fs.stat(path.join(this.dir, 'trees', id)).then(() => true, () => false);
  }

  async loadTree(id: string): Promise<Tree> {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`tree id ${id} is not an id`);
    return decodeTree(await fs.readFile(path.join(this.dir, 'trees', id)), `cached tree ${id.slice(0, 16)}`);
  }

  async treeSaved(id: string, tree: Tree): Promise<void> {
    const file = path.join(this.dir, 'trees', id);
    if (await this.hasTree(id)) return;
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, encodeTree(tree), { mode: 0o600 });
    await fs.rename(tmp, file);
  }

  /**
   * After the snapshot is stored: records it as the parent of its paths, writes every
   * blob the index now holds (cached ones and this run's), and deletes trees no
   * recorded parent reaches.
   */
  async finish(snapshot: Snapshot): Promise<void> {
    this.parents[parentKey(snapshot.hostname, snapshot.paths)] = { id: snapshot.id, tree: snapshot.tree, time: snapshot.time };
    const lines: string[] = [];
    this.repo.index.forEach((id, loc) => {
      lines.push(`${id.toString('hex')} ${this.repo.index.packId(loc.packIndex).toString('hex')} ${loc.offset} ${loc.length} ${loc.rawLength} ${loc.type}`);
    });
    await writeAtomic(path.join(this.dir, 'blobs'), lines.join('\n') + '\n');
    await writeAtomic(path.join(this.dir, 'parents.json'), JSON.stringify(this.parents));
    const reachable = new Set<string>();
    const walk = async (id: string): Promise<void> => {
      if (reachable.has(id)) return;
      reachable.add(id);
      let tree: Tree;
      try {
        tree = await this.loadTree(id);
      } catch {
        return;
      }
      for (const n of tree.nodes) if (n.type === 'dir' && n.subtree) await walk(n.subtree);
    };
    for (const p of Object.values(this.parents)) await walk(p.tree);
    for (const f of await fs.readdir(path.join(this.dir, 'trees'))) {
      if (!reachable.has(f)) await fs.rm(path.join(this.dir, 'trees', f), { force: true });
    }
  }
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, text, { mode: 0o600 });
  await fs.rename(tmp, file);
}
