/**
 * lifeboat drill through the real CLI: file and SQLite sources restore into scratch
 * places and pass their checks with measured RTO and RPO, drills are recorded and
 * listed by --history, a damaged repository gives ok: false naming what failed, and
 * forget keeps the newest snapshot a drill verified.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, cliExpecting, initRepo, pseudoRandom, runCli, snapshotsJson, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const ENV = { LIFEBOAT_PASSWORD: 'pw' };
const cli = (args: string[], code = 0) => cliExpecting(args, code, ENV);

interface Drill {
  source: string;
  ok: boolean;
  rto_seconds: number | null;
  rpo_seconds: number | null;
  checks: Array<{ name: string; ok: boolean; detail: string }>;
  error?: string;
  snapshot: string | null;
}

async function setup(): Promise<{ dir: string; repo: string; files: string; db: string }> {
  const dir = tmpdir('lb-drill-');
  const repo = path.join(dir, 'repo');
  const files = path.join(dir, 'files');
  await fs.mkdir(files);
  for (let i = 0; i < 3; i++) await fs.writeFile(path.join(files, `f${i}`), pseudoRandom(300_000, i));
  const db = path.join(dir, 'app.db');
  const d = new Database(db);
  d.pragma('journal_mode = WAL');
  d.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES (1), (2), (3)');
  d.close();
  await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
  return { dir, repo, files, db };
}

describe('lifeboat drill', () => {
  it('restores each source, checks it, reports RTO and RPO, and keeps a history', async () => {
    const { repo, files, db } = await setup();
    await cli(['-r', repo, 'backup', files]);
    await cli(['-r', repo, 'sqlite', 'backup', db]);
    const all = JSON.parse((await cli(['-r', repo, '--json', 'drill'])).stdout) as Drill[];
    expect(all.map((d) => d.source).sort()).toEqual([`files:${files}`, 'sqlite:app']);
    for (const d of all) {
      expect(d.ok).toBe(true);
      expect(d.rto_seconds).toBeGreaterThan(0);
      expect(d.rpo_seconds).toBeGreaterThanOrEqual(0);
      expect(d.checks.every((c) => c.ok)).toBe(true);
    }
    const one = JSON.parse((await cli(['-r', repo, '--json', 'drill', '--source', 'app'])).stdout) as Drill;
    expect(one.source).toBe('sqlite:app');
    const history = JSON.parse((await cli(['-r', repo, '--json', 'drill', '--history'])).stdout) as Drill[];
    expect(history).toHaveLength(3);
    expect((await cli(['-r', repo, 'drill', '--history', '--source', 'app'])).stdout.trim().split('\n')).toHaveLength(2);
  });

  it('fails with ok: false, naming what failed, on a damaged repository', async () => {
    const { repo, files } = await setup();
    await cli(['-r', repo, 'backup', files]);
    const dataDir = path.join(repo, 'data');
    for (const sub of await fs.readdir(dataDir)) {
      for (const p of await fs.readdir(path.join(dataDir, sub))) {
        const f = path.join(dataDir, sub, p);
        const bytes = await fs.readFile(f);
        if (bytes.length < 500_000) continue; // leave the tree pack, damage the data
        bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0xff;
        await fs.writeFile(f, bytes);
      }
    }
    const r = await runCli(['-r', repo, '--json', 'drill'], ENV);
    expect(r.code, r.stderr).toBe(1);
    const [d] = JSON.parse(r.stdout) as Drill[];
    expect(d).toMatchObject({ ok: false, source: `files:${files}` });
    expect(d?.error).toMatch(/pack|blob|authentic|CORRUPT/i);
    expect(r.stderr).toMatch(/drill of files:.* failed/);
    const history = JSON.parse((await cli(['-r', repo, '--json', 'drill', '--history'])).stdout) as Drill[];
    expect(history.map((h) => h.ok)).toEqual([false]);
  });

  it('keeps the newest snapshot a drill verified, whatever the keep rules say', async () => {
    const { repo, files } = await setup();
    await cli(['-r', repo, 'backup', files, '--time', '2026-11-01T00:00:00Z']);
    const verified = JSON.parse((await cli(['-r', repo, '--json', 'drill'])).stdout) as Drill[];
    await fs.writeFile(path.join(files, 'new'), 'changed');
    await cli(['-r', repo, 'backup', files, '--time', '2026-11-02T00:00:00Z']);
    const out = (await cli(['-r', repo, 'forget', '--keep-last', '1'])).stdout;
    expect(out).toMatch(/newest verified by a drill/);
    const left = await snapshotsJson(repo, ENV.LIFEBOAT_PASSWORD);
    expect(left.map((s) => s.id)).toContain(verified[0]?.snapshot);
    expect(left).toHaveLength(2);
  });
});
