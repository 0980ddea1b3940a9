/**
 * check: proves the repository is whole. The structural pass authenticates every
 * small object (the config against its sealed copy, key slots against their names,
 * every index file, snapshot, retiring list, drill record and `state/` record), walks
 * every tree and confirms each referenced blob is indexed and each indexed pack
 * exists. --read-data (or a subset of packs) also downloads packs, confirms each
 * one's SHA-256 name, and authenticates and re-identifies every blob; --read-data
 * also authenticates every log file (`logs/`). Each damaged object is named.
 */
import { createHash } from 'node:crypto';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { blobId, seal, unseal } from '../../codec/crypto.js';
import { readSlots } from '../keyring.js';
import { CONFIG_COPY, verifyConfig } from '../config-copy.js';
import { MAX_LOG_FILE, MAX_PACK_LIST, MAX_RECORD, MAX_TREE_BLOB, dataBlobLimit } from '../limits.js';
import { isDamage, parseJson } from '../damage.js';
import { listAll } from '../../storage/store.js';
import { mapLimit } from '../../util/limit.js';
import { BLOB_TREE, blobContext, keys, packIdFromKey } from '../format.js';
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
  kind: 'config' | 'key' | 'index' | 'snapshot' | 'tree' | 'missing-blob' | 'missing-pack' | 'pack' | 'retiring' | 'drill' | 'state' | 'log';
  message: string;
}

