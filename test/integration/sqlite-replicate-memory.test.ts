/**
 * A writer outrunning the replicator's first snapshot. Transactions read after the
 * snapshot's moment may not ship before the snapshot is stored; they were held in
 * memory meanwhile, without bound (1.0 GB of RSS here, 1.8 GB under the group hold
 * bench's load). Now the replicator stops reading at 32 MiB held and the WAL waits on
 * disk under its pin: its peak RSS stays near what the snapshot itself takes, and
 * what was held goes out in segments of about 32 MiB, not one of everything.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, cleanupTmp } from '../helpers.js';
import { Replicator, cli, newRepo } from '../sqlite-helpers.js';

afterAll(cleanupTmp);

const BETTER_SQLITE3 = path.join(ROOT, 'node_modules', 'better-sqlite3');
const peakRssMb = (pid: number) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

describe('sqlite replicate under a writer faster than its first snapshot', () => {
  it('holds a bounded amount in memory until the base is stored, and then archives everything', async () => {
    const { dir, repo } = await newRepo('lb-sqlite-mem-');
    const db = path.join(dir, 'app.db');
    const seed = new Database(db);
    seed.pragma('journal_mode = WAL');
    seed.exec('CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB)');
    const fill = seed.prepare('INSERT INTO b (v) VALUES (randomblob(1048576))');
    seed.transaction(() => {
      for (let i = 0; i < 250; i++) fill.run();
    })();
    seed.pragma('wal_checkpoint(TRUNCATE)');
    seed.close();

    const rep = new Replicator(repo, db);
    try {
      await rep.waitFor('generation');
      // 256 KiB transactions as fast as SQLite takes them (about 100 MB/s of WAL here),
      // until the snapshot is stored or 20 s passed.
      const writer = spawn(process.execPath, ['-e', `
        const D = require(${JSON.stringify(BETTER_SQLITE3)}); const db = new D(${JSON.stringify(db)}); db.pragma('busy_timeout = 10000');
        const ins = db.prepare('INSERT INTO b (v) VALUES (randomblob(262144))'); let stop = false; let n = 0;
        process.on('SIGTERM', () => (stop = true)); const end = Date.now() + 20000;
        (async () => { while (!stop && Date.now() < end) { ins.run(); n++; await new Promise((r) => setImmediate(r)); } db.close(); console.log(n); })();`], { stdio: ['ignore', 'pipe', 'inherit'] });
      let written = '';
      writer.stdout.on('data', (d: Buffer) => (written += d.toString()));
      const writerDone = new Promise((r) => writer.on('close', r));
      await Promise.race([rep.waitFor('snapshot', 1, 120_000), writerDone]);
      writer.kill('SIGTERM');
      await writerDone;
      const peak = peakRssMb(rep.child.pid as number);
      console.log(`replicator peak RSS while a ${Number(written)}-transaction writer outran its first snapshot: ${peak.toFixed(0)} MB`);
      // The snapshot of 250 MB takes about 400 MB here; holding the writer's WAL took 1 GB.
      expect(peak).toBeLessThan(700);
      // Nothing was dropped: everything written is archived once the replicator catches up.
      const doneAt = Date.now();
      await rep.archived(doneAt, 180_000);
      // What was held while the base was stored went out in pieces of about 32 MiB, not
      // as one segment of everything the writer wrote meanwhile (hundreds of MB before).
      const biggest = Math.max(...rep.of('ship').map((e) => Number(e.bytes)));
      console.log(`largest segment: ${(biggest / 2 ** 20).toFixed(1)} MiB over ${rep.of('ship').length} segments`);
      expect(biggest).toBeLessThan(48 * 2 ** 20);
    } finally {
      rep.child.kill('SIGTERM');
      await rep.exited;
    }
    const out = path.join(dir, 'restored.db');
    await cli(['-r', repo, 'sqlite', 'restore', 'app', '-o', out]);
    const live = new Database(db, { readonly: true });
    const restored = new Database(out, { readonly: true });
    try {
      const count = (d: Database.Database) => (d.prepare('SELECT count(*) AS n, max(id) AS m FROM b').get() as { n: number; m: number });
      expect(count(restored)).toEqual(count(live));
    } finally {
      live.close();
      restored.close();
    }
  }, 300_000);
});
