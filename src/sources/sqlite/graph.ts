/**
 * A declared graph (sources/graph/options.ts) in a SQLite database: checking that the
 * declaration fits the schema, and measuring it — rows per node and edge table,
 * dangling edges, and the representative queries' latency. Backups measure the
 * source inside the read transaction of the image they store (backup.ts), all but
 * dangling edges; drills measure the restored copy, all of it (drill.ts). Everything runs on the caller's connection and
 * only reads: a declared query that could write is refused before it runs.
 */
import type Database from 'better-sqlite3';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { openDatabase } from './database.js';
import type { GraphDeclaration } from '../graph/options.js';
import type { GraphMeasure, QueryTiming } from '../graph/record.js';

type Db = Database.Database;

/** An identifier quoted for SQL: declared names are data, never spliced in bare. */
export const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

const ROWID = new Set(['rowid', '_rowid_', 'oid']);

/**
 * Throws USAGE naming the first declared table, column or query the database does not
 * have, or a query that is not a read-only SELECT. `where` says which database ("the
 * source /var/lib/app/memory.db", "the restored copy").
 */
export function checkSqliteGraph(db: Db, decl: GraphDeclaration, where: string): void {
  const usage = (message: string, hint: string): never => {
    throw new LifeboatError('USAGE', `graph: ${message} in ${where}`, { hint });
  };
  const columns = (table: string, what: string): string[] => {
    const cols = (db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all(table) as string[]);
    if (cols.length === 0) {
      const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[];
      usage(`${what} "${table}" does not exist`, tables.length ? `tables: ${tables.slice(0, 20).join(', ')}` : 'the database has no tables');
    }
    return cols;
  };
  const column = (table: string, cols: string[], col: string, what: string) => {
    if (cols.includes(col) || ROWID.has(col.toLowerCase())) return;
    usage(`${what} "${table}" has no column "${col}"`, `its columns: ${cols.join(', ')}`);
  };
  for (const n of decl.nodes) column(n.table, columns(n.table, 'node table'), n.key, 'node table');
  for (const e of decl.edges) {
    const cols = columns(e.table, 'edge table');
    column(e.table, cols, e.from, 'edge table');
    column(e.table, cols, e.to, 'edge table');
  }
  for (const q of decl.queries) {
    let stmt: Database.Statement;
    try {
      stmt = db.prepare(q.sql);
    } catch (err) {
      return usage(`query "${q.name}" does not prepare (${(err as Error).message})`, 'fix its sql under graph.queries');
    }
    if (!stmt.reader || !stmt.readonly) usage(`query "${q.name}" is not a read-only query returning rows`, 'representative queries must only read: a SELECT (or WITH … SELECT)');
  }
}

/** `config check`: what is wrong with the declaration against the database at `file`, or undefined; never throws. */
export async function graphProblem(file: string, decl: GraphDeclaration): Promise<string | undefined> {
  try {
    const db = openDatabase(file, { readonly: true });
    try {
      checkSqliteGraph(db, decl, file);
    } finally {
      db.close();
    }
    return undefined;
  } catch (err) {
    return isLifeboatError(err) ? `${err.message}${err.hint ? ` (${err.hint})` : ''}` : String(err);
  }
}

/**
 * Rows per table, each query's latency and (with `dangling`) dangling edges, all on `db`
 * as it stands (inside the caller's read transaction). Backups leave dangling edges to
 * drills: the anti-join is a pass over every edge, 9 s of a held read transaction on a
 * 3-million-edge graph where the counts take 0.02 s (docs/graph.md).
 */
export function measureSqliteGraph(db: Db, decl: GraphDeclaration, opts: { dangling: boolean }): GraphMeasure {
  const count = (table: string) => Number(db.prepare(`SELECT count(*) FROM ${quoteIdent(table)}`).pluck().get());
  const keyOf = new Map(decl.nodes.map((n) => [n.table, n.key]));
  const nodes: Record<string, number> = {};
  const edges: Record<string, number> = {};
  const dangling: Record<string, number> = {};
  for (const n of decl.nodes) nodes[n.table] = count(n.table);
  for (const e of decl.edges) {
    edges[e.table] = count(e.table);
    if (!opts.dangling) continue;
    const v = quoteIdent(e.references);
    const key = quoteIdent(keyOf.get(e.references) as string);
    // One probe of the node table's key per end: with the key indexed (a primary key
    // is), this reads each edge once. A NULL end matches nothing, so it counts.
    const missing = (col: string) => `NOT EXISTS (SELECT 1 FROM ${v} AS v WHERE v.${key} = e.${quoteIdent(col)})`;
    dangling[e.table] = Number(db.prepare(`SELECT count(*) FROM ${quoteIdent(e.table)} AS e WHERE ${missing(e.from)} OR ${missing(e.to)}`).pluck().get());
  }
  return { nodes, edges, dangling, queries: decl.queries.map((q) => timeQuery(db, q)) };
}

/**
 * Up to 5 runs, or fewer once 1 s is spent (a slow query is not repeated for long);
 * the median, so one run behind a page-cache miss or a scheduler hiccup does not
 * decide. Rows are counted as they stream, never held.
 */
export const QUERY_RUNS = 5;
const QUERY_BUDGET_MS = 1000;

function timeQuery(db: Db, q: { name: string; sql: string }): QueryTiming {
  const stmt = db.prepare(q.sql);
  if (!stmt.reader || !stmt.readonly) throw new LifeboatError('USAGE', `graph: query "${q.name}" is not a read-only query returning rows`, { hint: 'representative queries must only read' });
  stmt.raw(true);
  const times: number[] = [];
  let rows = 0;
  const started = performance.now();
  do {
    const t0 = performance.now();
    let n = 0;
    for (const _ of stmt.iterate()) n++;
    times.push(performance.now() - t0);
    rows = n;
  } while (times.length < QUERY_RUNS && performance.now() - started < QUERY_BUDGET_MS);
  times.sort((a, b) => a - b);
  return { name: q.name, ms: times[Math.floor(times.length / 2)] as number, runs: times.length, rows };
}
