/**
 * A files drill: the newest snapshot of the source is restored into the drill's
 * scratch directory (every blob authenticated on the way) and every file the
 * snapshot lists is checked to be there at its recorded size. The generic part is
 * engine/drill/drill.ts.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { walkTree } from '../../engine/browse/tree-walk.js';
import { restore } from '../../engine/restore/restorer.js';
import type { DrillContext } from '../source.js';
import { filesDrillName } from './names.js';

export async function drillFiles(repo: Repository, name: string, { scratch, record }: DrillContext): Promise<void> {
  const snap = (await repo.listSnapshots())
    .filter((s) => s.source.kind === 'files' && filesDrillName(s) === name)
    .sort((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
  if (!snap) throw new LifeboatError('NOT_FOUND', `no backup of files:${name}`, { hint: '`lifeboat drill --json` without --source drills every source' });
  await repo.loadIndex(); // after choosing: the index files of a snapshot are stored before it
  record.snapshot = snap.id;
  record.rpo_seconds = (Date.now() - Date.parse(snap.time)) / 1000;
  const started = Date.now();
  // A fresh directory inside the private scratch one: restore targets must not exist yet.
  const target = path.join(scratch, 'files');
  const r = await restore(repo, snap, { target });
  record.checks.push({ name: 'restore', ok: r.errors.length === 0, detail: r.errors.length ? `${r.errors.length} entries could not be restored` : 'every blob authenticated' });
  // What the snapshot says must be on disk: every file, at its size.
  let files = 0;
  let bad: string | undefined;
  for await (const e of walkTree(repo, snap.tree)) {
    if (e.node.type !== 'file') continue;
    files++;
    const st = await fs.stat(path.join(target, e.path)).catch(() => undefined);
    if (!st || st.size !== (e.node.size ?? 0)) bad ??= `${e.path}: ${st ? `${st.size} bytes, expected ${e.node.size}` : 'missing'}`;
  }
  record.checks.push({ name: 'files', ok: !bad, detail: bad ?? `${files} files at their recorded sizes` });
  record.rto_seconds = (Date.now() - started) / 1000;
}
