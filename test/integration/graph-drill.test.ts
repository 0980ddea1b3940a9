/**
 * Graph-aware drills of a SQLite source through the real CLI (docs/graph.md): a graph
 * declared in lifeboat.yaml is measured at backup and checked by `lifeboat drill` on
 * the restored copy. A dangling edge fails the drill naming its table and count; a
 * clean graph passes with counts equal to the recorded ones, also when a writer
 * commits as fast as it can during the backup; each query's latency is in the drill
 * record; a declaration that does not fit the database is a clear error at
 * `config check` and at backup, before anything is stored.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, cliExpecting, expectError, ROOT, runCli, snapshotsJson, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const ENV = { LIFEBOAT_PASSWORD: 'pw' };
const cli = (args: string[], code = 0) => cliExpecting(args, code, ENV);

interface Drill {
  ok: boolean;
  error?: string;
  checks: Array<{ name: string; ok: boolean; detail: string }>;
  graph?: {
    compared: boolean;
    nodes: Record<string, { restored: number; recorded: number | null }>;
    edges: Record<string, { restored: number; recorded: number | null; dangling: number }>;
    queries: Array<{ name: string; ms: number; runs: number; rows: number; backup_ms: number | null; backup_rows: number | null }>;
  };
}

const GRAPH = `    graph:
      nodes: [{ table: memories, key: id }]
      edges:
        - { table: links, from: source_id, to: target_id }
        - { table: cites, from: citing, to: cited, references: memories }
      queries:
        - { name: recall, sql: "SELECT m.text FROM links l JOIN memories m ON m.id = l.target_id WHERE l.source_id = 7" }
        - { name: hubs, sql: "SELECT target_id, count(*) AS n FROM links GROUP BY target_id ORDER BY n DESC LIMIT 10" }
`;

/** A memory graph: 1 000 memories, 2 000 links, 500 citations, all ends present. */
function makeGraph(file: string): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(`CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
           CREATE TABLE links (id INTEGER PRIMARY KEY, source_id INTEGER, target_id INTEGER);
           CREATE INDEX links_source ON links (source_id);
           CREATE TABLE cites (citing INTEGER NOT NULL, cited INTEGER NOT NULL);`);
  db.transaction(() => {
    const m = db.prepare('INSERT INTO memories (text) VALUES (?)');
    for (let i = 1; i <= 1000; i++) m.run(`memory ${i}`);
    const l = db.prepare('INSERT INTO links (source_id, target_id) VALUES (?, ?)');
    for (let i = 0; i < 2000; i++) l.run((i % 1000) + 1, ((i * 7) % 1000) + 1);
    const c = db.prepare('INSERT INTO cites VALUES (?, ?)');
    for (let i = 0; i < 500; i++) c.run((i % 1000) + 1, ((i * 13) % 1000) + 1);
  })();
  db.close();
}

function setup(graph = GRAPH): { dir: string; repo: string; db: string; config: string; g: string[] } {
  const dir = tmpdir('lb-graph-');
  const repo = path.join(dir, 'repo');
  const db = path.join(dir, 'mem.db');
  const config = path.join(dir, 'lifeboat.yaml');
  makeGraph(db);
  writeFileSync(config, `repositories:\n  main: { stores: [${JSON.stringify(repo)}] }\nsources:\n  mem:\n    kind: sqlite\n    path: ${JSON.stringify(db)}\n${graph}`);
  return { dir, repo, db, config, g: ['--config', config, '-r', repo] };
}

async function drillJson(g: string[], code: number): Promise<Drill> {
  return JSON.parse((await cli([...g, '--json', 'drill', '--source', 'mem'], code)).stdout) as Drill;
}

