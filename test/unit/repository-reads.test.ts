/**
 * The API's shared repository reads: one child per repository at a time, identical
 * requests share it, a short cache dropped by a writing job, 429 beyond the queue.
 * Driven by a fake child whose runs end when the test says, so nothing is timed.
 */
import { describe, expect, it } from 'vitest';
import { RepositoryReads } from '../../src/daemon/reads.js';
import { isLifeboatError } from '../../src/errors.js';

function fakeChildren() {
  const runs: Array<{ repository: string; args: string[]; finish: (v: unknown) => void; fail: (e: Error) => void }> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const run = (repository: string, args: string[]) =>
    new Promise<unknown>((resolve, reject) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      runs.push({ repository, args, finish: (v) => (inFlight--, resolve(v)), fail: (e) => (inFlight--, reject(e)) });
    });
  return { runs, run, maxInFlight: () => maxInFlight };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('RepositoryReads', () => {
  it('starts one child for 50 concurrent identical requests and gives all of them its result', async () => {
    const f = fakeChildren();
    const reads = new RepositoryReads(f.run);
    const all = Promise.all(Array.from({ length: 50 }, () => reads.get('main', ['snapshots'])));
    await settle();
    expect(f.runs.length).toBe(1);
    f.runs[0]?.finish([{ id: 'a' }]);
    expect(new Set((await all).map((v) => JSON.stringify(v)))).toEqual(new Set(['[{"id":"a"}]']));
    expect(reads.started.get('main')).toBe(1);
    // Within the TTL the result is served without a child.
    expect(await reads.get('main', ['snapshots'])).toEqual([{ id: 'a' }]);
    expect(f.runs.length).toBe(1);
  });

  it('runs one child per repository at a time, different reads one after the other', async () => {
    const f = fakeChildren();
    const reads = new RepositoryReads(f.run);
    const a = reads.get('main', ['snapshots']);
    const b = reads.get('main', ['forget', '--dry-run']);
    const c = reads.get('other', ['snapshots']);
    await settle();
    expect(f.runs.map((r) => r.repository)).toEqual(['main', 'other']); // main's second read waits its turn
    f.runs[0]?.fail(new Error('boom'));
    await expect(a).rejects.toThrow('boom');
    await settle();
    expect(f.runs.length).toBe(3); // a failure frees the slot too
    f.runs[2]?.finish('preview');
    f.runs[1]?.finish('other');
    expect([await b, await c]).toEqual(['preview', 'other']);
    expect(f.maxInFlight()).toBe(2); // one per repository
  });

  it('answers BUSY (429) beyond the bounded queue, starting nothing more', async () => {
    const f = fakeChildren();
    const reads = new RepositoryReads(f.run, { maxWaiting: 5 });
    const ok = Array.from({ length: 5 }, () => reads.get('main', ['snapshots']));
    const refused = await reads.get('main', ['snapshots']).catch((e: unknown) => e);
    expect(isLifeboatError(refused, 'BUSY')).toBe(true);
    await settle();
    f.runs[0]?.finish(1);
    expect(await Promise.all(ok)).toEqual([1, 1, 1, 1, 1]);
    expect(f.runs.length).toBe(1);
  });

  it('drops the cache when a job that writes the repository finishes, and never caches a read that overlapped it', async () => {
    const f = fakeChildren();
    const reads = new RepositoryReads(f.run);
    const first = reads.get('main', ['snapshots']);
    await settle();
    reads.invalidate('main'); // a backup finished while the listing ran
    f.runs[0]?.finish('before');
    expect(await first).toBe('before');
    const second = reads.get('main', ['snapshots']);
    await settle();
    expect(f.runs.length).toBe(2);
    f.runs[1]?.finish('after');
    expect(await second).toBe('after');
    expect(await reads.get('main', ['snapshots'])).toBe('after');
    reads.invalidate('main');
    const third = reads.get('main', ['snapshots']);
    await settle();
    expect(f.runs.length).toBe(3);
    f.runs[2]?.finish('third');
    expect(await third).toBe('third');
  });

  it('serves from memory only for the TTL (a fake clock)', async () => {
    const f = fakeChildren();
    let now = 0;
    const reads = new RepositoryReads(f.run, { ttlMs: 10_000 }, () => now);
    const a = reads.get('main', ['snapshots']);
    await settle();
    f.runs[0]?.finish('a');
    await a;
    now = 9_999;
    expect(await reads.get('main', ['snapshots'])).toBe('a');
    now = 10_000;
    const b = reads.get('main', ['snapshots']);
    await settle();
    f.runs[1]?.finish('b');
    expect(await b).toBe('b');
  });
});
