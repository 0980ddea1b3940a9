/**
 * A declared graph (sources/graph/options.ts) in a PostgreSQL database: checking the
 * declaration against the catalog, timing the representative queries, and counting
 * rows and dangling edges. A base backup has no read transaction at its consistency
 * point (that point is where WAL replay stops, after the copy), so backups record the
 * declaration and the queries' latency on the source, never counts; drills count in
 * the scratch cluster and report (docs/graph.md). Everything runs in READ ONLY
 * transactions that are rolled back.
 */
import { LifeboatError } from '../../errors.js';
import type { GraphDeclaration } from '../graph/options.js';
import type { GraphFacts, GraphMeasure, QueryTiming } from '../graph/record.js';
import type { PgClient } from './connect.js';

export const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Throws USAGE naming the first declared table, column or query the database does not have, or a query that is not a SELECT. */
export async function checkPgGraph(client: PgClient, decl: GraphDeclaration, where: string): Promise<void> {
  const usage = (message: string, hint: string): never => {
    throw new LifeboatError('USAGE', `graph: ${message} in ${where}`, { hint });
  };
  const columns = async (table: string, what: string): Promise<string[]> => {
    const r = await client.query<{ found: boolean; cols: string[] | null }>(
      `select to_regclass($1) is not null as found,
              (select array_agg(attname::text order by attnum) from pg_attribute where attrelid = to_regclass($1) and attnum > 0 and not attisdropped) as cols`,
      [quoteIdent(table)],
    );
    const row = r.rows[0];
    if (!row?.found) usage(`${what} "${table}" does not exist`, 'tables are looked up on the search_path of the database the dsn names');
    return row?.cols ?? [];
  };
  const column = (table: string, cols: string[], col: string, what: string) => {
    if (!cols.includes(col)) usage(`${what} "${table}" has no column "${col}"`, `its columns: ${cols.join(', ')}`);
  };
  for (const n of decl.nodes) column(n.table, await columns(n.table, 'node table'), n.key, 'node table');
  for (const e of decl.edges) {
    const cols = await columns(e.table, 'edge table');
    column(e.table, cols, e.from, 'edge table');
    column(e.table, cols, e.to, 'edge table');
  }
}

/** At backup: the declaration is checked and the queries timed on the source; counts are left to drills. */
export async function pgGraphAtBackup(client: PgClient, decl: GraphDeclaration, where: string): Promise<GraphFacts> {
  await checkPgGraph(client, decl, where);
  const database = (await client.query<{ db: string }>('select current_database() as db')).rows[0]!.db;
  return { declaration: decl, exact: false, database, nodes: {}, edges: {}, dangling: {}, queries: await timeQueries(client, decl, where) };
}

/** In a drill's scratch cluster: counts, dangling edges and the queries' latency. */
export async function measurePgGraph(client: PgClient, decl: GraphDeclaration, where: string): Promise<GraphMeasure> {
  const count = async (sql: string) => Number((await client.query<{ n: string }>(`select count(*)::text as n from ${sql}`)).rows[0]!.n);
  const keyOf = new Map(decl.nodes.map((n) => [n.table, n.key]));
  const nodes: Record<string, number> = {};
  const edges: Record<string, number> = {};
  const dangling: Record<string, number> = {};
  await client.query('begin transaction isolation level repeatable read read only');
  try {
    for (const n of decl.nodes) nodes[n.table] = await count(quoteIdent(n.table));
    for (const e of decl.edges) {
      edges[e.table] = await count(quoteIdent(e.table));
      const missing = (col: string) => `not exists (select 1 from ${quoteIdent(e.references)} v where v.${quoteIdent(keyOf.get(e.references) as string)} = e.${quoteIdent(col)})`;
      dangling[e.table] = await count(`${quoteIdent(e.table)} e where ${missing(e.from)} or ${missing(e.to)}`);
    }
  } finally {
    await client.query('rollback');
  }
  return { nodes, edges, dangling, queries: await timeQueries(client, decl, where) };
}

const QUERY_RUNS = 5;
const QUERY_BUDGET_MS = 1000;
/** Rows fetched per round trip: the rows of a query are counted, never held all at once. */
const FETCH = 1000;

/**
 * Each query up to 5 times (fewer once 1 s is spent), through a cursor in a READ ONLY
 * transaction that is rolled back: DECLARE takes only a SELECT or VALUES, the
 * extended protocol one statement, and a read-only transaction refuses any write a
 * function in it might attempt.
 */
async function timeQueries(client: PgClient, decl: GraphDeclaration, where: string): Promise<QueryTiming[]> {
  const out: QueryTiming[] = [];
  for (const q of decl.queries) {
    const times: number[] = [];
    let rows = 0;
    const started = performance.now();
    do {
      await client.query('begin transaction read only');
      try {
        const t0 = performance.now();
        // The extended protocol takes one statement: no "…; commit; delete …" after it.
        await client.query({ text: `declare lifeboat_graph_q no scroll cursor for ${q.sql}`, queryMode: 'extended' } as { text: string }); // queryMode: pg's own option, not in @types/pg
        let n = 0;
        for (;;) {
          const got = (await client.query({ text: `fetch ${FETCH} from lifeboat_graph_q`, rowMode: 'array' })).rowCount ?? 0;
          n += got;
          if (got < FETCH) break;
        }
        times.push(performance.now() - t0);
        rows = n;
      } catch (err) {
        throw new LifeboatError('USAGE', `graph: query "${q.name}" failed in ${where}: ${(err as Error).message}`, { hint: 'representative queries must be read-only SELECTs (or VALUES)' });
      } finally {
        await client.query('rollback');
      }
    } while (times.length < QUERY_RUNS && performance.now() - started < QUERY_BUDGET_MS);
    times.sort((a, b) => a - b);
    out.push({ name: q.name, ms: times[Math.floor(times.length / 2)] as number, runs: times.length, rows });
  }
  return out;
}
