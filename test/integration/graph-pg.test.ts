/**
 * Graph-aware drills of a PostgreSQL source, against a real scratch PostgreSQL 15
 * cluster (docs/graph.md): `pg backup` checks the declaration and times the queries on
 * the source (no counts: a base backup has no read transaction at its point); a drill
 * counts in the restored cluster, fails on dangling edges naming the table and count,
 * reports the counts and each query's latency beside the source's, and still runs
 * amcheck. A declaration that does not fit is refused before the backup starts.
 */
import { readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archivedCluster, lifeboatAsPostgres, writeAsPostgres, type ScratchCluster } from '../pg-cluster.js';
import { snapshotsJson } from '../helpers.js';

let base: string;
let repo: string;
let pw: string;
let cluster: ScratchCluster;

const GRAPH = `    graph:
      nodes: [{ table: memories, key: id }]
      edges: [{ table: links, from: source_id, to: target_id }]
      queries:
        - { name: recall, sql: "SELECT m.body FROM links l JOIN memories m ON m.id = l.target_id WHERE l.source_id = 7" }
`;

async function config(name: string, graph: string): Promise<string> {
  const file = path.join(base, name);
  await writeAsPostgres(file, `repositories:\n  main: { stores: [${JSON.stringify(repo)}], password_file: ${JSON.stringify(pw)} }\nsources:\n  main:\n    kind: postgres\n    dsn: ${cluster.dsn}\n${graph}`);
  return file;
}

const lb = (cfg: string, args: string[]) => lifeboatAsPostgres(['--config', cfg, '--repo', repo, '--password-file', pw, ...args]);

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-pg-graph-'));
  await cluster.query(`create table memories (id int primary key, body text not null);
    create table links (id serial primary key, source_id int, target_id int);
    insert into memories select i, 'memory ' || i from generate_series(1, 500) i;
    insert into links (source_id, target_id) select (i % 500) + 1, ((i * 7) % 500) + 1 from generate_series(0, 999) i;
    delete from memories where id in (8, 15);`);
}, 120_000);

afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('graph-aware drills (PostgreSQL)', () => {
  it('a backup records the queries\' latency; a drill fails on dangling edges, naming the table and count', async () => {
    const cfg = await config('lifeboat.yaml', GRAPH);
    const b = await lb(cfg, ['--json', 'pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
    expect(b.code, b.stderr).toBe(0);
    const facts = (JSON.parse(b.stdout) as { consistency: { graph: { exact: boolean; database: string; nodes: object; queries: Array<{ name: string; ms: number; rows: number }> } } }).consistency.graph;
    expect(facts).toMatchObject({ exact: false, database: 'postgres', nodes: {} });
    expect(facts.queries).toHaveLength(1);
    expect(facts.queries[0]).toMatchObject({ name: 'recall', rows: 2 });
    expect(facts.queries[0]!.ms).toBeGreaterThan(0);

    const [expected] = await cluster.query<{ n: string }>('select count(*)::text as n from links where source_id in (8, 15) or target_id in (8, 15)');
    const dangling = Number(expected!.n);
    expect(dangling).toBeGreaterThan(0);

    const r = await lb(cfg, ['--json', 'drill', '--source', 'main']);
    expect(r.code, r.stderr).toBe(1);
    const d = JSON.parse(r.stdout) as {
      ok: boolean;
      checks: Array<{ name: string; ok: boolean; detail: string }>;
      graph: { compared: boolean; nodes: object; edges: { links: { restored: number; dangling: number } }; queries: Array<{ name: string; ms: number; backup_ms: number | null; rows: number }> };
    };
    expect(d.ok).toBe(false);
    expect(d.checks.find((c) => c.name === 'amcheck postgres')?.ok).toBe(true);
    expect(d.checks.find((c) => c.name === 'dangling_edges:links')).toEqual({
      name: 'dangling_edges:links',
      ok: false,
      detail: `${dangling} edges of links point to no row of memories (by source_id or target_id)`,
    });
    const counts = d.checks.find((c) => c.name === 'graph_counts');
    expect(counts?.ok).toBe(true);
    expect(counts?.detail).toBe('memories 498, links 1000; the backup recorded no counts (a base backup has no read transaction at its point)');
    expect(d.graph.compared).toBe(false);
    expect(d.graph.nodes).toEqual({ memories: { restored: 498, recorded: null } });
    expect(d.graph.edges.links).toMatchObject({ restored: 1000, dangling });
    expect(d.graph.queries).toHaveLength(1);
    expect(d.graph.queries[0]).toMatchObject({ name: 'recall', rows: 2 });
    expect(d.graph.queries[0]!.ms).toBeGreaterThan(0);
    expect(d.graph.queries[0]!.backup_ms).toBeCloseTo(facts.queries[0]!.ms, 3);
  });

  it('a declaration naming a missing column, or a query that writes, is refused before the backup starts', async () => {
    const password = readFileSync(pw, 'utf8').replace(/\r?\n$/, '');
    const before = await snapshotsJson(repo, password);
    const wrong = await config('wrong.yaml', GRAPH.replace('to: target_id', 'to: target'));
    const check = await lb(wrong, ['config', 'check']);
    expect(check.code, check.stderr).toBe(37);
    expect(check.stderr).toMatch(/graph: edge table "links" has no column "target" in the server \(its columns: id, source_id, target_id\)/);
    const r = await lb(wrong, ['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/lifeboat: graph: edge table "links" has no column "target" in the source main\n {2}hint: its columns: id, source_id, target_id/);

    const writes = await config('writes.yaml', GRAPH.replace(/sql: ".*"/, 'sql: "SELECT 1; COMMIT; DELETE FROM links"'));
    const w = await lb(writes, ['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
    expect(w.code, w.stderr).toBe(2);
    expect(w.stderr).toMatch(/lifeboat: graph: query "recall" failed in the source main/);
    const [left] = await cluster.query<{ n: string }>('select count(*)::text as n from links');
    expect(left!.n).toBe('1000');

    const after = await snapshotsJson(repo, password);
    expect(after).toHaveLength(before.length);
  });
});
