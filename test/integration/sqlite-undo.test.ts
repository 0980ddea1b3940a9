/**
 * Undo to the transaction, against a real SQLite database replicated by the real CLI:
 * `sqlite history --around` names the table a deleting transaction touched (and not the
 * others), `restore --before-txn N` gives back exactly the database as it was just
 * before it — every row of every table compared with a copy taken right before the
 * DELETE — even though transactions committed right after it were seen in the same
 * poll, at the same time; `--txn N` includes it; an unknown number is a clear error;
 * and the numbers carry on, without repeats, when a replicator resumes the generation.
 */
import { readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, runCli } from '../helpers.js';
import { ENV, Replicator, cli, newRepo } from '../sqlite-helpers.js';

afterAll(cleanupTmp);

interface HistoryJson {
  generation: string;
  time_source: string;
  transactions: Array<{ seq: number; time: string; pages: number; tables: string[]; objects: Array<{ name: string; type: string; table: string | null; pages: number; delta: number }> }>;
}

function allRows(file: string): Record<string, unknown[]> {
  const db = new Database(file, { fileMustExist: true });
  try {
    return {
      notes: db.prepare('SELECT * FROM notes ORDER BY id').all(),
      audit: db.prepare('SELECT * FROM audit ORDER BY id').all(),
    };
  } finally {
    db.close();
  }
}

