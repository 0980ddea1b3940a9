/**
 * prune --reseal: rewrites everything sealed under an older key epoch under the current
 * one, then destroys the keys of epochs nothing uses any more. After a `key remove` or a
 * leak, this is what makes an old slot, or a key someone kept, open nothing at all.
 *
 * - Packs of older epochs: their indexed blobs are copied into new packs, and the old
 *   packs go on a retiring list, which a later prune deletes (docs/prune.md: a backup
 *   running now may still depend on them).
 * - Index files, snapshots (same id: a format 2 id is an HMAC of the manifest), retiring
 *   lists, drill records, `state/` and archived logs are rewritten in place, each keeping
 *   its trust: an object a restricted key wrote is re-sealed without a tag, never
 *   laundered into one the administrator trusts.
 * - Last, every object's header is read (six bytes each) and the epochs no object names
 *   are dropped from the keyring, once the current epoch is older than the grace period:
 *   a long-running writer (a replicator) picks up a new keyring within a minute, and a
 *   backup started before the rotation holds a lock the sweep of its packs waits for.
 *
 * - Session keys of write-only clients (sessions.ts) are old epochs like any other:
 *   what they sealed is re-sealed under the current epoch, and a session object whose
 *   key no object names any more is deleted, once it is older than the grace period
 *   and no backup holds a lock (a write-only backup stores its session object before
 *   it seals anything, so a session without objects may belong to a run under way).
 *
 * One run re-seals; the old packs are deleted by the prune that sweeps their list; the
 * run after that destroys the epochs (both happen in one command with `--grace 0`).
 */
import * as os from 'node:os';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { sealedKeyId, sealMeta, seal, unseal, unsealMeta, type SealContext } from '../../codec/crypto.js';
import { listAll } from '../../storage/store.js';
import { mapLimit } from '../../util/limit.js';
import { dropEpochs, assertFull, type Warn } from '../keyring.js';
import { BLOB_DATA, BLOB_TREE, keys, type BlobType } from '../format.js';
import type { Repository } from '../repository.js';
import { readTombstones, writeTombstone } from '../tombstones.js';
import { isStale, readLocks } from '../lock.js';
import { sessionKeyName } from '../sessions.js';
import { withPackWriter } from '../pack/spill.js';

/** Deletes the session objects of write-only clients whose keys no object uses any more. */
async function dropSessions(repo: Repository, used: ReadonlyMap<number, number>, graceMs: number, now: number, result: ResealResult): Promise<void> {
  const idle = [...repo.sessions].filter(([id, e]) => !used.has(id) && !(now - Date.parse(e.created ?? '') < graceMs));
  if (idle.length === 0) return;
  const backups = (await readLocks(repo.store)).filter((l) => l.record.command.startsWith('backup') && !isStale(l.record, now));
  if (backups.length > 0) return; // a write-only run may have stored its session and sealed nothing yet
  for (const [id] of idle) {
    await repo.store.delete(sessionKeyName(id)).catch((err: unknown) => {
      if (!isLifeboatError(err, 'NOT_FOUND')) throw err;
    });
    repo.sessions.delete(id);
    result.droppedSessions.push(hex(id));
  }
  if (repo.keyring) repo.useKeyring(repo.keyring);
}

export interface ResealResult {
  packs: number;
  blobs: number;
  /** Metadata and log objects re-sealed in place or rewritten. */
  objects: number;
  /** Objects still sealed under an older epoch, by epoch (hex), after this run. */
  remaining: Record<string, number>;
  droppedEpochs: string[];
  /** Session objects of write-only clients deleted: nothing is sealed under them any more. */
  droppedSessions: string[];
  /** Why an unused epoch was kept, when it was. */
  kept?: string;
}

const hex = (keyId: number) => keyId.toString(16).padStart(8, '0');

