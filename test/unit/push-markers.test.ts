import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { markerText, pushSpool, takePushMarker } from '../../src/sources/postgres/archive.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

describe('archive-push batch markers', () => {
  it('answer only for the repository and source that stored the segment, once', async () => {
    const data = tmpdir();
    const wal = path.join(data, 'pg_wal', '000000010000000000000007');
    const spool = pushSpool(wal)!;
    expect(spool).toBe(path.join(data, 'lifeboat-archive-spool'));
    await fs.mkdir(spool, { recursive: true });
    await fs.writeFile(path.join(spool, '000000010000000000000007.pushed'), markerText('repo-a', 'main'));
    // Another repository (archive_command was repointed): not taken, and dropped.
    expect(await takePushMarker(wal, markerText('repo-b', 'main'))).toBe(false);
    await expect(fs.stat(path.join(spool, '000000010000000000000007.pushed'))).rejects.toThrow();
    await fs.writeFile(path.join(spool, '000000010000000000000007.pushed'), markerText('repo-a', 'main'));
    expect(await takePushMarker(wal, markerText('repo-a', 'other'))).toBe(false);
    await fs.writeFile(path.join(spool, '000000010000000000000007.pushed'), markerText('repo-a', 'main'));
    expect(await takePushMarker(wal, markerText('repo-a', 'main'))).toBe(true);
    expect(await takePushMarker(wal, markerText('repo-a', 'main'))).toBe(false);
  });

  it('are never used for files outside a pg_wal directory', async () => {
    expect(pushSpool('/tmp/somewhere/000000010000000000000007')).toBeUndefined();
    expect(await takePushMarker('/tmp/somewhere/000000010000000000000007', 'x')).toBe(false);
  });
});
