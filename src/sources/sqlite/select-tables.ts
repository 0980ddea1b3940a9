/**
 * `sqlite restore --table`: copies chosen tables (schema, rows, their indexes and
 * triggers) out of a restored database into a new one.
 *
 * The restored database is data from the backup, not code to trust: anyone who could
 * write the backed-up file could put any text into its sqlite_master (writable_schema).
 * Executing that text as it is ran whatever it held (an ATTACH there created a file
 * of the attacker's choosing). So both connections are defensive (better-sqlite3's
 * SQLITE_DBCONFIG_DEFENSIVE, kept by unsafeMode(false); trusted_schema=OFF, so schema
 * objects cannot call functions with side effects), and each object is created from
 * ONE statement that must be exactly a CREATE of the type and name sqlite_master gives
 * for it; anything else is refused (UNSAFE_SCHEMA) before any statement runs.
 */
import Database from 'better-sqlite3';
import { LifeboatError } from '../../errors.js';

type Db = InstanceType<typeof Database>;

interface SchemaObject {
  type: string;
  name: string;
  tbl_name: string;
  sql: string;
}

/** Opens a database with no way for its schema to run code with effects. */
export function openDefensive(file: string, opts: { readonly?: boolean; fileMustExist?: boolean } = {}): Db {
  const db = new Database(file, opts);
  db.unsafeMode(false);
  db.pragma('trusted_schema = OFF');
  return db;
}

/** An SQL identifier as the head of a CREATE statement may spell it: "x", [x], `x`, 'x' or bare. */
const IDENT = String.raw`("(?:[^"]|"")*"|\[[^\]]*\]|` + '`(?:[^`]|``)*`' + String.raw`|'(?:[^']|'')*'|[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*)`;
const HEAD = new RegExp(String.raw`^CREATE\s+(?:UNIQUE\s+)?(TABLE|INDEX|TRIGGER|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?${IDENT}(\s*\.)?`, 'i');

function unquote(ident: string): string {
  const q = ident[0];
  if (q === '"' || q === '`' || q === "'") return ident.slice(1, -1).replaceAll(`${q}${q}`, q);
  if (q === '[') return ident.slice(1, -1);
  return ident;
}

function refuse(o: Pick<SchemaObject, 'type' | 'name'>, why: string): never {
  throw new LifeboatError('UNSAFE_SCHEMA', `the backed-up schema of ${o.type} "${o.name}" ${why}; nothing from it was executed`, {
    hint: 'the database file was altered outside SQLite (writable_schema); restore the whole database and inspect it, or choose other tables',
  });
}

/** The head of SQL must create this object's type and name (no schema prefix, no TEMP). */
export function checkHead(o: Pick<SchemaObject, 'type' | 'name' | 'sql'>): void {
  const m = HEAD.exec(o.sql.trimStart());
  if (!m) refuse(o, 'does not start with CREATE TABLE, INDEX, TRIGGER or VIEW');
  if (m[1]!.toLowerCase() !== o.type) refuse(o, `creates a ${m[1]!.toLowerCase()}`);
  if (m[3] !== undefined) refuse(o, 'names another schema');
  if (unquote(m[2]!) !== o.name) refuse(o, `creates "${unquote(m[2]!)}" instead`);
}

/**
 * checkHead, then prepares SQL on DB: better-sqlite3 refuses a string holding more
 * than one statement, so what runs is exactly that one CREATE. Throws UNSAFE_SCHEMA.
 */
export function validatedCreate(db: Db, o: Pick<SchemaObject, 'type' | 'name' | 'sql'>): Database.Statement {
  checkHead(o);
  let stmt: Database.Statement;
  try {
    stmt = db.prepare(o.sql);
  } catch (err) {
    return refuse(o, `is not one valid statement (${(err as Error).message})`);
  }
  if (stmt.reader) refuse(o, 'returns rows');
  return stmt;
}

/**
 * Copies TABLES (with their indexes and triggers) from FROM into a new database TO.
 * A table whose foreign keys point at a table not chosen is refused: its rows could
 * not be checked.
 */
export function copyTables(from: string, to: string, tables: string[]): void {
  const src = openDefensive(from, { fileMustExist: true, readonly: true });
  const chosen = new Set(tables);
  let objects: SchemaObject[];
  try {
    const all = new Map((src.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string; sql: string }>).map((r) => [r.name, r.sql]));
    for (const t of tables) {
      if (!all.has(t)) {
        throw new LifeboatError('NOT_FOUND', `no table "${t}" in the restored database`, {
          hint: `tables: ${[...all.keys()].filter((n) => !n.startsWith('sqlite_')).join(', ')}`,
        });
      }
      const parents = (src.prepare('SELECT DISTINCT "table" AS parent FROM pragma_foreign_key_list(?)').all(t) as Array<{ parent: string }>).map((r) => r.parent);
      const missing = parents.filter((p) => !chosen.has(p));
      if (missing.length > 0) {
        throw new LifeboatError('USAGE', `table "${t}" references ${missing.join(', ')} by foreign key`, {
          hint: `add ${missing.map((m) => `--table ${m}`).join(' ')}`,
        });
      }
    }
    objects = src
      .prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name IN (SELECT value FROM json_each(?)) ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END",
      )
      .all(JSON.stringify(tables)) as SchemaObject[];
  } finally {
    src.close();
  }
  const db = openDefensive(to);
  try {
    // Rows go in table by table, a child possibly before its parent; the whole is checked after.
    db.pragma('foreign_keys = OFF');
    // Every head is checked before anything runs; each statement is checked in full
    // (one statement, prepared) just before it runs, once the tables it needs exist.
    // A refusal rolls back the transaction: only validated CREATEs ever ran.
    for (const o of objects) checkHead(o);
    db.prepare('ATTACH DATABASE ? AS src').run(from);
    db.transaction(() => {
      for (const o of objects.filter((x) => x.type === 'table')) {
        validatedCreate(db, o).run();
        db.exec(`INSERT INTO main.${quoteIdent(o.name)} SELECT * FROM src.${quoteIdent(o.name)}`);
      }
      for (const o of objects.filter((x) => x.type !== 'table')) validatedCreate(db, o).run();
      // AUTOINCREMENT counters, so new rows do not reuse the ids of deleted ones.
      const seq = db.prepare("SELECT 1 FROM src.sqlite_master WHERE name = 'sqlite_sequence'").get();
      const ours = db.prepare("SELECT 1 FROM main.sqlite_master WHERE name = 'sqlite_sequence'").get();
      if (seq && ours) {
        db.prepare('INSERT INTO main.sqlite_sequence SELECT * FROM src.sqlite_sequence WHERE name IN (SELECT value FROM json_each(?))').run(JSON.stringify(tables));
      }
    })();
    db.exec('DETACH DATABASE src');
  } finally {
    db.close();
  }
}

function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}
