/**
 * How retention trims a PostgreSQL source's WAL archive (the rules are in
 * engine/retention/logs.ts's header): every remaining base backup keeps the WAL from
 * its start to its end; the window's base keeps all WAL from its start on; history
 * files are always kept. Archived and streamed WAL are trimmed alike.
 */
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { windowBase, type LogTrim, type TrimOptions } from '../../engine/retention/logs.js';
import type { PgConsistency } from './names.js';
import { pgPoint } from './point.js';
import { parseLsn } from './wal.js';
import { storedWal } from './timelines.js';

export async function trimPostgres(repo: Repository, name: string, after: readonly Snapshot[], cutoff: number | undefined, opts: TrimOptions): Promise<LogTrim> {
  const label = { kind: 'postgres', source: name };
  const bases = after
    .filter((s) => s.source.kind === 'postgres' && s.source.name === name)
    .map((s) => pgPoint(s))
    .filter((c): c is PgConsistency => c !== undefined);
  if (bases.length === 0) return { ...label, removed: 0, keptFrom: null };
  if (opts.busy) return { ...label, removed: 0, keptFrom: null, skipped: 'another process holds the repository (a backup may be running); WAL kept, run again later' };
  const base = windowBase(bases, (c) => Date.parse(c.stopTime), cutoff) as PgConsistency;
  const segSize = base.walSegSize || 16 * 1024 * 1024;
  const seg = (lsn: string) => parseLsn(lsn) / BigInt(segSize);
  const from = seg(base.startLsn);
  // Each remaining base's own span stays (it makes that base consistent).
  const spans = bases.map((c) => [seg(c.startLsn), seg(c.stopLsn)] as const);
  let removed = 0;
  for await (const { source, log: l, wal: w } of storedWal(repo, name, segSize)) {
    const segno = w.segno ?? (w.kind === 'backup' ? BigInt(`0x${l.file.slice(8, 16)}`) * (0x1_0000_0000n / BigInt(segSize)) + BigInt(`0x${l.file.slice(16, 24)}`) : undefined);
    if (w.kind === 'history' || segno === undefined || segno >= from) continue;
    if (spans.some(([a, b]) => segno >= a && segno <= b)) continue;
    if (!opts.dryRun) await repo.store.delete(keys.log(source, l.timeline, l.file));
    removed++;
  }
  return { ...label, removed, keptFrom: base.startLsn };
}
