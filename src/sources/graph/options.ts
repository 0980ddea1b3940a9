/**
 * A graph kept in SQL tables, declared once for every kind of source that can hold
 * one (`graph:` of a sqlite or postgres source): node
 * tables with their key, edge tables with their two endpoint columns and the node
 * table they point into, and representative queries. Backups record counts and query
 * latencies for it (record.ts); drills check the restored copy against them
 * (docs/graph.md).
 *
 *   graph:
 *     nodes:   [{ table: memories, key: id }]
 *     edges:   [{ table: links, from: source_id, to: target_id, references: memories }]
 *     queries: [{ name: recall, sql: "SELECT … FROM links JOIN memories …" }]
 */
import * as z from 'zod';
import { LifeboatError } from '../../errors.js';
import { lazily, option } from '../../config/schema.js';

const name = (what: string) => z.string({ error: `${what} must be a non-empty string` }).min(1, { error: `${what} must be a non-empty string` });

/** A table of nodes and the column whose value edges point at (its primary key, usually). */
const nodeTable = lazily(() => z.strictObject({ table: name('a node table'), key: name("a node table's key") }, { error: 'each node must be a mapping { table, key }' }));

/** A table of edges: one row per edge, two columns naming the node rows it joins. */
const edgeTable = lazily(() => z.strictObject(
  {
    table: name('an edge table'),
    from: name("an edge's from column"),
    to: name("an edge's to column"),
    /** Optional when exactly one node table is declared. */
    references: name("an edge's references").optional(),
  },
  { error: 'each edge must be a mapping { table, from, to, references }' },
));

/** A query an application runs often: its latency is measured at backup and after each drill's restore. */
const graphQuery = lazily(() => z.strictObject({ name: name('a query name'), sql: name("a query's sql") }, { error: 'each query must be a mapping { name, sql }' }));

export const graphNodes = lazily(() => option(z.array(nodeTable(), { error: 'must be a list of { table, key }' }).min(1, { error: 'must name at least one node table' }), {
  description: 'node tables, each `{ table, key }`: `key` is the column edges point at',
  example: '[{ table: memories, key: id }]',
}));
export const graphEdges = lazily(() => option(z.array(edgeTable(), { error: 'must be a list of { table, from, to, references }' }).optional(), {
  description: 'edge tables, each `{ table, from, to, references }`: the two endpoint columns and the node table both point into (`references` may be left out when there is one node table)',
  shown: 'none',
}));
export const graphQueries = lazily(() => option(z.array(graphQuery(), { error: 'must be a list of { name, sql }' }).optional(), {
  description: 'representative read-only queries, each `{ name, sql }`: latency measured on the source at backup and on each drill\'s restored copy',
  shown: 'none',
}));

/** The `graph` mapping; the reader reads it key by key (config/reader.ts), so the cross-checks are in `checkGraphDeclaration`. */
export const graphOptions = lazily(() => z.object({ nodes: graphNodes(), edges: graphEdges(), queries: graphQueries() }));

/** The key a kind adds to its options (sqlite's options.ts). */
export const graphOption = lazily(() => option(graphOptions().optional(), { description: 'the graph its tables hold: backups record its counts and query latency, drills check a restored copy against them (docs/graph.md)' }));

export interface GraphEdge {
  table: string;
  from: string;
  to: string;
  /** Resolved: always set once checked. */
  references: string;
}

/** A checked declaration, as used and as recorded in snapshots. */
export interface GraphDeclaration {
  nodes: Array<{ table: string; key: string }>;
  edges: GraphEdge[];
  queries: Array<{ name: string; sql: string }>;
}

/** The same shape, for reading a declaration back out of a snapshot. */
export const graphDeclarationSchema = lazily(() => z.object({
  nodes: z.array(z.object({ table: z.string().min(1), key: z.string().min(1) })).min(1),
  edges: z.array(z.object({ table: z.string().min(1), from: z.string().min(1), to: z.string().min(1), references: z.string().min(1) })),
  queries: z.array(z.object({ name: z.string().min(1), sql: z.string().min(1) })),
}));

/**
 * The cross-checks one key at a time cannot make: names used once, `references`
 * naming a declared node table (filled in when there is only one). Throws
 * CONFIG_INVALID naming the table or query at fault.
 */
export function checkGraphDeclaration(o: z.output<ReturnType<typeof graphOptions>>): GraphDeclaration {
  const fail = (message: string, hint: string): never => {
    throw new LifeboatError('CONFIG_INVALID', `graph: ${message}`, { hint });
  };
  const nodeNames = o.nodes.map((n) => n.table);
  const once = (names: string[], what: string) => {
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) fail(`${what} "${twice}" is declared twice`, `declare each ${what} once`);
  };
  once(nodeNames, 'node table');
  once((o.edges ?? []).map((e) => e.table), 'edge table');
  once((o.queries ?? []).map((q) => q.name), 'query');
  const edges = (o.edges ?? []).map((e): GraphEdge => {
    if (e.from === e.to) fail(`edge table "${e.table}" has the same column "${e.from}" as from and to`, 'from and to are the two endpoint columns');
    let references = e.references;
    if (references === undefined) {
      if (nodeNames.length !== 1) fail(`edge table "${e.table}" needs "references"`, `name the node table its ends point into: ${nodeNames.join(', ')}`);
      references = nodeNames[0] as string;
    } else if (!nodeNames.includes(references)) {
      fail(`edge table "${e.table}" references "${references}", which is not a declared node table`, `declared node tables: ${nodeNames.join(', ')}`);
    }
    return { table: e.table, from: e.from, to: e.to, references: references as string };
  });
  return { nodes: o.nodes.map((n) => ({ table: n.table, key: n.key })), edges, queries: (o.queries ?? []).map((q) => ({ name: q.name, sql: q.sql })) };
}
