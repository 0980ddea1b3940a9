/**
 * A bucket drill: the newest snapshot of the source restored into the drill's scratch
 * directory (every blob authenticated on the way), then every object the snapshot
 * lists checked to be there at its recorded size, and the count checked against the
 * snapshot's consistency point. The generic part is engine/drill/drill.ts.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { walkTree } from '../../engine/browse/tree-walk.js';
import type { Repository } from '../../repo/repository.js';
import type { DrillContext } from '../source.js';
import { bucketPoint } from './point.js';
import { pickBucketSnapshot, restoreToDirectory } from './restore.js';

export async function drillBucket(repo: Repository, name: string, { scratch, record }: DrillContext): Promise<void> {
  const snap = await pickBucketSnapshot(repo, { name });
  record.snapshot = snap.id;
  record.rpo_seconds = (Date.now() - Date.parse(snap.time)) / 1000;
  const started = Date.now();
  const target = path.join(scratch, 'bucket');
  const r = await restoreToDirectory(repo, snap, { output: target });
  record.checks.push({ name: 'restore', ok: true, detail: `${r.objects} objects, every blob authenticated` });
  let objects = 0;
  let bad: string | undefined;
  for await (const e of walkTree(repo, snap.tree)) {
    if (e.node.type !== 'file') continue;
    objects++;
    const st = await fs.stat(path.join(target, e.path)).catch(() => undefined);
    if (!st || st.size !== (e.node.size ?? 0)) bad ??= `${e.node.object?.key ?? e.path}: ${st ? `${st.size} bytes, expected ${e.node.size}` : 'missing'}`;
  }
  const point = bucketPoint(snap);
  record.checks.push({ name: 'objects', ok: !bad, detail: bad ?? `${objects} objects at their recorded sizes` });
  record.checks.push({ name: 'count', ok: point?.objects === objects, detail: `${objects} in the tree, ${point?.objects ?? '?'} listed at backup` });
  record.rto_seconds = (Date.now() - started) / 1000;
}
