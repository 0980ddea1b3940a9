/**
 * A command drill: the newest dump restored into the drill's scratch directory (every
 * blob authenticated on the way), then read back and compared with what the backup
 * recorded: its size and its SHA-256. It does not run the load command: that would
 * load into the live target. The generic part is engine/drill/drill.ts.
 */
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { Repository } from '../../repo/repository.js';
import type { DrillContext } from '../source.js';
import { commandPoint } from './point.js';
import { commandRestore } from './restore.js';

export async function drillCommand(repo: Repository, name: string, { scratch, record }: DrillContext): Promise<void> {
  const started = Date.now();
  const output = path.join(scratch, 'dump');
  const r = await commandRestore(repo, { name, output });
  record.snapshot = r.snapshot.id;
  record.rpo_seconds = Math.max(0, (Date.now() - Date.parse(r.snapshot.time)) / 1000);
  record.rpo_basis = 'backup';
  const point = commandPoint(r.snapshot);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const piece of createReadStream(output) as AsyncIterable<Buffer>) {
    hash.update(piece);
    bytes += piece.length;
  }
  record.rto_seconds = Math.max(0.001, (Date.now() - started) / 1000);
  if (!point) {
    record.checks.push({ name: 'dump', ok: false, detail: 'the snapshot records no consistency point to compare with' });
    return;
  }
  const sha = hash.digest('hex');
  record.checks.push({ name: 'dump_bytes', ok: bytes === point.bytes, detail: `${bytes} bytes restored, ${point.bytes} recorded` });
  record.checks.push({ name: 'dump_sha256', ok: sha === point.sha256, detail: sha === point.sha256 ? `matches the dump of ${point.startedAt}` : `${sha} restored, ${point.sha256} recorded` });
  record.checks.push({ name: 'dump_exit', ok: point.exitCode === 0, detail: `${point.argv[0] ?? ''} exited ${point.exitCode} after ${point.durationMs} ms` });
}
