/**
 * Recovering a whole deployment to one moment through the API: a files source and a
 * SQLite source come back as they were at that time, into new places; one existing
 * target refuses the whole recovery before anything starts.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp } from '../helpers.js';
import { testDaemon } from '../daemon-helpers.js';
import type { JobRow } from '../../src/daemon/catalog.js';

afterAll(() => cleanupTmp());

describe('POST /api/v1/recoveries', () => {
  it('brings several sources back to one moment, or starts nothing', async () => {
    const t = await testDaemon({ extraSources: '  notes:\n    kind: sqlite\n    path: $DIR/notes.db' });
    const dbFile = path.join(t.dir, 'notes.db');
    const db = new Database(dbFile);
    db.pragma('journal_mode = WAL');
    db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('keep me'), ('me too')");
    const post = (url: string, payload: unknown) => t.daemon.app.inject({ method: 'POST', url, headers: t.auth('operator'), payload: payload as Record<string, unknown> });
    const backupAll = async () => {
      for (const source of ['docs', 'notes']) {
        const r = await post(`/api/v1/sources/${source}/backup`, {});
        const done = (await t.daemon.runner.wait((r.json() as JobRow).id)) as JobRow;
        expect(done.status, done.error ?? '').toBe('succeeded');
      }
    };
    try {
      await backupAll();
      await new Promise((r) => setTimeout(r, 50));
      const moment = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 50));
      // The accident, and the backups after it.
      db.exec('DELETE FROM notes');
      writeFileSync(path.join(t.data, 'a.txt'), 'overwritten\n');
      await backupAll();

      const docsTarget = path.join(t.dir, 'recovered-docs');
      const notesTarget = path.join(t.dir, 'recovered-notes.db');
      // One target exists: nothing starts.
      writeFileSync(notesTarget, 'in the way');
      const jobs = t.daemon.catalog.jobs().length;
      const refused = await post('/api/v1/recoveries', { time: moment, targets: { docs: docsTarget, notes: notesTarget } });
      expect(refused.statusCode).toBe(409);
      expect(refused.json().error.code).toBe('TARGET_EXISTS');
      expect(t.daemon.catalog.jobs().length).toBe(jobs);
      expect(existsSync(docsTarget)).toBe(false);

      const ok = await post('/api/v1/recoveries', { time: moment, targets: { docs: docsTarget, notes: `${notesTarget}.2` } });
      expect(ok.statusCode, ok.body).toBe(202);
      const started = (ok.json() as { jobs: JobRow[] }).jobs;
      expect(started.map((j) => [j.kind, j.source])).toEqual([['restore', 'docs'], ['restore', 'notes']]);
      for (const j of started) {
        const done = (await t.daemon.runner.wait(j.id)) as JobRow;
        expect(done.status, done.error ?? '').toBe('succeeded');
      }
      expect(readFileSync(path.join(docsTarget, t.data, 'a.txt'), 'utf8')).toBe('first file\n');
      const copy = new Database(`${notesTarget}.2`, { readonly: true });
      expect(copy.prepare('SELECT body FROM notes ORDER BY id').all()).toEqual([{ body: 'keep me' }, { body: 'me too' }]);
      copy.close();

      // A moment before any backup: refused with the reason.
      const early = await post('/api/v1/recoveries', { time: '2001-01-01T00:00:00Z', targets: { docs: path.join(t.dir, 'x') } });
      expect(early.statusCode).toBe(404);
      expect(early.json().error.message).toBe('no backup of docs at or before 2001-01-01T00:00:00Z');
      expect((await post('/api/v1/recoveries', { targets: { nosuch: '/tmp/never-lifeboat' } })).json().error).toMatchObject({ code: 'NOT_FOUND', message: 'unknown source "nosuch"' });
    } finally {
      db.close();
      await t.daemon.stop();
    }
  });

  it('plans every member before any starts: a missing parent, a bin_dir without pg_ctl or overlapping targets start nothing', async () => {
    const t = await testDaemon({ extraSources: '  notes:\n    kind: sqlite\n    path: $DIR/notes.db\n  orders:\n    kind: postgres\n    dsn: postgresql://postgres@127.0.0.1:1/postgres\n    bin_dir: $DIR/no-such-bin' });
    const post = (payload: unknown) => t.daemon.app.inject({ method: 'POST', url: '/api/v1/recoveries', headers: t.auth('operator'), payload: payload as Record<string, unknown> });
    try {
      const b = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/sources/docs/backup', headers: t.auth('operator') });
      expect((await t.daemon.runner.wait((b.json() as JobRow).id)).status).toBe('succeeded');
      const jobs = t.daemon.catalog.jobs().length;
      const docsTarget = path.join(t.dir, 'recovered-docs');

      // The files member is fine; the SQLite member's parent directory does not exist.
      const parent = await post({ targets: { docs: docsTarget, notes: path.join(t.dir, 'no-such-dir', 'notes.db') } });
      expect(parent.statusCode).toBe(404);
      expect(parent.json().error.message).toBe(`the parent directory ${path.join(t.dir, 'no-such-dir')} of restore target ${path.join(t.dir, 'no-such-dir', 'notes.db')} does not exist; nothing was started`);

      // The PostgreSQL member's bin_dir lacks the binaries its restore will start.
      const tools = await post({ targets: { docs: docsTarget, orders: path.join(t.dir, 'orders') } });
      expect(tools.statusCode).toBe(404);
      expect(tools.json().error.message).toBe(`no pg_ctl in ${path.join(t.dir, 'no-such-bin')}`);

      // Two members into one place.
      const overlap = await post({ targets: { docs: docsTarget, notes: path.join(docsTarget, 'notes.db') } });
      expect(overlap.statusCode).toBe(400);
      expect(overlap.json().error.message).toMatch(/^the restore targets of docs and notes overlap/);

      // A single restore is planned the same way.
      const single = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/restores', headers: t.auth('operator'), payload: { source: 'docs', target: path.join(t.dir, 'nope', 'x') } });
      expect(single.statusCode).toBe(404);

      // Nothing started, nothing written.
      await new Promise((r) => setImmediate(r));
      expect(t.daemon.catalog.jobs().length).toBe(jobs);
      expect(existsSync(docsTarget)).toBe(false);
    } finally {
      await t.daemon.stop();
    }
  });
});
