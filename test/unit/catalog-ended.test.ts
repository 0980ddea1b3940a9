/**
 * A job end the catalog's database refused (a full disk) is what reads of jobs show
 * until it is written: its status and error over the row as it was (progress kept),
 * redacted as a stored one, in the lists it now belongs to and not in the old one.
 */
import { chmodSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Catalog } from '../../src/daemon/catalog.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

function catalog(): Catalog {
  const dir = tmpdir('lb-catalog-');
  chmodSync(dir, 0o700);
  return new Catalog(dir);
}

/** A job created a millisecond after the last, so the order of the list is known. */
function job(c: Catalog, source: string) {
  const t = Date.now();
  while (Date.now() === t);
  return c.createJob({ kind: 'backup', source, trigger: 'api', status: 'running' });
}

describe('an unwritten job end', () => {
  it('is what job() and jobs() show, filtered as it now is, until it is written', () => {
    const c = catalog();
    const other = job(c, 'b');
    const ended = job(c, 'a'); // the newest
    c.updateJob(ended.id, { progress: { phase: 'backup', files: 3 } });
    c.endNotWritten(ended.id, { status: 'failed', error: 'cannot reach postgresql://app:hunter2@db/app', finished_at: new Date().toISOString() });

    expect(c.job(ended.id)).toMatchObject({ status: 'failed', progress: { phase: 'backup', files: 3 } });
    expect(c.job(ended.id)?.error).not.toContain('hunter2');
    // The database still has it running and newest: a limit of 1 must not come back empty.
    expect(c.jobs({ status: 'running', limit: 1 }).map((j) => j.id)).toEqual([other.id]);
    expect(c.jobs({ status: 'running' }).map((j) => j.id)).toEqual([other.id]);
    expect(c.jobs({ status: 'failed' }).map((j) => j.id)).toEqual([ended.id]);
    expect(c.jobs({ limit: 1 }).map((j) => j.id)).toEqual([ended.id]);
    expect(c.jobs({ source: 'a', status: 'failed' }).map((j) => j.id)).toEqual([ended.id]);
    expect(c.jobs({ source: 'b', status: 'failed' })).toEqual([]);

    c.updateJob(ended.id, { status: 'failed', error: 'written' });
    c.endWritten(ended.id);
    expect(c.job(ended.id)).toMatchObject({ status: 'failed', error: 'written' });
    expect(c.jobs({ status: 'running' }).map((j) => j.id)).toEqual([other.id]);
    c.db.close();
  });
});
