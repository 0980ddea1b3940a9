/**
 * How retention trims a journal's segments. An oplog snapshot is a marker whose
 * records are in the segments, so without a point-in-time window nothing is removed
 * while any of the source's snapshots remain: every remaining one restores from the
 * journal's first stored record. With a window (`--keep-logs-within`), segments whose
 * every record is older than its cutoff are removed; restores then start at the oldest
 * record kept (the restore says so: `trimmed`). When no snapshot of the source remains,
 * its segments go too. The newest segment of the newest generation always stays: a
 * restarted replicator continues from it. A busy repository (a replicator or backup
 * may be shipping) loses nothing from the newest generation. Restore records (fork.ts)
 * go with the window too: older than its cutoff, or all when no snapshot remains.
 */
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import type { LogTrim, TrimOptions } from '../../engine/retention/logs.js';
import { trimRestoreRecords } from './fork.js';
import { generations } from './history.js';
import { logSource } from './names.js';

export async function trimOplog(repo: Repository, name: string, after: readonly Snapshot[], cutoff: number | undefined, opts: TrimOptions): Promise<LogTrim> {
  const source = logSource(name);
  const remaining = after.some((s) => s.source.kind === 'oplog' && s.source.name === name);
  if (remaining && cutoff === undefined) return { kind: 'oplog', source: name, removed: 0, keptFrom: null };
  const gens = await generations(repo, name);
  if (!remaining && gens.length > 0 && opts.lateSnapshots) {
    // A snapshot stored since the ones judged by were listed (engine/retention/logs.ts) still needs the journal.
    const late = await opts.lateSnapshots();
    if (late.unreadable || late.snapshots.some((s) => s.source.kind === 'oplog' && s.source.name === name)) return { kind: 'oplog', source: name, removed: 0, keptFrom: null };
  }
  const newest = gens[gens.length - 1];
  let removed = 0;
  let keptFrom: string | null = null;
  for (const g of gens) {
    const last = g === newest ? g.names.reduce((m, n) => (n.end > m.end ? n : m), g.names[0] ?? { end: -1, file: '' }) : undefined;
    for (const n of g.names) {
      const old = !remaining || (cutoff !== undefined && n.lastTime < cutoff);
      if (!old || n === last || (g === newest && opts.busy)) {
        keptFrom ??= `${g.id}@${n.start}`;
        continue;
      }
      if (!opts.dryRun) await repo.store.delete(keys.log(source, g.id, n.file));
      removed++;
    }
  }
  removed += await trimRestoreRecords(repo, name, remaining ? cutoff : undefined, opts.dryRun === true);
  return { kind: 'oplog', source: name, removed, keptFrom: removed ? keptFrom : null };
}
