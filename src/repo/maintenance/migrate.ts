/**
 * lifeboat migrate: upgrades a format 1 repository to format 2 in place. Crash-safe
 * and resumable: every step is either idempotent or recognisable when run again, and
 * the `config` object, rewritten atomically, says how far it got.
 *
 *  1. Keys: a format 2 key slot for the password given and keyring generation 1. The
 *     format 1 idKey is kept (blob ids and chunk boundaries stay the same, so nothing
 *     is uploaded again); the format 1 encryption key becomes an older epoch beside a
 *     new current one. Until step 2, format 1 clients keep working.
 *  2. `config` says version 2 and `migrating`: from here on clients read format 1
 *     envelopes of every kind and write only format 2; format 1 slots open nothing.
 *  3. Metadata is rewritten in format 2: index files and retiring lists (new file, old
 *     deleted), snapshots (re-sealed under their format 2 id, an HMAC of the manifest,
 *     recording `migratedFrom`; the old object deleted), drill records (their snapshot
 *     ids mapped), `state/` and archived logs (in place).
 *  4. Format 1 key slots are deleted, and `config` says `v1Blobs`: blobs and pack
 *     headers sealed in format 1 stay readable (their integrity comes from the blob id
 *     and the pack's name); `prune --reseal` rewrites them under the new epoch.
 *
 * A run killed anywhere is resumed by running `lifeboat migrate` again with the same
 * password. `--dry-run` counts what would be rewritten and writes nothing.
 */
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { seal, unseal, sealMeta, unsealMeta } from '../../codec/crypto.js';
import { listAll, type Store } from '../../storage/store.js';
import { acquireLock } from '../lock.js';
import { openWithPassword } from '../keys.js';
import { initKeyring, openKeyring, readSlots, roleOfSlot, type Warn } from '../keyring.js';
import { keys, type RepoConfig } from '../format.js';
import { CONFIG_COPY, sealConfigCopy } from '../config-copy.js';
import type { MasterKey } from '../../codec/crypto.js';
import { Repository } from '../repository.js';
import type { SnapshotManifest } from '../snapshot/snapshot.js';

export interface MigrateResult {
  /** What the repository was before this run: 1, 2 (being migrated), or 'done' (nothing to do). */
  from: 1 | 2 | 'done';
  indexes: number;
  lists: number;
  snapshots: number;
  drills: number;
  state: number;
  logs: number;
  /** Format 1 key slots deleted (their passwords must be added again with `key add`). */
  oldSlots: number;
  dryRun: boolean;
}

async function isFormat1(store: Store, key: string): Promise<boolean> {
  try {
    return (await store.get(key, { offset: 0, length: 1 }))[0] === 1;
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND')) return false;
    throw err;
  }
}

/** The config and its sealed copy (src/repo/config-copy.ts): the copy first, so a crash between leaves a config migrate rewrites. */
async function writeConfig(store: Store, config: RepoConfig, key: MasterKey): Promise<void> {
  const raw = Buffer.from(JSON.stringify(config, null, 2));
  await store.put(CONFIG_COPY, sealConfigCopy(key, raw));
  await store.put(keys.config, raw);
}

/**
 * Upgrades a format 1 repository to format 2, resumably. Under an exclusive lock whose
 * heartbeat is checked before every delete and rewrite: a lock another process may
 * have taken for stale (a prune, a second migrate) stops it before it removes anything
 * more.
 */