/** The epoch an object is sealed under; -1 when its header is not an envelope's (damaged). */
async function headerKeyId(repo: Repository, key: string): Promise<number | undefined> {
  try {
    return sealedKeyId(await repo.store.get(key, { offset: 0, length: 6 })) ?? -1;
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}

/** Object kinds sealed under a chosen name, re-sealed in place. */
const IN_PLACE: Array<{ prefix: string; ctx: (key: string) => SealContext; meta: boolean }> = [
  { prefix: 'drills/', ctx: (key) => ({ kind: 'drill', name: key }), meta: true },
  { prefix: 'state/', ctx: (key) => ({ kind: 'state', name: key }), meta: false },
  { prefix: 'logs/', ctx: (key) => ({ kind: 'log', name: key }), meta: false },
];

export async function reseal(repo: Repository, opts: { graceMs: number; dryRun?: boolean; warn?: Warn; now?: () => number }): Promise<ResealResult> {
  const warn = opts.warn ?? (() => {});
  const now = opts.now ?? Date.now;
  if (!repo.keyring) {
    throw new LifeboatError('UNSUPPORTED_FORMAT', 'prune --reseal needs a repository of format version 2', {
      hint: 'upgrade it with `lifeboat migrate`',
    });
  }
  assertFull(repo.keyring, 'prune --reseal');
  const current = repo.key.keyId;
  const result: ResealResult = { packs: 0, blobs: 0, objects: 0, remaining: {}, droppedEpochs: [], droppedSessions: [] };
  const old = (keyId: number | undefined) => keyId !== undefined && keyId !== -1 && keyId !== current;

  // ---- packs -------------------------------------------------------------------------
  await repo.loadIndex();
  const index = repo.index;
  const oldPacks = new Set<number>();
  const handles = Array.from({ length: index.packCount }, (_, h) => h);
  await mapLimit(handles, 8, async (h) => {
    if (old(await headerKeyId(repo, keys.pack(index.packId(h).toString('hex'))))) oldPacks.add(h);
  });
  if (oldPacks.size > 0 && !opts.dryRun) {
    const todo: Array<{ id: Buffer; type: BlobType }> = [];
    index.forEach((id, loc) => {
      if (oldPacks.has(loc.packIndex)) todo.push({ id: Buffer.from(id), type: loc.type === BLOB_TREE ? BLOB_TREE : BLOB_DATA });
    });
    const retiring = [...oldPacks].map((h) => index.packId(h).toString('hex'));
    // Retired in memory first, so the writer stores each blob anew instead of finding it indexed.
    for (const p of retiring) index.retirePack(p);
    await withPackWriter(repo, async (writer) => {
      for (const b of todo) await writer.addPlain(b.type, await repo.loadBlob(b.id));
      await writer.flush();
    });
    await repo.saveRetiring({ time: new Date(now()).toISOString(), hostname: os.hostname(), packs: retiring });
    result.blobs = todo.length;
  }
  result.packs = oldPacks.size;

  // ---- index files and retiring lists (named by their hash: rewritten, old one deleted) ----
  for (const f of await listAll(repo.store, 'index/')) {
    if (!old(await headerKeyId(repo, f.key))) continue;
    result.objects++;
    if (opts.dryRun) continue;
    try {
      await repo.writeIndex(await repo.readIndexFile(f.key));
      await repo.store.delete(f.key);
    } catch (err) {
      if (!isLifeboatError(err, 'NOT_FOUND')) throw err; // a prune rewrote it meanwhile
    }
  }
  for (const list of await repo.listRetiring()) {
    if (!old(await headerKeyId(repo, list.key))) continue;
    result.objects++;
    if (opts.dryRun) continue;
    if (list.trusted === false) {
      // Nobody acts on a list a restricted key wrote; it is not carried into the new epoch.
      await repo.store.delete(list.key);
      continue;
    }
    await repo.saveRetiring({ time: list.time, hostname: list.hostname, packs: list.packs });
    await repo.store.delete(list.key);
  }

  // ---- snapshots, drills, state, logs (re-sealed under the same name) ---------------------
  for (const o of await listAll(repo.store, 'snapshots/')) {
    if (!old(await headerKeyId(repo, o.key))) continue;
    result.objects++;
    if (!opts.dryRun) await repo.resealSnapshot(o.key.slice('snapshots/'.length));
  }
  for (const kind of IN_PLACE) {
    const objects = await listAll(repo.store, kind.prefix);
    await mapLimit(objects, 4, async (o) => {
      if (!old(await headerKeyId(repo, o.key))) return;
      result.objects++;
      if (opts.dryRun) return;
      const sealed = await repo.store.get(o.key);
      const ctx = kind.ctx(o.key);
      if (kind.meta) {
        const m = unsealMeta(repo.key, sealed, o.key, ctx);
        const k = m.trusted === false ? { ...repo.key, macKey: undefined } : repo.key;
        await repo.store.put(o.key, sealMeta(k, m.payload, repo.compression, ctx));
      } else {
        await repo.store.put(o.key, seal(repo.key, unseal(repo.key, sealed, o.key, ctx), repo.compression, ctx));
      }
    });
  }

  // Tombstones name their epoch; those of older epochs are renamed under the current one.
  for (const t of await readTombstones(repo.store, repo.key)) {
    if (t.keyId === current || opts.dryRun) continue;
    await writeTombstone(repo.store, repo.key, t.snapshotId);
    await repo.store.delete(t.key);
    result.objects++;
  }

  // ---- which epochs are still used --------------------------------------------------------
  const used = new Map<number, number>();
  for (const prefix of ['data/', 'index/', 'snapshots/', 'prune/', ...IN_PLACE.map((k) => k.prefix)]) {
    const objects = await listAll(repo.store, prefix);
    await mapLimit(objects, 8, async (o) => {
      const id = await headerKeyId(repo, o.key);
      if (id !== undefined) used.set(id, (used.get(id) ?? 0) + 1);
    });
  }
  for (const [id, n] of used) if (id !== current) result.remaining[id === -1 ? 'unreadable header' : hex(id)] = n;
  if (!opts.dryRun && !used.has(-1)) await dropSessions(repo, used, opts.graceMs, now(), result);
  const unused = new Set(repo.keyring.payload.epochs.map((e) => e.keyId).filter((id) => id !== current && !used.has(id)));
  if (unused.size > 0 && !opts.dryRun && used.has(-1)) {
    // Fail closed: an object whose epoch cannot be told might need any of them.
    result.kept = `${used.get(-1)} object(s) have headers that are not envelopes (damaged?); run \`lifeboat check --read-data\`, then re-seal again`;
  } else if (unused.size > 0 && !opts.dryRun) {
    const cur = repo.keyring.payload.epochs.find((e) => e.keyId === current);
    const age = now() - Date.parse(cur?.created ?? '');
    if (!(age >= opts.graceMs)) {
      result.kept = `the current epoch is ${Math.round(age / 1000)} s old; older epochs are destroyed once it is older than the grace period (${Math.round(opts.graceMs / 1000)} s), so writers still holding the previous keyring have switched`;
    } else {
      repo.useKeyring(await dropEpochs(repo.store, repo.keyring, unused, warn));
      result.droppedEpochs = [...unused].map(hex);
    }
  }
  return result;
}
