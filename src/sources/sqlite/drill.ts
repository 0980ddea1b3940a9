/**
 * A SQLite drill: the newest data (snapshot plus replicated frames) is restored into
 * the drill's scratch directory, where the restore itself runs integrity_check and
 * foreign_key_check. The generic part is engine/drill/drill.ts.
 */
import * as path from 'node:path';
import type { Repository } from '../../repo/repository.js';
import type { DrillContext } from '../source.js';
import { sqliteRestore } from './restore.js';

export async function drillSqlite(repo: Repository, name: string, { scratch, record }: DrillContext): Promise<void> {
  const started = Date.now();
  const r = await sqliteRestore(repo, { name, output: path.join(scratch, 'drill.db') });
  record.snapshot = r.snapshot.id;
  record.rto_seconds = (Date.now() - started) / 1000;
  record.rpo_seconds = (Date.now() - r.restoredTo.getTime()) / 1000;
  record.checks.push({ name: 'integrity_check', ok: true, detail: `ok (${r.commits} transactions replayed)` });
  record.checks.push({ name: 'foreign_key_check', ok: true, detail: `${r.foreignKeyViolations} rows reported` });
}
