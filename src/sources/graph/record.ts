/**
 * What a backup records about a declared graph (in the snapshot's consistency point,
 * docs/format.md), and the drill's checks of a restored copy against it: the part
 * of graph verification no kind owns. Counting and timing are the kind's (sqlite.ts
 * for SQLite); the verdicts are here, so every kind judges the same way.
 */
import * as z from 'zod';
import type { DrillGraph, DrillRecord } from '../../engine/drill/drill.js';
import { graphDeclarationSchema, type GraphDeclaration } from './options.js';
import { lazily } from '../../config/schema.js';

/** One representative query as measured: median latency over `runs`, and the rows of one run. */
export interface QueryTiming {
  name: string;
  ms: number;
  runs: number;
  rows: number;
}

/** A graph's measurements at one point. */
export interface GraphMeasure {
  /** Rows per node table. */
  nodes: Record<string, number>;
  /** Rows per edge table. */
  edges: Record<string, number>;
  /** Per edge table: edges an end of which matches no row of the node table (NULL ends included); empty when not counted (backups). */
  dangling: Record<string, number>;
  queries: QueryTiming[];
}

/** As stored in a snapshot. */
export interface GraphFacts extends GraphMeasure {
  /** What was measured: a drill checks this, whatever lifeboat.yaml says by then. */
  declaration: GraphDeclaration;
  /**
   * true: counted at the snapshot's own point (same read transaction as the image).
   * false: at a point just before it (writers kept the two apart), or not counted at
   * all (a PostgreSQL base backup: empty `nodes`): counts are reported, not compared.
   */
  exact: boolean;
  /** PostgreSQL: the database the graph is in (the dsn's). */
  database?: string;
}

const counts = lazily(() => z.record(z.string(), z.number().int().nonnegative()));
export const graphFactsSchema = lazily(() => z.object({
  declaration: graphDeclarationSchema(),
  exact: z.boolean(),
  database: z.string().optional(),
  nodes: counts(),
  edges: counts(),
  dangling: counts(),
  queries: z.array(z.object({ name: z.string(), ms: z.number().nonnegative(), runs: z.number().int().positive(), rows: z.number().int().nonnegative() })),
}) as unknown as z.ZodType<GraphFacts>);

export interface JudgeOptions {
  /**
   * The restored copy is the snapshot's own point (no log replayed on top): counts
   * must equal the recorded ones. Otherwise they are reported only.
   */
  samePoint: boolean;
  /** Said in the detail when counts are not compared: "12 transactions replayed on top". */
  replayed: string;
}

/**
 * The drill's checks of a restored graph: dangling edges (none allowed), counts
 * against the backup's, each query's latency beside the backup's. Adds them to
 * `record.checks` and the numbers to `record.graph`.
 */
export function judgeGraph(recorded: GraphFacts, restored: GraphMeasure, opts: JudgeOptions, record: Pick<DrillRecord, 'checks' | 'graph'>): void {
  const d = recorded.declaration;
  for (const e of d.edges) {
    const n = restored.dangling[e.table] ?? 0;
    const before = recorded.dangling[e.table];
    // SQLite backups no longer count them (sqlite/graph.ts); snapshots that did say what the source held.
    const source = before === undefined ? '' : before > 0 ? `; the source held ${before} at backup time` : '; the source held none at backup time';
    record.checks.push({
      name: `dangling_edges:${e.table}`,
      ok: n === 0,
      detail: n === 0 ? `0 of ${restored.edges[e.table] ?? 0} edges point outside ${e.references}` : `${n} ${n === 1 ? 'edge' : 'edges'} of ${e.table} point${n === 1 ? 's' : ''} to no row of ${e.references} (by ${e.from} or ${e.to})${source}`,
    });
  }

  const rows: Array<[string, string, number, number | undefined]> = [
    ...d.nodes.map((n): [string, string, number, number | undefined] => ['nodes', n.table, restored.nodes[n.table] ?? 0, recorded.nodes[n.table]]),
    ...d.edges.map((e): [string, string, number, number | undefined] => ['edges', e.table, restored.edges[e.table] ?? 0, recorded.edges[e.table]]),
  ];
  const counted = Object.keys(recorded.nodes).length > 0;
  const compared = opts.samePoint && recorded.exact && counted;
  const differ = rows.filter(([, , now, then]) => then !== undefined && now !== then);
  const list = rows.map(([, t, now, then]) => (then === undefined || then === now ? `${t} ${now}` : `${t} ${now} (backup: ${then})`)).join(', ');
  let detail: string;
  if (compared) detail = differ.length === 0 ? `${list}: equal to the backup's` : `${list}: ${differ.length} table(s) differ from the counts recorded at backup`;
  else if (!counted) detail = `${list}; the backup recorded no counts (a base backup has no read transaction at its point)`;
  else if (!recorded.exact) detail = `${list}; counted at backup just before the snapshot's point (writers were busy), so not compared`;
  else detail = `${list}; ${opts.replayed}, so not compared with the snapshot's counts`;
  record.checks.push({ name: 'graph_counts', ok: !compared || differ.length === 0, detail });

  for (const q of restored.queries) {
    const then = recorded.queries.find((b) => b.name === q.name);
    record.checks.push({
      name: `query:${q.name}`,
      ok: true,
      detail: `${fmt(q.ms)} median of ${q.runs}, ${rowsText(q.rows)}${then ? `; at backup on the source ${fmt(then.ms)}, ${rowsText(then.rows)}` : ''}`,
    });
  }

  const graph: DrillGraph = {
    compared,
    nodes: Object.fromEntries(d.nodes.map((n) => [n.table, { restored: restored.nodes[n.table] ?? 0, recorded: recorded.nodes[n.table] ?? null }])),
    edges: Object.fromEntries(d.edges.map((e) => [e.table, { restored: restored.edges[e.table] ?? 0, recorded: recorded.edges[e.table] ?? null, dangling: restored.dangling[e.table] ?? 0 }])),
    queries: restored.queries.map((q) => {
      const then = recorded.queries.find((b) => b.name === q.name);
      return { name: q.name, ms: round(q.ms), runs: q.runs, rows: q.rows, backup_ms: then ? round(then.ms) : null, backup_rows: then ? then.rows : null };
    }),
  };
  record.graph = graph;
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
const fmt = (ms: number) => `${ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3)} ms`;
const rowsText = (n: number) => (n === 1 ? '1 row' : `${n} rows`);
