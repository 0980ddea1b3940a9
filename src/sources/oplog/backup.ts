/**
 * `lifeboat oplog backup`: one pass of the shipper (every whole record the journal
 * holds now goes to segments), then a marker snapshot whose point says how far the
 * shipped history reaches (point.ts). Its time is the proof's: everything written to
 * the journal before it is stored.
 */
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { backupStream } from '../../engine/backup/stream.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { pointPath } from './names.js';
import type { RecordFormat } from './options.js';
import { Shipper, type OplogEvent } from './replicate.js';

export interface OplogBackupOptions {
  file: string;
  name: string;
  format: RecordFormat;
  timeField?: string | undefined;
  tags?: string[];
  onEvent?: (e: OplogEvent) => void;
}

/** `--name` defaults to the file's name without its extension: oplog.jsonl is "oplog". */
export function defaultName(file: string): string {
  return path.parse(file).name;
}

export async function oplogBackup(repo: Repository, opts: OplogBackupOptions): Promise<Snapshot> {
  const shipper = new Shipper(repo, { file: opts.file, name: opts.name, format: opts.format, timeField: opts.timeField, intervalMs: 1000, signal: new AbortController().signal, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
  const s = await shipper.once();
  const point = s.point as unknown as Record<string, unknown>;
  return backupStream(repo, Readable.from([Buffer.from(`${JSON.stringify(point)}\n`)]), {
    path: pointPath(opts.name),
    source: { kind: 'oplog', name: opts.name },
    tags: opts.tags ?? [],
    // The proof's moment when one was made; a journal shipped through a rotation proves nothing yet.
    ...(s.provenAt ? { time: new Date(s.provenAt) } : {}),
    beforeSnapshot: async () => point,
  });
}
