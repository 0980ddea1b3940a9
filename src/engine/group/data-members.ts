/**
 * Group members without a continuous log (docs/groups.md): their data itself must be
 * taken at the point, so each says in its position how it was.
 *
 * - files, with a snapshot hook (`groups.NAME.snapshots.MEMBER`): `create` makes a
 *   filesystem snapshot (btrfs, LVM, ZFS) while frozen, within what is left of
 *   max_hold; after thaw the snapshot's directory is backed up and `release` drops it
 *   (always, once create succeeded). The hold pays for the snapshot command only.
 * - files, without one (`frozen-copy`): a normal backup of the source's paths taken
 *   inside the hold, so the hold grows with the data that changed since the last
 *   backup; max_hold applies, and a copy that overruns is removed after thaw.
 * - bucket (`listing`): the keys and ETags are listed while frozen (one request per
 *   1000 objects on S3); after thaw exactly those objects are copied, each checked
 *   against its listed ETag. An object changed or deleted after the point fails the
 *   member: a bucket keeps no older bytes we could read by the listing alone.
 *
 * Every snapshot these make carries the point's time, and `{group, point}` in its
 * consistency record, so a snapshot can be traced to its point and back.
 */
import { performance } from 'node:perf_hooks';
import * as path from 'node:path';
import type { SourceConfig } from '../../config/config.js';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import { writeTombstone } from '../../repo/tombstones.js';
import type { ListedObject, ObjectAccess, OpenedObject } from '../../storage/objects.js';
import { commandRun, runHook } from './hook.js';
import type { MemberContext, OpenMember } from './members.js';

/**
 * Objects a bucket member lists at the point, at most. The listing is held in memory
 * until the copy after thaw (about 200 bytes an object: 200 MB at this bound).
 */
export const MAX_LISTED_OBJECTS = 1_000_000;
/** How long `release` of a snapshot hook may run: dropping a snapshot is quick, but not bounded by the hold. */
const RELEASE_LIMIT_MS = 60_000;

/** `{point}` in a hook's word or path is the point id (a snapshot name of its own each time). */
const withPoint = (word: string, id: string) => word.replaceAll('{point}', id);

/** Removes a snapshot a failed capture made (a tombstone first, as forget does). */
async function dropSnapshot(repo: Repository, id: string): Promise<void> {
  await writeTombstone(repo.store, repo.key, id);
  await repo.store.delete(keys.snapshot(id));
}

export async function openFiles(s: SourceConfig, rel: (f: string) => string, ctx: MemberContext): Promise<OpenMember> {
  if (s.paths.length === 0) throw new LifeboatError('USAGE', `files source "${s.name}" has no paths`, { hint: 'add paths: to the source in lifeboat.yaml' });
  const { backup } = await import('../backup/archiver.js');
  const consistency = { group: ctx.group, point: ctx.pointId };
  const base = () => ({ tags: s.tags, excludes: s.exclude, source: { kind: 'files', name: s.name }, time: ctx.pointTime(), consistency });
  let snapshot: string | undefined;
  let running: Promise<unknown> | undefined;
  const hook = ctx.snapshotHook;

  if (!hook) {
    return {
      name: s.name,
      kind: 'files',
      async position() {
        const t0 = performance.now();
        const p = backup(ctx.repo, { ...base(), paths: s.paths.map(rel) });
        running = p;
        const r = await p;
        snapshot = r.snapshot.id;
        // Items that could not be read are in the snapshot's summary; a copy at the point that missed files is not one.
        if (r.errors.length > 0) throw new LifeboatError('FAILED', `source "${s.name}": ${r.errors.length} item(s) could not be read while frozen (${r.errors[0]?.path}: ${r.errors[0]?.message})`, { hint: 'fix the permissions, or exclude what cannot be read' });
        return { kind: 'files', method: 'frozen-copy', snapshot: r.snapshot.id, copy_ms: Math.round((performance.now() - t0) * 1000) / 1000 };
      },
      async abandon() {
        await running?.catch(() => {});
        if (snapshot !== undefined) await dropSnapshot(ctx.repo, snapshot);
      },
      close: async () => {},
    };
  }

  let dir: string | undefined;
  let creating: ReturnType<typeof runHook> | undefined;
  let created = false;
  let createMs = 0;
  const release = async (): Promise<void> => {
    if (!created) return;
    created = false;
    const r = commandRun(await runHook(hook.release.map((w) => withPoint(w, ctx.pointId)), RELEASE_LIMIT_MS, path.dirname(rel('x')), { env: { ...process.env, LIFEBOAT_GROUP_POINT: ctx.pointId } }));
    if (!r.ok) ctx.warn(`source "${s.name}": the snapshot hook's release ${r.timedOut ? 'ran past its limit' : `failed (${r.outcome})`}${r.said ? `: ${r.said}` : ''}; the filesystem snapshot ${dir ?? ''} may still exist`);
  };
  return {
    name: s.name,
    kind: 'files',
    async position() {
      const t0 = performance.now();
      creating = runHook(
        hook.create.map((w) => withPoint(w, ctx.pointId)),
        ctx.left(),
        path.dirname(rel('x')),
        { stdout: true, env: { ...process.env, LIFEBOAT_GROUP_POINT: ctx.pointId } },
      );
      const res = await creating;
      const r = commandRun(res);
      // Even a create that failed or was killed may have made the snapshot: release runs for it too.
      created = true;
      createMs = performance.now() - t0;
      if (r.timedOut) throw new LifeboatError('HOLD_EXCEEDED', `source "${s.name}": the snapshot hook's create was killed after running past max_hold`, { hint: 'a filesystem snapshot takes milliseconds; find what delays it, or raise max_hold' });
      if (!r.ok) throw new LifeboatError('FAILED', `source "${s.name}": the snapshot hook's create failed (${r.outcome})${r.said ? `: ${r.said}` : ''}`, { hint: 'run the create command by hand to see why' });
      const printed = res.stdout.split('\n').at(-1)?.trim() ?? '';
      const chosen = hook.path !== undefined ? withPoint(hook.path, ctx.pointId) : printed;
      if (chosen === '') throw new LifeboatError('USAGE', `source "${s.name}": the snapshot hook has no path and create printed nothing`, { hint: 'give path: in the hook, or make create print the snapshot\'s directory as its last line' });
      dir = rel(chosen);
      return { kind: 'files', method: 'snapshot-hook', snapshot: '', create_ms: Math.round(createMs * 1000) / 1000 };
    },
    async complete() {
      try {
        const r = await backup(ctx.repo, { ...base(), paths: [dir as string] });
        snapshot = r.snapshot.id;
        if (r.errors.length > 0) throw new LifeboatError('FAILED', `source "${s.name}": ${r.errors.length} item(s) of the filesystem snapshot ${dir} could not be read (${r.errors[0]?.path}: ${r.errors[0]?.message})`, { hint: 'fix the permissions, or exclude what cannot be read' });
        if (r.snapshot.summary.totalFiles === 0 && r.snapshot.summary.dirs === 0) throw new LifeboatError('FAILED', `source "${s.name}": the filesystem snapshot ${dir} is empty`, { hint: 'check that create made the snapshot where path (or its output) says' });
        return { kind: 'files', method: 'snapshot-hook', snapshot: r.snapshot.id, create_ms: Math.round(createMs * 1000) / 1000 };
      } finally {
        await release();
      }
    },
    async abandon() {
      // A create still running (it is killed at max_hold) ends first, so release follows it.
      await creating;
      if (snapshot !== undefined) await dropSnapshot(ctx.repo, snapshot);
      await release();
    },
    close: release,
  };
}

