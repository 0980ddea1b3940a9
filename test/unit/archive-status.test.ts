/**
 * The status contract's pieces: a reporter speaks at once on a change of health and
 * otherwise only every few seconds, never moves archivedThrough backwards; a WAL
 * position proves the moment it was read after only once the archive reaches it; the
 * daemon counts a silent archiver as down.
 */
import { describe, expect, it } from 'vitest';
import { StatusReporter, STATUS_STALE_MS, parseStatus, type ArchiveStatus } from '../../src/engine/archive-status.js';
import { LsnWitness } from '../../src/sources/postgres/lsn-proof.js';
import { applyStatus, archiveUp, type ArchiveState } from '../../src/daemon/supervisor.js';

describe('StatusReporter', () => {
  it('emits on a change at once, otherwise every interval, and keeps archivedThrough monotonic', () => {
    let now = 1_000_000;
    const out: ArchiveStatus[] = [];
    const r = new StatusReporter((s) => out.push(s), 5000, () => now);
    r.report({ healthy: true, archivedThrough: new Date(now - 100) });
    now += 1000;
    r.report({ healthy: true, archivedThrough: new Date(now - 100) });
    expect(out).toHaveLength(1);
    now += 1000;
    r.report({ healthy: false, archivedThrough: new Date(0), error: 'cannot query PostgreSQL', hint: 'is it running?' });
    expect(out).toHaveLength(2);
    expect(out[1]).toEqual({ time: new Date(now).toISOString(), kind: 'status', healthy: false, archivedThrough: new Date(now - 1100).toISOString(), error: 'cannot query PostgreSQL', hint: 'is it running?' });
    now += 5000;
    r.report({ healthy: false, archivedThrough: null, error: 'cannot query PostgreSQL' });
    expect(out).toHaveLength(3);
    expect(parseStatus(JSON.parse(JSON.stringify(out[2])) as Record<string, unknown>)).toEqual(out[2]);
    expect(parseStatus({ kind: 'caught-up', time: 'x' })).toBeUndefined();
  });
});

describe('LsnWitness', () => {
  it('proves a moment once the archive holds the position read after it', () => {
    const w = new LsnWitness();
    w.observe(100, 1000n);
    w.observe(200, 1000n);
    w.observe(300, 5000n);
    expect(w.provenThrough(999n)).toBeNull();
    expect(w.provenThrough(1000n)).toBe(200);
    expect(w.provenThrough(4999n)).toBe(200);
    expect(w.provenThrough(6000n)).toBe(300);
    // A position going backwards is another server: older samples prove nothing about it.
    w.observe(400, 10n);
    expect(w.provenThrough(10n)).toBe(400);
  });

  it('remembers what was read with the newest proven position', () => {
    const w = new LsnWitness();
    w.observe(100, 1000n, 'xmax 7');
    w.observe(200, 2000n, 'xmax 9');
    w.provenThrough(1500n);
    expect(w.provenTag).toBe('xmax 7');
    w.provenThrough(2000n);
    expect(w.provenTag).toBe('xmax 9');
  });
});

describe('archiveUp', () => {
  it('is up only with a recent healthy status', () => {
    const s: ArchiveState = { source: 'x', method: 'stream', running: true, restarts: 0 };
    expect(archiveUp(s, 0)).toEqual({ up: false, error: null });
    applyStatus(s, { healthy: true, archivedThrough: new Date(900).toISOString() }, 1000);
    expect(archiveUp(s, 1000)).toEqual({ up: true, error: null });
    expect(s.archivedThrough).toBe(900);
    expect(archiveUp(s, 1000 + STATUS_STALE_MS + 1).error).toMatch(/^no status from the archiver for \d+ s/);
    applyStatus(s, { healthy: false, archivedThrough: null, error: 'down', hint: 'start it' }, 2000);
    expect(archiveUp(s, 2000)).toEqual({ up: false, error: 'down' });
    expect(s).toMatchObject({ archivedThrough: 900, lastError: 'down', hint: 'start it' });
    expect(archiveUp({ ...s, running: false, lastError: 'exited with 19' }, 2000)).toEqual({ up: false, error: 'exited with 19' });
  });
});
