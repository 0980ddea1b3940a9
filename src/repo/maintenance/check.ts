/**
 * check: proves the repository is whole. The structural pass loads every index and
 * snapshot, walks every tree and confirms each referenced blob is indexed and each
 * indexed pack exists. --read-data (or a subset of packs) also downloads packs,
 * confirms each one's SHA-256 name, and authenticates and re-identifies every blob.
 */
import { createHash } from 'node:crypto';
import { isLifeboatError } from '../../errors.js';
import { blobId, seal, unseal } from '../../codec/crypto.js';
import { listAll } from '../../storage/store.js';
import { mapLimit } from '../../util/limit.js';
import { BLOB_TREE, keys, packIdFromKey } from '../format.js';
import { MAX_PACK_LIST, MAX_TREE_BLOB, dataBlobLimit } from '../limits.js';
import { acquireLock } from '../lock.js';
import { parsePackHeader } from '../pack/pack.js';
import type { Repository } from '../repository.js';
import type { ProgressFn } from '../../engine/progress.js';

export interface CheckOptions {
  readData?: boolean;
  /** Fraction of packs (0..1] to read when not reading all. */
  readDataSubset?: number;
  onProgress?: ProgressFn;
}

export interface CheckProblem {
  kind: 'index' | 'snapshot' | 'tree' | 'missing-blob' | 'missing-pack' | 'pack';
  message: string;
}