export interface CheckResult {
  ok: boolean;
  snapshots: number;
  trees: number;
  packs: number;
  packsRead: number;
  unindexedPacks: number;
  /** Log files read and authenticated (--read-data). */
  logsRead: number;
  problems: CheckProblem[];
  /** What is not damage but wants attention (a repository without a config copy). */
  warnings: string[];
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

/**
 * A prune sweeping meanwhile rewrites index files and deletes packs, so a pass can see
 * an index file vanish, a pack missing or a blob briefly unindexed although the
 * repository is whole: a pass with such problems is run again on a fresh index, and
 * only problems that persist are reported.
 */
async function runCheck(repo: Repository, opts: CheckOptions): Promise<CheckResult> {
  const warnings: string[] = [];
  const records: CheckProblem[] = [];
  await checkRecords(repo, records, warnings);
  // Unthrottled: one event per index file, snapshot or pack; the renderers limit their rate.
  const emit: ProgressFn = (e) => opts.onProgress?.(e);
  let pass = await structure(repo, emit);
  for (let attempt = 0; attempt < 2 && pass.transient; attempt++) {
    repo.resetIndex();
    pass = await structure(repo, emit);
  }
  const { stored, indexedPacks, unindexedPacks, snapshots, seenTrees, replayed } = pass;
  for (const key of replayed) warnings.push(`${key} was forgotten (a tombstone under forgotten/ says so): a copy put back is ignored; \`lifeboat forget ${key.slice('snapshots/'.length)}\` removes it`);
  const problems = [...records, ...pass.problems];
  let packsRead = 0;
  let bytesRead = 0;
  if (opts.readData || opts.readDataSubset !== undefined) {
    let ids = [...stored.keys()].filter((id) => indexedPacks.has(id));
    const verified = await loadVerified(repo).catch((err: unknown) => {
      // Reported by checkRecords; this check rewrites it.
      if (isLifeboatError(err, 'CORRUPT')) return new Map<string, number>();
      throw err;
    });
    if (!opts.readData && opts.readDataSubset !== undefined) {
      // The least recently verified first (never verified before all), so that repeated
      // subsets cover the whole repository before any pack is read twice.
      const shuffled = ids.map((id) => ({ id, at: verified.get(id) ?? 0, r: Math.random() }));
      shuffled.sort((a, b) => a.at - b.at || a.r - b.r);
      ids = shuffled.slice(0, Math.ceil(ids.length * opts.readDataSubset)).map((x) => x.id);
    }
    const total = ids.length;
    // Bytes too (the stored sizes of the packs read): packs differ in size, bytes make the ETA fair.
    const totalBytes = ids.reduce((n, id) => n + (stored.get(id) ?? 0), 0);
    await mapLimit(ids, 2, async (id) => {
      let problem = await readPack(repo, id);
      // Pruned since the listing: a problem only if an index file still names it.
      if (problem && !(await repo.store.stat(keys.pack(id), { sure: true })) && !(await stillIndexed(repo, id))) problem = undefined;
      if (problem) problems.push({ kind: 'pack', message: problem });
      else verified.set(id, Date.now());
      packsRead++;
      bytesRead += stored.get(id) ?? 0;
      emit({ phase: 'check', unit: 'packs', files: packsRead, bytes: bytesRead, totalFiles: total, totalBytes, errors: problems.length });
    });
    // Packs gone since (pruned) are forgotten; an append-only client cannot record.
    for (const id of verified.keys()) if (!stored.has(id)) verified.delete(id);
    if (!repo.appendOnly) await saveVerified(repo, verified);
  }
  let logsRead = 0;
  if (opts.readData) {
    await mapLimit(await listAll(repo.store, 'logs/'), 4, async (o) => {
      try {
        await repo.getUnsealed(o.key, o.key, { kind: 'log', name: o.key }, undefined, MAX_LOG_FILE);
        logsRead++;
      } catch (err) {
        if (isLifeboatError(err, 'NOT_FOUND')) return; // trimmed meanwhile
        if (!isDamage(err)) throw err;
        problems.push({ kind: 'log', message: `${o.key}: ${(err as Error).message}` });
      }
    });
  }

  // The last event: the last stage complete (packs read, or snapshots walked).
  emit(packsRead > 0 ? { phase: 'done', unit: 'packs', files: packsRead, bytes: bytesRead, errors: problems.length } : { phase: 'done', unit: 'snapshots', files: snapshots.length, bytes: 0, errors: problems.length });
  return {
    ok: problems.length === 0,
    snapshots: snapshots.length,
    trees: seenTrees.size,
    packs: stored.size,
    packsRead,
    unindexedPacks,
    logsRead,
    problems,
    warnings,
  };
}

async function structure(repo: Repository, onProgress?: ProgressFn) {
  const problems: CheckProblem[] = [];
  let transient = false;
  // Progress in two stages with known totals: index files read, then snapshots walked.
  const indexFiles = await listAll(repo.store, 'index/');
  let read = 0;
  for (const f of indexFiles) {
    try {
      for (const p of await repo.readIndexFile(f.key)) repo.addToIndex(p);
    } catch (err) {
      transient ||= isLifeboatError(err, 'NOT_FOUND');
      problems.push({ kind: 'index', message: `${f.key}: ${describe(err)}` });
    }
    onProgress?.({ phase: 'check', unit: 'index files', files: ++read, bytes: 0, totalFiles: indexFiles.length, errors: problems.length });
  }

  const stored = new Map<string, number>();
  for await (const o of repo.store.list('data/')) stored.set(packIdFromKey(o.key), o.size);
  const indexedPacks = new Set<string>();
  for (let i = 0; i < repo.index.packCount; i++) {
    const hex = repo.index.packId(i).toString('hex');
    indexedPacks.add(hex);
    if (!stored.has(hex)) {
      transient = true;
      problems.push({ kind: 'missing-pack', message: `pack ${hex} is indexed but missing from the store` });
    }
  }
  const unindexedPacks = [...stored.keys()].filter((id) => !indexedPacks.has(id)).length;

  // Structure: every snapshot's trees decode and every blob they name is indexed.
  // A forgotten snapshot put back (its tombstone says so) is not the repository's: named, not walked.
  const forgotten = await repo.forgottenIds();
  const all = await listAll(repo.store, 'snapshots/');
  const snapshots = all.filter((s) => !forgotten.has(s.key.slice('snapshots/'.length)));
  const replayed = all.filter((s) => forgotten.has(s.key.slice('snapshots/'.length))).map((s) => s.key);
  const seenTrees = new Set<string>();
  const walk = async (treeId: string, where: string): Promise<void> => {
    if (seenTrees.has(treeId)) return;
    seenTrees.add(treeId);
    let tree;
    try {
      tree = await repo.loadTree(treeId);
    } catch (err) {
      transient = true;
      problems.push({ kind: 'tree', message: `tree ${treeId.slice(0, 16)} (${where}): ${describe(err)}` });
      return;
    }
    for (const n of tree.nodes) {
      for (const id of n.content ?? []) {
        if (!repo.index.get(Buffer.from(id, 'hex'))) {
          transient = true;
          problems.push({ kind: 'missing-blob', message: `${where}/${n.name}: data blob ${id.slice(0, 16)} is not in any pack` });
        }
      }
      if (n.subtree) await walk(n.subtree, `${where}/${n.name}`);
    }
  };
  let walked = 0;
  for (const s of snapshots) {
    const id = s.key.slice('snapshots/'.length);
    try {
      const snap = await repo.loadSnapshot(id);
      await walk(snap.tree, `snapshot ${id.slice(0, 8)}:`);
    } catch (err) {
      // A snapshot forgotten since the listing is no problem.
      if (!isLifeboatError(err, 'NOT_FOUND')) problems.push({ kind: 'snapshot', message: `snapshot ${id.slice(0, 8)}: ${describe(err)}` });
    }
    onProgress?.({ phase: 'check', unit: 'snapshots', files: ++walked, bytes: 0, totalFiles: snapshots.length, errors: problems.length });
  }

  return { problems, transient, stored, indexedPacks, unindexedPacks, snapshots, seenTrees, replayed };
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
      const plain = unseal(repo.key, buf.subarray(e.offset, e.offset + e.length), `blob in pack ${id}`, blobContext(e.type), limit);
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

/** Whether any index file stored now names the pack. */
async function stillIndexed(repo: Repository, id: string): Promise<boolean> {
  for (const f of await listAll(repo.store, 'index/')) {
    try {
      if ((await repo.readIndexFile(f.key)).some((p) => p.packId.toString('hex') === id)) return true;
    } catch (err) {
      if (!isLifeboatError(err, 'NOT_FOUND')) throw err;
    }
  }
  return false;
}

/**
 * When each pack was last verified; empty before the first check that read data.
 * A record that does not authenticate raises CORRUPT (checkRecords names it).
 */
export async function loadVerified(repo: Repository): Promise<Map<string, number>> {
  let plain: Buffer;
  try {
    plain = await repo.getUnsealed(keys.verified, keys.verified, { kind: 'state', name: keys.verified }, undefined, MAX_PACK_LIST);
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND')) return new Map();
    throw err;
  }
  const map = parseJson<Record<string, number>>(plain, keys.verified);
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new LifeboatError('CORRUPT', `${keys.verified}: not a verification record`);
  return new Map(Object.entries(map));
}

/**
 * Authenticates the small records: the config against its sealed copy, each key slot
 * against its name (a slot is named by the SHA-256 of its bytes; only the slot that
 * opened can be decrypted), retiring lists, drill records and `state/verified`.
 */
async function checkRecords(repo: Repository, problems: CheckProblem[], warnings: string[]): Promise<void> {
  const fail = (kind: CheckProblem['kind'], key: string, err: unknown): void => {
    if (!isDamage(err)) throw err;
    problems.push({ kind, message: `${key}: ${(err as Error).message}` });
  };
  try {
    const state = await verifyConfig(repo.store, repo.key, await repo.store.get(keys.config));
    if (state === 'no-copy') {
      warnings.push(`config has no sealed copy (${CONFIG_COPY}; the repository predates copies): \`lifeboat repair config\` writes one, so a lost or damaged config can be restored`);
    }
    if (state === 'copy-damaged') {
      problems.push({ kind: 'config', message: `${CONFIG_COPY}: the sealed copy of the config failed authentication (damaged); if config is whole, delete ${CONFIG_COPY} and run \`lifeboat repair config\` to write a new one` });
    }
  } catch (err) {
    fail('config', 'config', err);
  }
  // Key slots: named by their hash, and of a known shape with bounded parameters
  // (src/repo/keyring.ts); only the slot that opened can be decrypted here.
  for (const s of await readSlots(repo.store)) {
    const v1 = s.slot?.version === 1 ? (s.slot as { master?: unknown; kdf?: unknown }) : undefined;
    if (s.problem) problems.push({ kind: 'key', message: `keys/${s.id}: ${s.problem}` });
    else if (v1 && (typeof v1.master !== 'string' || typeof v1.kdf !== 'object')) problems.push({ kind: 'key', message: `keys/${s.id}: not a key slot` });
  }
  for (const o of await listAll(repo.store, 'keyring/')) {
    try {
      const g = parseJson<{ version?: unknown; generation?: unknown; grants?: unknown }>(Buffer.from(await repo.store.get(o.key)), o.key);
      if (g.version !== 2 || o.key !== keys.keyring(Number(g.generation)) || !Array.isArray(g.grants)) throw new LifeboatError('CORRUPT', 'not a keyring generation');
    } catch (err) {
      if (!isLifeboatError(err, 'NOT_FOUND')) fail('key', o.key, err);
    }
  }
  for (const o of await listAll(repo.store, 'prune/')) {
    try {
      await repo.readRetiring(o.key);
    } catch (err) {
      if (!isLifeboatError(err, 'NOT_FOUND')) fail('retiring', o.key, err);
    }
  }
  // Drill records (src/engine/drill/drill.ts): sealed JSON with at least `time` and `ok`.
  for (const o of await listAll(repo.store, 'drills/')) {
    try {
      const r = parseJson<{ time?: unknown; ok?: unknown }>((await repo.getMeta(o.key, o.key, { kind: 'drill', name: o.key }, MAX_RECORD)).payload, o.key);
      if (typeof r.time !== 'string' || typeof r.ok !== 'boolean') throw new LifeboatError('CORRUPT', 'not a drill record');
    } catch (err) {
      if (!isLifeboatError(err, 'NOT_FOUND')) fail('drill', o.key, err);
    }
  }
  try {
    await loadVerified(repo);
  } catch (err) {
    fail('state', keys.verified, err);
  }
}

async function saveVerified(repo: Repository, verified: Map<string, number>): Promise<void> {
  await repo.store.put(keys.verified, seal(repo.key, Buffer.from(JSON.stringify(Object.fromEntries(verified))), repo.compression, { kind: 'state', name: keys.verified }));
}
