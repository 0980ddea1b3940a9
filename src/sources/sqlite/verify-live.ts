/**
 * Proof that a replicated generation reproduces the live database, page for page.
 *
 * `liveView` hashes the live database as of a committed position that a connection of
 * the replicator holds pinned (the database file with the WAL frames up to that
 * position laid over it: see sources/sqlite/database.ts). `storedView` rebuilds the
 * same hashes from what the repository holds (the generation's snapshot, then its
 * segments up to a position), for a replicator that resumes a generation it did not
 * start. The replicator compares the first with its page model (page-model.ts).
 */
import { Writable } from 'node:stream';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { imagePages, readImageAt, type CyclePosition } from './database.js';
import type { LiveFiles } from './live-files.js';
import { resolvePath } from '../../engine/browse/tree-walk.js';
import { restoreStream } from '../../engine/restore/stream.js';
import { logSource } from './backup.js';
import { segmentsOf, transactionsAfter } from './history.js';
import { PageModel, pageHash, type ModelView } from './page-model.js';
import { comparePos, type Position } from './segment.js';
import { sqlitePoint } from './point.js';

/** The live database's page hashes at `at`, or undefined when the WAL no longer holds it (try again later). */
export async function liveView(files: LiveFiles, at: CyclePosition): Promise<ModelView | undefined> {
  const image = await readImageAt(files, at);
  if (!image) return undefined;
  const { pageSize, pages } = image.point;
  const hashes = Buffer.alloc(pages * 8);
  let pgno = 1;
  for await (const run of imagePages(files, image)) {
    for (let off = 0; off < run.length; off += pageSize) pageHash(run, off, pageSize).copy(hashes, (pgno++ - 1) * 8);
  }
  return { pages, hashes, complete: true };
}

/**
 * The page hashes the repository's history gives at `until` in `generation`: the
 * generation's newest snapshot at or before it, then its transactions up to it.
 */
export async function storedView(repo: Repository, name: string, generation: string, until: Position): Promise<ModelView> {
  const source = logSource(name);
  const snap = (await repo.listSnapshots())
    .filter((s) => s.source.kind === 'sqlite' && s.source.name === name)
    .map((s) => ({ s, c: sqlitePoint(s) }))
    .filter((x): x is { s: typeof x.s; c: NonNullable<typeof x.c> } => x.c !== undefined)
    .filter(({ c }) => c.generation === generation && c.position && comparePos(c.position, until) <= 0)
    .sort((a, b) => comparePos(b.c.position as Position, a.c.position as Position))[0];
  if (!snap) throw new LifeboatError('NOT_FOUND', `generation ${generation} of ${source} has no snapshot at or before its end`);
  await repo.loadIndex();
  const found = await resolvePath(repo, snap.s.tree, snap.s.paths[0] ?? '');
  if (!('node' in found)) throw new LifeboatError('CORRUPT', `snapshot ${snap.s.id.slice(0, 8)} holds no database file`);
  const { pageSize, pages } = snap.c;
  const model = new PageModel(pages);
  let next = 1;
  let carry = Buffer.alloc(0);
  await restoreStream(
    repo,
    found.node,
    new Writable({
      write(chunk: Buffer, _enc, done) {
        const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
        const whole = buf.length - (buf.length % pageSize);
        model.applyBase(next, buf.subarray(0, whole), pageSize);
        next += whole / pageSize;
        carry = Buffer.from(buf.subarray(whole));
        done();
      },
    }),
  );
  model.baseDone();
  const names = segmentsOf(await repo.listLogs(source), generation);
  for await (const t of transactionsAfter(repo, source, generation, snap.c.position as Position, names, (c) => comparePos(c, until) <= 0)) {
    model.applyFrames(t.frames, t.pageSize);
  }
  return model.view();
}