/** An object as listed at the point. */
type Listed = Pick<ListedObject, 'key' | 'size' | 'etag' | 'lastModified'>;

/**
 * The bucket as it was listed at the point: listing yields the recorded objects, and
 * opening one fails when its ETag is no longer the listed one (or it is gone).
 */
function pinned(objects: ObjectAccess, listing: Listed[], member: string): ObjectAccess {
  const byKey = new Map(listing.map((o) => [o.key, o]));
  const changed = (key: string, now: string) =>
    new LifeboatError('FAILED', `bucket member "${member}": object ${JSON.stringify(key)} ${now} after the point, so it cannot be taken as it was`, {
      hint: 'a bucket keeps no older bytes Lifeboat reads by a listing: hold the writers of the bucket in freeze until thaw, or run the capture again',
    });
  return {
    probe: () => objects.probe(),
    versioned: () => objects.versioned(),
    putObject: () => Promise.reject(new Error('a pinned listing is read-only')),
    async *listObjects() {
      yield* listing;
    },
    async openObject(key: string): Promise<OpenedObject> {
      let o: OpenedObject;
      try {
        o = await objects.openObject(key);
      } catch (err) {
        if (isLifeboatError(err, 'NOT_FOUND')) throw changed(key, 'was deleted');
        throw err;
      }
      if (o.etag !== byKey.get(key)?.etag) {
        o.body.destroy();
        throw changed(key, `changed (ETag ${o.etag}, listed ${byKey.get(key)?.etag ?? 'none'})`);
      }
      return o;
    },
  };
}

export async function openBucketMember(s: SourceConfig, ctx: MemberContext): Promise<OpenMember> {
  const { settingsOf } = await import('../../sources/bucket/options.js');
  const { openBucket } = await import('../../sources/bucket/location.js');
  const { bucketBackup } = await import('../../sources/bucket/backup.js');
  const { DEFAULT_PARALLEL } = await import('../../sources/bucket/options.js');
  const o = settingsOf(s);
  // Opened and probed before the freeze: the hold pays for the listing only.
  const b = await openBucket(o.location, { role: 'source', ...(o.limit_download ? { limitDownloadKiB: o.limit_download } : {}) });
  let listing: Listed[] = [];
  let listingMs = 0;
  let snapshot: string | undefined;
  return {
    name: s.name,
    kind: 'bucket',
    async position() {
      const t0 = performance.now();
      listing = [];
      for await (const x of b.objects.listObjects('')) {
        if (listing.length >= MAX_LISTED_OBJECTS) throw new LifeboatError('USAGE', `bucket member "${s.name}" holds more than ${MAX_LISTED_OBJECTS} objects: a group keeps its listing in memory`, { hint: 'back this bucket up on its own (lifeboat bucket backup), or split it by prefix' });
        listing.push({ key: x.key, size: x.size, etag: x.etag, lastModified: x.lastModified });
      }
      listingMs = performance.now() - t0;
      return { kind: 'bucket', method: 'listing', snapshot: '', objects: listing.length, listing_ms: Math.round(listingMs * 1000) / 1000 };
    },
    async complete() {
      const snap = await bucketBackup(ctx.repo, {
        name: s.name,
        location: o.location,
        objects: pinned(b.objects, listing, s.name),
        parallel: o.parallel ?? DEFAULT_PARALLEL,
        tags: s.tags,
        time: ctx.pointTime(),
        extra: { group: ctx.group, point: ctx.pointId },
      });
      snapshot = snap.id;
      return { kind: 'bucket', method: 'listing', snapshot: snap.id, objects: listing.length, listing_ms: Math.round(listingMs * 1000) / 1000 };
    },
    async abandon() {
      if (snapshot !== undefined) await dropSnapshot(ctx.repo, snapshot);
    },
    close: () => b.close(),
  };
}
