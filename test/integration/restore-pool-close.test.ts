/**
 * Restore batches overlap (issue 19): when one batch's failure closes the worker pool,
 * the jobs of the batch beside it, posted to a worker or waiting for one, must settle
 * (refused as "pool closed", which the restore does not report over the real failure),
 * not wait forever for a reply from a terminated thread.
 */
import { closeSync, openSync, constants as C } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { exportKey, newMasterKey } from '../../src/codec/crypto.js';
import { isPoolClosed, RestorePool } from '../../src/engine/workers/restore-pool.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const emptyJob = { packKey: 'data/00/none', base: 0, data: new Uint8Array(0), blobs: [] };

describe('closing the restore pool', () => {
  it('settles every job posted or waiting, and refuses new ones, with errors marked as the pool closing', async () => {
    const fd = openSync(tmpdir(), C.O_RDONLY | C.O_DIRECTORY);
    try {
      const pool = new RestorePool({ key: exportKey(newMasterKey()), rootFd: fd }, 1);
      // One thread: the first job is posted to it, the others wait for it.
      const jobs = [pool.run(emptyJob), pool.run(emptyJob), pool.run(emptyJob)];
      await pool.close();
      const settled = await Promise.allSettled(jobs);
      // A job the worker answered before it was terminated may have succeeded; every
      // other one is refused as closed. None is left waiting (this await returned).
      for (const s of settled) if (s.status === 'rejected') expect(isPoolClosed(s.reason), String(s.reason)).toBe(true);
      expect(settled.filter((s) => s.status === 'rejected').length).toBeGreaterThan(0);
      await expect(pool.run(emptyJob)).rejects.toSatisfy(isPoolClosed);
    } finally {
      closeSync(fd);
    }
  });

  it('when every worker dies, jobs waiting for one are refused, not left waiting', async () => {
    const fd = openSync(tmpdir(), C.O_RDONLY | C.O_DIRECTORY);
    try {
      const pool = new RestorePool({ key: exportKey(newMasterKey()), rootFd: fd }, 1);
      const jobs = [pool.run(emptyJob), pool.run(emptyJob), pool.run(emptyJob)];
      // The one worker dies (as by running out of memory): not a close.
      await (pool as unknown as { slots: Array<{ worker: Worker }> }).slots[0]!.worker.terminate();
      const settled = await Promise.allSettled(jobs);
      for (const s of settled) if (s.status === 'rejected') expect(String(s.reason)).toMatch(/restore worker exited/);
      expect(settled.filter((s) => s.status === 'rejected').length).toBeGreaterThan(0);
      await expect(pool.run(emptyJob)).rejects.toThrow(/restore worker exited/);
      await pool.close();
    } finally {
      closeSync(fd);
    }
  });

  it('another failure is not mistaken for the pool closing', () => {
    expect(isPoolClosed(new Error('blob 0123 in data/01/x does not match its id'))).toBe(false);
    expect(isPoolClosed(Object.assign(new Error('x'), { poolClosed: 'yes' }))).toBe(false);
    expect(isPoolClosed(undefined)).toBe(false);
  });
});
