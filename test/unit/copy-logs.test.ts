/**
 * `lifeboat copy` carries the log archives of the snapshots it copies, as each kind
 * names them (its `log.sources`): a PostgreSQL source's archived and streamed WAL, a
 * SQLite source's frames; a files source has none, and another source's log that no
 * copied snapshot belongs to stays behind.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { copySnapshots } from '../../src/engine/copy/copy.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-copy-logs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('copy and log archives', () => {
  it('copies the logs each copied source\'s kind names, and only those', async () => {
    writeFileSync(path.join(dir, 'data'), 'some data\n');
    const from = await Repository.init(new MemoryStore(), 'pw');
    const to = await Repository.init(new MemoryStore(), 'pw2');
    await backup(from, { paths: [dir], source: { kind: 'files', name: 'uploads' } });
    await backup(from, { paths: [dir], source: { kind: 'postgres', name: 'main' } });
    await backup(from, { paths: [dir], source: { kind: 'sqlite', name: 'notes' } });
    await from.putLog('postgres.main', '00000001', '000000010000000000000001', Buffer.from('archived wal'));
    await from.putLog('postgres.main~stream', '00000001', '000000010000000000000002', Buffer.from('streamed wal'));
    await from.putLog('sqlite.notes', 'gen1', 'segment-1', Buffer.from('frames'));
    // No snapshot of this database: its log is not the copy's business.
    await from.putLog('sqlite.other', 'gen1', 'segment-1', Buffer.from('frames of another'));

    const r = await copySnapshots(from, to, { snapshots: [] });
    expect(r.copied).toHaveLength(3);
    expect(r.logs).toBe(3);
    const files = async (source: string) => (await to.listLogs(source)).map((l) => `${l.timeline}/${l.file}`);
    expect(await files('postgres.main')).toEqual(['00000001/000000010000000000000001']);
    expect(await files('postgres.main~stream')).toEqual(['00000001/000000010000000000000002']);
    expect(await files('sqlite.notes')).toEqual(['gen1/segment-1']);
    expect(await files('sqlite.other')).toEqual([]);
    expect(Buffer.from((await to.getLog('sqlite.notes', 'gen1', 'segment-1')) as Uint8Array).toString()).toBe('frames');
  });
});
