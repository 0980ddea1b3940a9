/**
 * The quickstart's sample application: a small "memory graph" in SQLite, the shape
 * of an AI agent's long-term memory (concepts and memories as nodes, typed weighted
 * edges between them, foreign keys with cascading deletes). It writes the way such an
 * application does, one small transaction per new memory, and keeps a ledger of what
 * it committed and when, so the quickstart can tell exactly what a restore got back.
 */
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';

const SCHEMA = `
CREATE TABLE nodes (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('concept', 'memory')),
  label TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE edges (
  id INTEGER PRIMARY KEY,
  src INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  dst INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  relation TEXT NOT NULL,
  weight REAL NOT NULL
);
CREATE INDEX edges_src ON edges(src);
CREATE INDEX edges_dst ON edges(dst);
`;

/**
 * The graph those tables hold, as lifeboat.yaml declares it (docs/graph.md): backups
 * record its counts and the queries' latency, `lifeboat drill` checks a restored copy
 * against them. The queries are the application's own reads: the memories about a
 * concept, strongest first, and the concepts that share memories with one.
 */
export const GRAPH_YAML = `    graph:
      nodes: [{ table: nodes, key: id }]
      edges: [{ table: edges, from: src, to: dst, references: nodes }]
      queries:
        - name: recall
          sql: >-
            SELECT m.label, e.relation, e.weight FROM nodes c
            JOIN edges e ON e.dst = c.id JOIN nodes m ON m.id = e.src
            WHERE c.kind = 'concept' AND c.label = 'user' ORDER BY e.weight DESC LIMIT 20
        - name: related-concepts
          sql: >-
            SELECT c2.label, count(*) AS shared FROM nodes c
            JOIN edges e1 ON e1.dst = c.id JOIN edges e2 ON e2.src = e1.src AND e2.dst <> c.id
            JOIN nodes c2 ON c2.id = e2.dst
            WHERE c.kind = 'concept' AND c.label = 'deadline' GROUP BY c2.label ORDER BY shared DESC
`;

const CONCEPTS = ['user', 'project', 'deadline', 'preference', 'meeting', 'document', 'bug', 'release'];
const RELATIONS = ['mentions', 'about', 'follows', 'contradicts', 'supports'];

export interface Committed {
  /** The node id the transaction created. */
  id: number;
  /** When the commit returned, Unix ms. */
  time: number;
}

export class SampleGraph {
  readonly db: Database.Database;
  readonly ledger: Committed[] = [];
  private seq = 0;

  /** Creates the database afresh (a previous quickstart's copy is replaced). */
  constructor(readonly file: string) {
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(file + suffix, { force: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const add = this.db.prepare('INSERT INTO nodes (kind, label, created_at) VALUES (?, ?, ?)');
    this.db.transaction(() => {
      for (const c of CONCEPTS) add.run('concept', c, new Date().toISOString());
    })();
  }

  /** One new memory linked to two concepts, in one transaction. */
  remember(): void {
    const n = ++this.seq;
    const now = new Date().toISOString();
    const id = this.db.transaction(() => {
      const mem = Number(this.db.prepare('INSERT INTO nodes (kind, label, created_at) VALUES (?, ?, ?)').run('memory', `memory #${n}`, now).lastInsertRowid);
      const link = this.db.prepare('INSERT INTO edges (src, dst, relation, weight) VALUES (?, ?, ?, ?)');
      for (const k of [n % CONCEPTS.length, (n * 7 + 3) % CONCEPTS.length]) {
        link.run(mem, k + 1, RELATIONS[n % RELATIONS.length] as string, ((n * 37) % 100) / 100);
      }
      return mem;
    })();
    this.ledger.push({ id, time: Date.now() });
  }

  /** Writes about `perSecond` memories a second for `ms` milliseconds. */
  async write(ms: number, perSecond: number): Promise<void> {
    const start = Date.now();
    let done = 0;
    while (Date.now() - start < ms) {
      this.remember();
      done++;
      const due = start + (done * 1000) / perSecond;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
    }
  }

  /** The accident: every memory about one concept deleted (edges go with them by cascade). */
  forgetConcept(concept: string): { ids: number[]; edges: number } {
    const edgesBefore = this.count('edges');
    const id = (this.db.prepare("SELECT id FROM nodes WHERE kind = 'concept' AND label = ?").get(concept) as { id: number }).id;
    const which = "kind = 'memory' AND id IN (SELECT src FROM edges WHERE dst = ?)";
    const ids = this.db.transaction(() => {
      const found = (this.db.prepare(`SELECT id FROM nodes WHERE ${which}`).all(id) as Array<{ id: number }>).map((r) => r.id);
      this.db.prepare(`DELETE FROM nodes WHERE ${which}`).run(id);
      return found;
    })();
    return { ids, edges: edgesBefore - this.count('edges') };
  }

  count(table: 'nodes' | 'edges'): number {
    return (this.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  }

  close(): void {
    this.db.close();
  }
}

export const ACCIDENT_CONCEPT = 'project';
