/**
 * btree-map.ts against SQLite's own account of its pages: on a real database with
 * tables, indexes, a WITHOUT ROWID table, rows big enough to overflow and a freelist,
 * every page the `dbstat` virtual table attributes to a b-tree (interior or leaf) is
 * owned by that b-tree, overflow pages are unreached, the freelist's pages are free,
 * and the cells counted on a table's leaves are its rows.
 */
import { closeSync, openSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { entries, fileReader, ownerName, pageOwners } from '../../src/sources/sqlite/btree-map.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

describe('SQLite page owners', () => {
  it('agree with dbstat for every page', () => {
    const file = path.join(tmpdir('lb-btree-'), 'db.sqlite');
    const db = new Database(file);
    db.pragma('page_size = 1024');
    db.exec(`CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);
      CREATE TABLE b (k TEXT PRIMARY KEY, n INT) WITHOUT ROWID;
      CREATE TABLE "odd name" (x BLOB);
      CREATE INDEX a_v ON a(v);`);
    const ia = db.prepare('INSERT INTO a (v) VALUES (?)');
    const ib = db.prepare('INSERT INTO b VALUES (?, ?)');
    const io = db.prepare('INSERT INTO "odd name" VALUES (?)');
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) ia.run(`value ${i} `.repeat(3));
      for (let i = 0; i < 800; i++) ib.run(`key ${i}`, i);
      for (let i = 0; i < 20; i++) io.run(Buffer.alloc(5000, i)); // overflow pages
    })();
    db.exec('DELETE FROM a WHERE id > 2000'); // leaves a freelist
    const stat = db.prepare('SELECT name, pageno, pagetype FROM dbstat').all() as Array<{ name: string; pageno: number; pagetype: string }>;
    const pages = (db.pragma('page_count', { simple: true }) as number);
    const free = db.pragma('freelist_count', { simple: true }) as number;
    const rows = (db.prepare('SELECT count(*) AS n FROM a').get() as { n: number }).n;
    db.close();
    expect(free).toBeGreaterThan(0);

    const fd = openSync(file, 'r');
    try {
      const read = fileReader(fd, 1024, pages);
      const o = pageOwners(read, 1024, pages);
      let overflow = 0;
      for (const s of stat) {
        const who = ownerName(o, s.pageno);
        if (s.pagetype === 'overflow') {
          overflow++;
          expect(who.type, `page ${s.pageno}`).toBe('other');
        } else {
          expect(who.name, `page ${s.pageno} (${s.pagetype})`).toBe(s.name === 'sqlite_master' ? 'sqlite_schema' : s.name);
        }
      }
      expect(overflow).toBeGreaterThan(0);
      const inStat = new Set(stat.map((s) => s.pageno));
      let freeSeen = 0;
      for (let p = 1; p <= pages; p++) if (ownerName(o, p).type === 'free') freeSeen++;
      expect(freeSeen).toBe(free);
      for (let p = 1; p <= pages; p++) if (!inStat.has(p)) expect(ownerName(o, p).type).toBe('free');
      expect(ownerName(o, stat.find((s) => s.name === 'a_v')!.pageno)).toMatchObject({ type: 'index', table: 'a' });
      expect(ownerName(o, stat.find((s) => s.name === 'odd name')!.pageno).name).toBe('odd name');
      const leafRows = stat.filter((s) => s.name === 'a' && s.pagetype === 'leaf').reduce((n, s) => n + entries(read(s.pageno), s.pageno, 'table'), 0);
      expect(leafRows).toBe(rows);
    } finally {
      closeSync(fd);
    }
  });
});