export interface CheckResult {
  ok: boolean;
  snapshots: number;
  trees: number;
  packs: number;
  packsRead: number;
  unindexedPacks: number;
  problems: CheckProblem[];
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function check(repo: Repository, opts: CheckOptions = {}): Promise<CheckResult> {
  const lock = await acquireLock(repo.store, 'shared', 'check');
  try {
    return await runCheck(repo, opts);
  } finally {
    await lock.release();
  }
}

async function runCheck(repo: Repository, opts: CheckOptions): Promise<CheckResult> {
  const problems: CheckProblem[] = [];
  for (const f of await listAll(repo.store, 'index/')) {
    try {
      for (const p of await repo.readIndexFile(f.key)) repo.addToIndex(p);
    } catch (err) {
      problems.push({ kind: 'index', message: `${f.key}: ${describe(err)}` });
    }
  }

  const stored = new Map<string, number>();
  for await (const o of repo.store.list('data/')) stored.set(packIdFromKey(o.key), o.size);
  const indexedPacks = new Set<string>();
  for (let i = 0; i < repo.index.packCount; i++) {
    const hex = repo.index.packId(i).toString('hex');
    indexedPacks.add(hex);
    if (!stored.has(hex)) problems.push({ kind: 'missing-pack', message: `pack ${hex} is indexed but missing from the store` });
  }
  const unindexedPacks = [...stored.keys()].filter((id) => !indexedPacks.has(id)).length;

  // Structure: every snapshot's trees decode and every blob they name is indexed.
  const snapshots = await listAll(repo.store, 'snapshots/');
  const seenTrees = new Set<string>();
  const walk = async (treeId: string, where: string): Promise<void> => {
    if (seenTrees.has(treeId)) return;
    seenTrees.add(treeId);
    let tree;
    try {
      tree = await repo.loadTree(treeId);
    } catch (err) {
      problems.push({ kind: 'tree', message: `tree ${treeId.slice(0, 16)} (${where}): ${describe(err)}` });
      return;
    }
    for (const n of tree.nodes) {
      for (const id of n.content ?? []) {
        if (!repo.index.has(Buffer.from(id, 'hex'))) {
          problems.push({ kind: 'missing-blob', message: `${where}/${n.name}: data blob ${id.slice(0, 16)} is not in any pack` });
        }
      }
      if (n.subtree) await walk(n.subtree, `${where}/${n.name}`);
    }
  };
  for (const s of snapshots) {
    const id = s.key.slice('snapshots/'.length);
    try {
      const snap = await repo.loadSnapshot(id);
      await walk(snap.tree, `snapshot ${id.slice(0, 8)}:`);
    } catch (err) {
      problems.push({ kind: 'snapshot', message: `snapshot ${id.slice(0, 8)}: ${describe(err)}` });
    }
  }

  let packsRead = 0;
  if (opts.readData || opts.readDataSubset !== undefined) {
    let ids = [...stored.keys()].filter((id) => indexedPacks.has(id));
    const verified = await loadVerified(repo);
    if (!opts.readData && opts.readDataSubset !== undefined) {
      // The least recently verified first (never verified before all), so that repeated
      // subsets cover the whole repository before any pack is read twice.
      const shuffled = ids.map((id) => ({ id, at: verified.get(id) ?? 0, r: Math.random() }));
      shuffled.sort((a, b) => a.at - b.at || a.r - b.r);
      ids = shuffled.slice(0, Math.ceil(ids.length * opts.readDataSubset)).map((x) => x.id);
    }
    const total = ids.length;
    await mapLimit(ids, 2, async (id) => {
      const problem = await readPack(repo, id);
      if (problem) problems.push({ kind: 'pack', message: problem });
      else verified.set(id, Date.now());
      packsRead++;
      opts.onProgress?.({ phase: 'check', files: packsRead, bytes: 0, totalFiles: total, errors: problems.length });
    });
    // Packs gone since (pruned) are forgotten; an append-only client cannot record.
    for (const id of verified.keys()) if (!stored.has(id)) verified.delete(id);
    if (!repo.appendOnly) await saveVerified(repo, verified);
  }

  return {
    ok: problems.length === 0,
    snapshots: snapshots.length,
    trees: seenTrees.size,
    packs: stored.size,
    packsRead,
    unindexedPacks,
    problems,
  };
}

/** Reads one pack fully; returns a one-line problem naming the pack, or undefined. */
async function readPack(repo: Repository, id: string): Promise<string | undefined> {
  const key = keys.pack(id);
  let data: Uint8Array;
  try {
    data = await repo.store.get(key);
  } catch (err) {
    return `pack ${id}: ${describe(err)}`;
  }
  const actual = createHash('sha256').update(data).digest('hex');
  if (actual !== id) return `pack ${id}: content does not match its name (sha256 ${actual.slice(0, 16)}…): damaged`;
  try {
    const entries = parsePackHeader(repo.key, data, data.length, key);
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (const e of entries) {
      const limit = Math.min(e.rawLength, e.type === BLOB_TREE ? MAX_TREE_BLOB : dataBlobLimit(repo.config.chunker.max));
      const plain = unseal(repo.key, buf.subarray(e.offset, e.offset + e.length), `blob in pack ${id}`, limit);
      if (!blobId(repo.key, plain).equals(e.id)) return `pack ${id}: blob ${e.id.toString('hex').slice(0, 16)} does not match its id`;
      const loc = repo.index.get(e.id);
      if (loc && repo.index.packId(loc.packIndex).toString('hex') === id && loc.offset !== e.offset) {
        return `pack ${id}: index and pack header disagree about blob ${e.id.toString('hex').slice(0, 16)}`;
      }
    }
  } catch (err) {
    if (isLifeboatError(err)) return `pack ${id}: ${err.message}`;
    throw err;
  }
  return undefined;
}

/** When each pack was last verified; empty before the first check that read data. */
export async function loadVerified(repo: Repository): Promise<Map<string, number>> {
  try {
    const sealed = await repo.store.get(keys.verified);
    return new Map(Object.entries(JSON.parse(unseal(repo.key, sealed, keys.verified, MAX_PACK_LIST).toString('utf8')) as Record<string, number>));
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND') || isLifeboatError(err, 'CORRUPT')) return new Map();
    throw err;
  }
}

async function saveVerified(repo: Repository, verified: Map<string, number>): Promise<void> {
  await repo.store.put(keys.verified, seal(repo.key, Buffer.from(JSON.stringify(Object.fromEntries(verified))), repo.compression));
}