describe('graph-aware drills (SQLite)', () => {
  it('a clean graph passes: counts equal to the recorded ones, each query timed at backup and after restore', async () => {
    const { g, db, repo } = setup();
    await cli([...g, 'init']);
    // No --name: the file's name, mem, is the source of lifeboat.yaml that declares the graph.
    await cli([...g, 'sqlite', 'backup', db]);

    // The snapshot records what the backup measured.
    const [snap] = await snapshotsJson<{ consistency: { graph: { exact: boolean; nodes: object; edges: object; dangling: object; queries: Array<{ name: string; rows: number }> } } }>(repo, ENV.LIFEBOAT_PASSWORD);
    const facts = snap!.consistency.graph;
    expect(facts.exact).toBe(true);
    expect(facts.nodes).toEqual({ memories: 1000 });
    expect(facts.edges).toEqual({ links: 2000, cites: 500 });
    expect(facts.dangling).toEqual({}); // left to drills: a pass over every edge
    expect(facts.queries.map((q) => [q.name, q.rows])).toEqual([['recall', 2], ['hubs', 10]]);

    const d = await drillJson(g, 0);
    expect(d.ok, JSON.stringify(d.checks)).toBe(true);
    expect(d.graph?.compared).toBe(true);
    expect(d.graph?.nodes).toEqual({ memories: { restored: 1000, recorded: 1000 } });
    expect(d.graph?.edges).toEqual({ links: { restored: 2000, recorded: 2000, dangling: 0 }, cites: { restored: 500, recorded: 500, dangling: 0 } });
    const names = d.checks.map((c) => c.name);
    expect(names).toEqual(['integrity_check', 'foreign_key_check', 'dangling_edges:links', 'dangling_edges:cites', 'graph_counts', 'query:recall', 'query:hubs']);
    expect(d.checks.find((c) => c.name === 'graph_counts')?.detail).toMatch(/memories 1000, links 2000, cites 500: equal to the backup's/);
    for (const q of d.graph?.queries ?? []) {
      expect(q.ms).toBeGreaterThan(0);
      expect(q.backup_ms).toBeGreaterThan(0);
      expect(q.runs).toBeGreaterThanOrEqual(1);
      expect(q.rows).toBe(q.backup_rows);
    }
    expect(d.graph?.queries.map((q) => q.name)).toEqual(['recall', 'hubs']);
    expect(d.checks.find((c) => c.name === 'query:recall')?.detail).toMatch(/^\d+\.\d+ ms median of \d, 2 rows; at backup on the source \d+\.\d+ ms, 2 rows$/);

    // The human output shows the same checks.
    const text = (await cli([...g, 'drill', '--source', 'mem'])).stdout;
    expect(text).toMatch(/✓ dangling_edges:cites: 0 of 500 edges point outside memories/);
    expect(text).toMatch(/✓ query:hubs: /);
  });

  it('a dangling edge fails the drill, naming the edge table and the count', async () => {
    const { g, db } = setup();
    const d0 = new Database(db);
    // SQLite enforces foreign keys only when asked, and these tables declare none:
    // an application bug can leave edges whose node is gone.
    d0.exec('DELETE FROM memories WHERE id IN (13, 26)');
    d0.close();
    await cli([...g, 'init']);
    await cli([...g, 'sqlite', 'backup', db, '--name', 'mem']);
    const d = await drillJson(g, 1);
    expect(d.ok).toBe(false);
    const links = d.checks.find((c) => c.name === 'dangling_edges:links');
    const cites = d.checks.find((c) => c.name === 'dangling_edges:cites');
    // The edges touching the deleted memories, counted independently of Lifeboat.
    const check = new Database(db, { readonly: true });
    const expected = (sql: string) => (check.prepare(sql).pluck().get() as number);
    const badLinks = expected('SELECT count(*) FROM links WHERE source_id IN (13, 26) OR target_id IN (13, 26)');
    const badCites = expected('SELECT count(*) FROM cites WHERE citing IN (13, 26) OR cited IN (13, 26)');
    check.close();
    expect(badLinks).toBeGreaterThan(0);
    expect(badCites).toBeGreaterThan(0);
    expect(links).toEqual({ name: 'dangling_edges:links', ok: false, detail: `${badLinks} edges of links point to no row of memories (by source_id or target_id)` });
    expect(cites?.ok).toBe(false);
    expect(cites?.detail).toMatch(new RegExp(`^${badCites} edges? of cites point`));
    expect(d.graph?.edges.links?.dangling).toBe(badLinks);
    // Counts still agree with the backup: the restore is faithful, the graph was broken before.
    expect(d.checks.find((c) => c.name === 'graph_counts')?.ok).toBe(true);
    const r = await runCli([...g, 'drill', '--source', 'mem'], ENV);
    expectError(r, 1, new RegExp(`drill of sqlite:mem failed: dangling_edges:links: ${badLinks} edges of links point to no row of memories`));
    expect(r.stdout).toMatch(/✗ dangling_edges:links: /);
  });

  it('counts at backup are the image\'s own while a writer commits as fast as it can', async () => {
    const dir = tmpdir('lb-graph-busy-');
    const repo = path.join(dir, 'repo');
    const db = path.join(dir, 'busy.db');
    const config = path.join(dir, 'lifeboat.yaml');
    const init = new Database(db);
    init.pragma('journal_mode = WAL');
    init.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, pad TEXT)');
    init.close();
    writeFileSync(config, `repositories:\n  main: { stores: [${JSON.stringify(repo)}] }\nsources:\n  busy:\n    kind: sqlite\n    path: ${JSON.stringify(db)}\n    graph: { nodes: [{ table: t, key: id }] }\n`);
    const g = ['--config', config, '-r', repo];
    await cli([...g, 'init']);
    const writer = spawn(process.execPath, [path.join(ROOT, 'test', 'fixtures', 'sqlite-writer.mjs'), db, '0', '60', '10'], { stdio: 'ignore' });
    try {
      // Until the writer has committed: every backup below then races its commits.
      for (;;) {
        const probe = new Database(db, { readonly: true });
        const n = probe.prepare('SELECT count(*) FROM t').pluck().get() as number;
        probe.close();
        if (n > 1000) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Each backup is drilled at once: the newest snapshot, nothing replayed on top,
      // so the restored rows must be exactly the ones counted at backup. A backup that
      // could not pin its count to the image's own point (the writer committed inside
      // every try: CI saw it on a loaded host) says so and is not compared; three must be.
      let compared = 0;
      for (let i = 0; i < 20 && compared < 3; i++) {
        await cli([...g, 'sqlite', 'backup', db]);
        const d = JSON.parse((await cli([...g, '--json', 'drill', '--source', 'busy'])).stdout) as Drill;
        const t = d.graph?.nodes.t;
        if (d.graph?.compared) {
          compared++;
          expect(t?.restored).toBe(t?.recorded);
        } else {
          expect(d.checks.find((c) => c.name === 'graph_counts')?.detail).toMatch(/counted at backup just before the snapshot's point \(writers were busy\), so not compared$/);
        }
      }
      expect(compared).toBe(3);
    } finally {
      writer.kill('SIGTERM');
    }
  });

  it('a declaration that does not fit the database is a clear error at config check and at backup', async () => {
    const { g, db, repo } = setup(GRAPH.replace('to: target_id', 'to: target'));
    await cli([...g, 'init']);
    expectError(await runCli([...g, 'config', 'check'], ENV), 37, /source mem: graph: edge table "links" has no column "target" in .*mem\.db/);
    const r = await runCli([...g, 'sqlite', 'backup', db, '--name', 'mem'], ENV);
    const hint = expectError(r, 2, /graph: edge table "links" has no column "target" in the source .*mem\.db/);
    expect(hint).toMatch(/its columns: id, source_id, target_id/);
    expect(await snapshotsJson(repo, ENV.LIFEBOAT_PASSWORD)).toEqual([]);

    const missing = setup(GRAPH.replace('table: cites', 'table: citations'));
    await cli([...missing.g, 'init']);
    expectError(await runCli([...missing.g, 'sqlite', 'backup', missing.db, '--name', 'mem'], ENV), 2, /graph: edge table "citations" does not exist/);

    const writes = setup(GRAPH.replace('"SELECT target_id, count(*) AS n FROM links GROUP BY target_id ORDER BY n DESC LIMIT 10"', '"DELETE FROM links"'));
    await cli([...writes.g, 'init']);
    expectError(await runCli([...writes.g, 'sqlite', 'backup', writes.db, '--name', 'mem'], ENV), 2, /graph: query "hubs" is not a read-only query/);
    const left = new Database(writes.db, { readonly: true });
    expect(left.prepare('SELECT count(*) FROM links').pluck().get()).toBe(2000);
    left.close();

    // What a key cannot say alone: `references` must name a declared node table (at the source's line).
    const wrong = setup(GRAPH.replace('references: memories', 'references: nodes'));
    expectError(await runCli([...wrong.g, 'config', 'check'], ENV), 2, /lifeboat\.yaml:\d+: source "mem": graph: edge table "cites" references "nodes", which is not a declared node table/);
  });
});
