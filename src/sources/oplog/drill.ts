/**
 * An oplog drill: every stored record restored into the drill's scratch directory,
 * then read back: the records frame whole, their times never go backwards, and the
 * newest record's age is the RPO. The generic part is engine/drill/drill.ts.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Repository } from '../../repo/repository.js';
import type { DrillContext } from '../source.js';
import { generations } from './history.js';
import { logSource } from './names.js';
import { countRecords } from './records.js';
import { decodeSegment } from './segment.js';
import { oplogRestore } from './restore.js';

export async function drillOplog(repo: Repository, name: string, { scratch, record }: DrillContext): Promise<void> {
  const started = Date.now();
  const output = path.join(scratch, 'oplog.restored');
  const r = await oplogRestore(repo, { name, output });
  record.snapshot = r.snapshot;
  record.rto_seconds = Math.max(0.001, (Date.now() - started) / 1000);
  const last = r.restoredTo?.getTime();
  record.rpo_seconds = last === undefined ? null : Math.max(0, (Date.now() - last) / 1000);
  record.rpo_basis = 'last-transaction';
  // The file as written must hold exactly the records the restore counted, in whole frames.
  const gens = await generations(repo, name);
  const newest = gens[gens.length - 1];
  const seg = newest?.names[newest.names.length - 1];
  const format = seg ? decodeSegment((await repo.getLog(logSource(name), newest?.id ?? '', seg.file)) ?? Buffer.alloc(0), seg.file).meta.format : 'jsonl';
  const written = readFileSync(output);
  const counted = countRecords(written, format);
  const whole = format === 'jsonl' ? written.length === 0 || written[written.length - 1] === 0x0a : true;
  record.checks.push({ name: 'records', ok: counted === r.records && whole, detail: `${counted} whole ${format} records in ${written.length} bytes (${r.records} restored, ${r.generations} generations${r.trimmed ? ', older ones trimmed by retention' : ''})` });
  const times = await markTimes(repo, name);
  record.checks.push({ name: 'monotonic_times', ok: times.ok, detail: times.ok ? `${times.marks} cut points in time order` : times.detail });
  record.checks.push({ name: 'last_record', ok: last !== undefined, detail: last === undefined ? 'no record stored' : new Date(last).toISOString() });
}

/** Every mark of every generation, in history order: their times must never go backwards. */
async function markTimes(repo: Repository, name: string): Promise<{ ok: boolean; marks: number; detail: string }> {
  let prev = 0;
  let marks = 0;
  for (const g of await generations(repo, name)) {
    for (const n of g.names) {
      if (n.lastTime < prev) return { ok: false, marks, detail: `segment ${g.id}/${n.file} ends before the one before it` };
      prev = n.lastTime;
      marks++;
    }
  }
  return { ok: true, marks, detail: '' };
}
