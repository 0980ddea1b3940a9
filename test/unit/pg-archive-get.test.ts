/**
 * `pg archive-get` against `pg stream` running beside it: the streamer stores a
 * completed segment, then deletes its partial. A look for the streamed segment just
 * before it was stored and one for the partial just after it was deleted must not
 * together answer "not archived" (PostgreSQL would end a restore to the latest moment
 * there): the streamed segment is looked for once more.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archiveGet, archiveHas } from '../../src/sources/postgres/archive.js';
import type { Repository } from '../../src/repo/repository.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-archive-get-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FILE = '000000010000000000000003';

/** The streamed copy appears (and its partial goes) just after the first look for it. */
function streaming() {
  let stored = false;
  let looks = 0;
  const answer = (key: string): Buffer | undefined => {
    if (key.endsWith('.partial')) return undefined; // deleted by the time it is looked for
    if (key.includes('~stream')) {
      looks++;
      const there = stored;
      stored = true;
      return there ? Buffer.from('whole segment') : undefined;
    }
    return undefined; // not in archive_command's archive
  };
  return { answer, looks: () => looks };
}

describe('pg archive-get beside pg stream', () => {
  it('finds a streamed segment stored between its two looks, by data and by name', async () => {
    const s = streaming();
    const repo = { getLog: async (source: string, tl: string, file: string) => s.answer(`logs/${source}/${tl}/${file}`) } as unknown as Repository;
    const dest = path.join(dir, 'RECOVERYXLOG');
    expect(await archiveGet(repo, 'main', FILE, dest)).toBe(true);
    expect(readFileSync(dest, 'utf8')).toBe('whole segment');
    expect(s.looks()).toBe(2);
    const n = streaming();
    expect(await archiveHas({ stat: async (key: string) => (n.answer(key) ? { key, size: 1 } : undefined) }, 'main', FILE)).toBe(true);
  });

  it('still answers "not archived" for a segment no one stores', async () => {
    const repo = { getLog: async () => undefined } as unknown as Repository;
    expect(await archiveGet(repo, 'main', FILE, path.join(dir, 'X'))).toBe(false);
    expect(await archiveHas({ stat: async () => undefined }, 'main', FILE)).toBe(false);
  });
});