describe('sqlite history and restore --before-txn', () => {
  it('names the table a DELETE touched and undoes exactly that transaction and what followed', async () => {
    const { dir, repo } = await newRepo('lb-undo-');
    const file = path.join(dir, 'app.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
      CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT NOT NULL);
      CREATE INDEX audit_what ON audit(what);`);
    const note = db.prepare('INSERT INTO notes (body) VALUES (?)');
    const audit = db.prepare('INSERT INTO audit (what) VALUES (?)');
    const write = (n: number, tag: string) => {
      for (let i = 0; i < n; i++) {
        note.run(`${tag} note ${i} `.repeat(4));
        if (i % 4 === 0) audit.run(`${tag} ${i}`);
      }
    };
    write(50, 'base');
    const rep = new Replicator(repo, file, ['--interval', '300ms']);
    try {
      await rep.waitFor('snapshot');
      write(400, 'before');
      await rep.archived(Date.now());
      // These and the DELETE may well be seen in one poll, at one time.
      write(20, 'just before');
      // The copy "just before": the same connection, nothing committed in between.
      const copy = path.join(dir, 'copy-before.db');
      db.exec(`VACUUM INTO '${copy}'`);
      const deleteAt = Date.now();
      const deleted = db.prepare('DELETE FROM notes WHERE id % 3 = 0').run().changes;
      // The application goes on at once: these land in the same poll as the DELETE.
      write(40, 'after');
      await rep.archived(Date.now());

      const h = JSON.parse(
        await cli(['-r', repo, '--json', 'sqlite', 'history', 'app', '--around', new Date(deleteAt).toISOString(), '--limit', '60']),
      ) as HistoryJson;
      expect(h.time_source).toMatch(/replicator/);
      expect(h.transactions.length).toBe(60);
      const seqs = h.transactions.map((t) => t.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
      const deleting = h.transactions.filter((t) => t.objects.some((o) => o.name === 'notes' && o.delta < 0));
      expect(deleting).toHaveLength(1);
      const del = deleting[0]!;
      expect(del.tables).toEqual(['notes']);
      expect(del.objects.find((o) => o.name === 'notes')?.delta).toBe(-deleted);
      expect(del.pages).toBeGreaterThan(1);
      // Inserts that also wrote the audit table name it and its index.
      const withAudit = h.transactions.find((t) => t.tables.includes('audit'));
      expect(withAudit?.objects.map((o) => o.name)).toEqual(expect.arrayContaining(['audit', 'audit_what']));
      // The human listing names it too.
      const human = await cli(['-r', repo, 'sqlite', 'history', 'app', '--around', new Date(deleteAt).toISOString(), '--limit', '40']);
      expect(human).toMatch(new RegExp(`^\\s+${del.seq}\\s+\\S+\\s+\\d+\\s+.*\\bnotes \\(-${deleted}\\)`, 'm'));
      expect(human).toMatch(/when the replicator first saw/);

      // --before-txn: exactly the copy, row by row, in every table.
      const before = path.join(dir, 'before.db');
      const out = JSON.parse(await cli(['-r', repo, '--json', 'sqlite', 'restore', 'app', '--before-txn', String(del.seq), '-o', before])) as { txn: number; txn_included: boolean };
      expect(out).toMatchObject({ txn: del.seq, txn_included: false });
      const want = allRows(copy);
      const got = allRows(before);
      expect(got.notes).toHaveLength(470);
      expect(got.notes).toEqual(want.notes);
      expect(got.audit).toEqual(want.audit);

      // --txn: the DELETE included, nothing after it.
      const including = path.join(dir, 'including.db');
      await cli(['-r', repo, 'sqlite', 'restore', 'app', '--txn', String(del.seq), '-o', including]);
      const inc = allRows(including);
      expect(inc.notes).toEqual((want.notes as Array<{ id: number }>).filter((r) => r.id % 3 !== 0));
      expect(inc.audit).toEqual(want.audit);

      // Unknown numbers and mixed targets: one line, a hint, stable exit codes.
      const unknown = await runCli(['-r', repo, 'sqlite', 'restore', 'app', '--before-txn', '999999', '-o', path.join(dir, 'x.db')], ENV);
      expect(unknown.code).toBe(15);
      expect(unknown.stderr).toMatch(/no transaction 999999 in generation [0-9a-f]+ \(stored: \d+ to \d+\)/);
      expect(unknown.stderr).toMatch(/hint: .*sqlite history/);
      const mixed = await runCli(['-r', repo, 'sqlite', 'restore', 'app', '--txn', '3', '--time', new Date().toISOString(), '-o', path.join(dir, 'y.db')], ENV);
      expect(mixed.code).toBe(2);
      expect(mixed.stderr).toMatch(/give one of --time, --latest, --txn, --before-txn/);
      const bad = await runCli(['-r', repo, 'sqlite', 'restore', 'app', '--txn', 'x1', '-o', path.join(dir, 'z.db')], ENV);
      expect(bad.code).toBe(2);

      // A resumed generation (the WAL is held open, so it continues) carries the numbers on.
      await rep.stop();
      const rep2 = new Replicator(repo, file, ['--interval', '300ms']);
      try {
        await rep2.until((e) => e.kind === 'generation', 'generation event');
        expect(rep2.of('generation')[0]?.reason).toBe('resumed');
        const resumedAt = Date.now();
        write(10, 'resumed');
        await rep2.archived(Date.now());
        const h2 = JSON.parse(await cli(['-r', repo, '--json', 'sqlite', 'history', 'app', '--around', new Date(resumedAt).toISOString(), '--limit', '100'])) as HistoryJson;
        expect(h2.generation).toBe(h.generation);
        const s2 = h2.transactions.map((t) => t.seq);
        expect(s2).toEqual(Array.from({ length: s2.length }, (_, i) => (s2[0] as number) + i));
        expect(s2).toEqual(expect.arrayContaining([Math.max(...seqs)]));
        expect(h2.transactions.filter((t) => Date.parse(t.time) >= resumedAt).length).toBeGreaterThanOrEqual(10);
      } finally {
        await rep2.stop();
      }
    } finally {
      if (rep.child.exitCode === null) await rep.stop();
      db.close();
    }
  }, 120_000);

  it('lists transactions before a gap in the stored log (history after it is not asked for)', async () => {
    const { dir, repo } = await newRepo('lb-undo-gap-');
    const file = path.join(dir, 'app.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
    const note = db.prepare('INSERT INTO notes (body) VALUES (?)');
    const rep = new Replicator(repo, file, ['--interval', '200ms']);
    const segments = () => readdirSync(path.join(repo, 'logs', 'sqlite.app'), { recursive: true }).map(String).filter((f) => /[0-9a-f]{16}-[0-9a-f]{16}-[0-9a-f]{12}$/.test(f));
    try {
      await rep.waitFor('snapshot');
      for (let i = 0; i < 20; i++) note.run(`a ${i}`);
      await rep.archived(Date.now());
      const aAt = Date.now();
      const ofA = new Set(segments());
      for (let i = 0; i < 20; i++) note.run(`b ${i}`);
      await rep.archived(Date.now());
      for (let i = 0; i < 5; i++) note.run(`c ${i}`);
      await rep.archived(Date.now());
      await rep.stop();
      // B's segments go (lost in transit): the stored log has a gap after A.
      const ofB = segments().filter((f) => !ofA.has(f));
      expect(ofB.length).toBeGreaterThan(0);
      rmSync(path.join(repo, 'logs', 'sqlite.app', ofB[0] as string));
      const r = await runCli(['-r', repo, '--json', 'sqlite', 'history', 'app', '--around', new Date(aAt).toISOString(), '--limit', '5'], ENV);
      expect(r.code, r.stderr).toBe(0);
      const h = JSON.parse(r.stdout) as HistoryJson;
      expect(h.transactions.length).toBeGreaterThan(0);
      expect(h.transactions.every((t) => Date.parse(t.time) <= aAt)).toBe(true);
    } finally {
      if (rep.child.exitCode === null) await rep.stop();
      db.close();
    }
  }, 120_000);
});
