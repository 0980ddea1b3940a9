/**
 * A SQLite drill: the newest data (snapshot plus replicated frames) is restored into
 * the drill's scratch directory, where the restore itself runs integrity_check and
 * foreign_key_check. When the snapshot recorded a graph (docs/graph.md), the restored
 * copy is measured the same way and judged against it (sources/graph/record.ts).
 * The generic part is engine/drill/drill.ts.
 */
import * as path from 'node:path';
import { isLifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import type { DrillContext } from '../source.js';
import { judgeGraph } from '../graph/record.js';
import { checkSqliteGraph, measureSqliteGraph } from './graph.js';
import { requireSqlitePoint } from './point.js';
import { sqliteRestore } from './restore.js';
import { openDefensive } from './select-tables.js';

export async function drillSqlite(repo: Repository, name: string, { scratch, record }: DrillContext): Promise<void> {
  const started = Date.now();
  const output = path.join(scratch, 'drill.db');
  const r = await sqliteRestore(repo, { name, output });
  record.snapshot = r.snapshot.id;
  record.rto_seconds = (Date.now() - started) / 1000;
  record.rpo_seconds = (Date.now() - r.restoredTo.getTime()) / 1000;
  record.checks.push({ name: 'integrity_check', ok: true, detail: `ok, tables and every index agree (${r.commits} transactions replayed)` });
  record.checks.push({ name: 'foreign_key_check', ok: true, detail: `${r.foreignKeyViolations} rows reported` });

  const facts = requireSqlitePoint(r.snapshot).graph;
  if (!facts) return;
  // The restored file's schema is the backup's: no function calls with side effects from it.
  const db = openDefensive(output, { readonly: true, fileMustExist: true });
  try {
    let measured;
    try {
      checkSqliteGraph(db, facts.declaration, 'the restored copy');
      measured = measureSqliteGraph(db, facts.declaration, { dangling: true });
    } catch (err) {
      // The restore worked; the graph it holds does not fit what the backup measured.
      record.checks.push({ name: 'graph', ok: false, detail: isLifeboatError(err) ? err.message : `measuring the restored copy failed: ${(err as Error).message}` });
      return;
    }
    judgeGraph(facts, measured, { samePoint: r.commits === 0, replayed: `${r.commits} transactions replayed on top of the snapshot` }, record);
  } finally {
    db.close();
  }
}