export async function migrate(store: Store, password: string, opts: { dryRun?: boolean; warn?: Warn; onStep?: (step: string) => void } = {}): Promise<MigrateResult> {
  const warn = opts.warn ?? (() => {});
  const step = opts.onStep ?? (() => {});
  const dryRun = opts.dryRun ?? false;
  let config = await Repository.readConfig(store);
  const result: MigrateResult = { from: config.version === 1 ? 1 : config.migrating ? 2 : 'done', indexes: 0, lists: 0, snapshots: 0, drills: 0, state: 0, logs: 0, oldSlots: 0, dryRun };
  if (result.from === 'done') return result;

  if (config.version === 1) {
    const v1 = await openWithPassword(store, password);
    if (v1.appendOnly) {
      throw new LifeboatError('PERMISSION', 'migrate needs a full key; this password opens an append-only key slot', { hint: 'run it with an administrator password' });
    }
    if (dryRun) return count(store, result);
    const lock = await acquireLock(store, 'exclusive', 'migrate');
    try {
      step('keys');
      // Resumed after a crash in this step: a generation granting this password exists.
      const existing = await openKeyring(store, password).catch((err: unknown) => {
        if (isLifeboatError(err, 'WRONG_PASSWORD') || isLifeboatError(err, 'CORRUPT')) return undefined;
        throw err;
      });
      const keyring = existing ?? (await initKeyring(store, password, v1.master));
      config = { ...config, version: 2, migrating: true };
      step('config');
      lock.assertHeld();
      await writeConfig(store, config, keyring.master);
    } finally {
      await lock.release();
    }
  } else if (dryRun) {
    return count(store, result);
  }

  // Opened without comparing config with its copy: a run killed between writing the two is resumed here.
  const repo = await Repository.open(store, password, config, warn, { trustConfig: true });
  if (repo.role !== 'full') {
    throw new LifeboatError('PERMISSION', 'migrate needs a full key', { hint: 'run it with an administrator password' });
  }
  const lock = await acquireLock(store, 'exclusive', 'migrate');
  try {
    step('index');
    for (const f of await listAll(store, 'index/')) {
      if (!(await isFormat1(store, f.key))) continue;
      await repo.writeIndex(await repo.readIndexFile(f.key));
      lock.assertHeld();
      await store.delete(f.key);
      result.indexes++;
      step('index file');
    }
    step('lists');
    for (const list of await repo.listRetiring()) {
      if (!(await isFormat1(store, list.key))) continue;
      await repo.saveRetiring({ time: list.time, hostname: list.hostname, packs: list.packs });
      lock.assertHeld();
      await store.delete(list.key);
      result.lists++;
      step('retiring list');
    }

    step('snapshots');
    // Old id → new id: from snapshots migrated by an earlier, interrupted run too.
    const ids = new Map<string, string>();
    const legacy: Array<{ id: string; manifest: SnapshotManifest }> = [];
    for (const s of await repo.listSnapshots()) {
      const { id, trusted: _t, ...manifest } = s;
      const from = manifest.migratedFrom;
      if (from) ids.set(from, id);
      else if (await isFormat1(store, keys.snapshot(id))) legacy.push({ id, manifest });
    }
    for (const { id, manifest } of legacy) {
      const parent = manifest.parent === undefined ? undefined : ids.get(manifest.parent) ?? manifest.parent;
      const migrated = { ...manifest, ...(parent === undefined ? {} : { parent }), migratedFrom: id } as SnapshotManifest;
      let newId: string;
      try {
        newId = await repo.saveSnapshot(migrated);
      } catch (err) {
        // Written by an interrupted run: the same manifest gives the same id.
        if (!isLifeboatError(err, 'ALREADY_EXISTS')) throw err;
        newId = (await repo.listSnapshots()).find((s) => s.migratedFrom === id)?.id ?? '';
        if (!newId) throw err;
      }
      step('snapshot written');
      ids.set(id, newId);
      lock.assertHeld();
      await store.delete(keys.snapshot(id));
      result.snapshots++;
      step('snapshot');
    }

    step('drills');
    for (const o of await listAll(store, 'drills/')) {
      if (!(await isFormat1(store, o.key))) continue;
      const ctx = { kind: 'drill' as const, name: o.key };
      const record = JSON.parse(unsealMeta(repo.key, await store.get(o.key), o.key, ctx).payload.toString('utf8')) as { snapshot: string | null };
      if (record.snapshot) record.snapshot = ids.get(record.snapshot) ?? record.snapshot;
      lock.assertHeld();
      await store.put(o.key, sealMeta(repo.key, Buffer.from(JSON.stringify(record)), repo.compression, ctx));
      result.drills++;
      step('drill record');
    }

    step('state and logs');
    for (const prefix of ['state/', 'logs/'] as const) {
      for (const o of await listAll(store, prefix)) {
        if (!(await isFormat1(store, o.key))) continue;
        const ctx = prefix === 'state/' ? { kind: 'state' as const, name: o.key } : { kind: 'log' as const, name: o.key };
        lock.assertHeld();
        await store.put(o.key, seal(repo.key, unseal(repo.key, await store.get(o.key), o.key, ctx), repo.compression, ctx));
        if (prefix === 'state/') result.state++;
        else result.logs++;
        step(o.key);
      }
    }

    step('slots');
    for (const s of await readSlots(store)) {
      // Format 1 slots, and format 2 slots an interrupted first step left without a grant.
      if (s.slot?.version === 1) result.oldSlots++;
      else if (s.slot?.version !== 2 || !repo.keyring || roleOfSlot(repo.keyring, s.id) !== undefined) continue;
      lock.assertHeld();
      await store.delete(`keys/${s.id}`);
    }
    step('done');
    const { migrating: _m, ...rest } = config;
    lock.assertHeld();
    await writeConfig(store, { ...rest, version: 2, v1Blobs: true }, repo.key);
  } finally {
    await lock.release();
  }
  return result;
}

async function count(store: Store, result: MigrateResult): Promise<MigrateResult> {
  const n = async (prefix: string) => {
    let k = 0;
    for (const o of await listAll(store, prefix)) if (await isFormat1(store, o.key)) k++;
    return k;
  };
  result.indexes = await n('index/');
  result.lists = await n('prune/');
  result.snapshots = await n('snapshots/');
  result.drills = await n('drills/');
  result.state = await n('state/');
  result.logs = await n('logs/');
  result.oldSlots = (await readSlots(store)).filter((s) => s.slot?.version === 1).length;
  return result;
}
