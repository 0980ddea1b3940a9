/**
 * A command must never end as if it had finished when it was left waiting: Node exits
 * 0 once its event loop is empty, whatever the program still awaits. These are the ways
 * that happened (a pool with no worker, a worker that died) and the guard at the end.
 */
import { spawnSync } from 'node:child_process';
import { openSync, closeSync, constants } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exportKey, newMasterKey } from '../../src/codec/crypto.js';
import { RestorePool } from '../../src/engine/workers/restore-pool.js';
import { ChunkPool } from '../../src/engine/workers/chunk-pool.js';
import { cleanupTmp, ROOT, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const EMPTY_JOB = { packKey: 'data/00/none', base: 0, data: new Uint8Array(0), blobs: [] };

function pool(threads: number): { pool: RestorePool; fd: number } {
  const fd = openSync(tmpdir('lb-stall-'), constants.O_RDONLY | constants.O_DIRECTORY);
  return { pool: new RestorePool({ key: exportKey(newMasterKey()), rootFd: fd }, threads), fd };
}

function workersOf(p: RestorePool): Worker[] {
  return (p as unknown as { slots: Array<{ worker: Worker }> }).slots.map((s) => s.worker);
}

describe('worker pools', () => {
  it('refuse to start without a worker (their jobs would wait for none)', () => {
    for (const n of [0, -1, Number.NaN]) {
      expect(() => pool(n)).toThrow(/at least one worker thread/);
      expect(() => new ChunkPool({} as never, n, {} as never)).toThrow(/at least one worker thread/);
    }
  });

  it('a restore worker that dies while idle fails the next job instead of taking it and never answering', async () => {
    const { pool: p, fd } = pool(1);
    expect(await p.run(EMPTY_JOB)).toBe(0);
    await workersOf(p)[0]!.terminate();
    await expect(p.run(EMPTY_JOB)).rejects.toThrow(/restore worker exited/);
    await p.close();
    closeSync(fd);
  }, 60_000);

  it('a restore worker that dies with a job fails that job and the ones waiting for a worker', async () => {
    const { pool: p, fd } = pool(1);
    const first = p.run(EMPTY_JOB);
    const waiting = p.run(EMPTY_JOB); // the one worker is busy: this waits for it
    const outcome = first.then(
      () => 'done',
      (e: Error) => e.message,
    );
    await workersOf(p)[0]!.terminate();
    await expect(waiting).rejects.toThrow(/restore worker exited/);
    // The first either finished before the worker went or failed with it; it does not hang.
    expect(await outcome).toMatch(/^(done|restore worker exited .*)$/);
    await p.close();
    closeSync(fd);
  }, 60_000);

  it('a closed restore pool refuses jobs (its workers are gone)', async () => {
    const { pool: p, fd } = pool(2);
    await p.close();
    await expect(p.run(EMPTY_JOB)).rejects.toThrow(/restore workers were stopped/);
    closeSync(fd);
  }, 60_000);
});

describe('a command left waiting', () => {
  const run = (body: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `import { failIfStalled } from ${JSON.stringify(path.join(ROOT, 'src/cli/output/errors.ts'))};\n${body}`], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, LIFEBOAT_DEBUG: '' },
    });

  it('exits 1 with an error, not 0, when its event loop empties before it finished', () => {
    const r = run('const command = new Promise(() => {}); failIfStalled(command); await command;');
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^lifeboat: the command stopped before it finished: nothing was left that could complete it\n {2}hint: if it was waiting for input, its input ended first; otherwise this is a bug/);
  }, 60_000);

  it('keeps the exit code of a command that finished', () => {
    const r = run('const command = new Promise((r) => setTimeout(r, 10)).then(() => (process.exitCode = 0)); failIfStalled(command); await command;');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  }, 60_000);
});
