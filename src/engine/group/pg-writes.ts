/**
 * Whether writes reached a PostgreSQL member while an application's freeze held them.
 *
 * Inside the hold (one round trip, as for the other kinds): the snapshot's xmax, one past
 * the newest transaction that had ended, compared with the one read with the restore
 * point, and the transactions still running. Unchanged means no transaction that wrote
 * ended since. If it moved, the transactions in between are looked at after thaw (so the
 * look does not lengthen the hold), since not every one is the application's:
 *   - aborted ones changed nothing;
 *   - ones still running at the check had not ended, and are not counted;
 *   - a committed one whose id is the xmin of a row of pg_statistic or
 *     pg_statistic_ext_data was an ANALYZE: autovacuum's analyze takes a transaction id
 *     and commits it at any moment, and changes statistics, not data. On a table the
 *     application writes often it lands inside a hold now and then, and on a new
 *     cluster it analyzes template1's catalogs; each of those refused a point the
 *     application had frozen correctly. The id counter is the cluster's, so the
 *     statistics of every database the role can reach are looked in (up to
 *     MAX_DATABASES, within LOOK_MS), the member's own first.
 * Every other committed one is a write, and so is one that could not be looked up (a
 * database not reached, a role that may not read pg_statistic: the message says which).
 * A transaction that ran ANALYZE and also wrote is taken for an ANALYZE.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';

/** Beyond this many transactions ended inside the hold, they are not looked at one by one. */
const MAX_LOOKED_AT = 256;
/** At most this many other databases are connected to in order to find an ANALYZE, for at most LOOK_MS in all. */
const MAX_DATABASES = 16;
const LOOK_MS = 10_000;
const XID_WRAP = 1n << 32n;

/** What moved inside the hold: the ids in [from, to) that were not running at the check. */
export interface XidWindow {
  from: string;
  to: string;
  ended: string[];
}

type Query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>;

/** Inside the hold: the window of transactions that ended since the point's xmax, or undefined when none did. */
export async function xidsSince(client: pg.Client, xmaxAtPoint: string): Promise<XidWindow | undefined> {
  const r = await client.query<{ xmax: string; xip: string[] }>('SELECT pg_snapshot_xmax(s)::text AS xmax, ARRAY(SELECT pg_snapshot_xip(s)::text) AS xip FROM pg_current_snapshot() AS s');
  const { xmax, xip } = r.rows[0] as { xmax: string; xip: string[] };
  if (xmax === xmaxAtPoint) return undefined;
  const from = BigInt(xmaxAtPoint);
  const to = BigInt(xmax);
  const running = new Set(xip);
  const ended: string[] = [];
  if (to - from <= BigInt(MAX_LOOKED_AT)) for (let x = from; x < to; x++) if (!running.has(String(x))) ended.push(String(x));
  return { from: xmaxAtPoint, to: xmax, ended };
}

const READABLE = "SELECT has_table_privilege('pg_catalog.pg_statistic', 'SELECT') AND has_table_privilege('pg_catalog.pg_statistic_ext_data', 'SELECT') AS ok";

/** $1: 32-bit xids; those among them that are the xmin of a statistics row here. pg_statistic is read once. */
const ANALYZED = `
SELECT xmin::text AS x FROM pg_catalog.pg_statistic WHERE xmin = ANY($1::text[]::xid[])
UNION SELECT xmin::text FROM pg_catalog.pg_statistic_ext_data WHERE xmin = ANY($1::text[]::xid[])`;

const short = (x: string) => String(BigInt(x) % XID_WRAP);

/**
 * After thaw: a description of the writes among `w`, or undefined when every transaction
 * that ended was aborted or an ANALYZE. `query` runs on the member's connection;
 * `connectTo` opens one to another database of the cluster.
 */
export async function writesIn(w: XidWindow, query: Query, connectTo: (database: string) => Promise<pg.Client>): Promise<string | undefined> {
  const moved = `next transaction id ${w.from} → ${w.to}`;
  const span = BigInt(w.to) - BigInt(w.from);
  // Backwards only on another server than the point's (the connection is the same one, so not expected): no look can tell.
  if (span < 0n) return `the next transaction id went back (${w.from} → ${w.to}): not the server the point was made on`;
  if (span > BigInt(MAX_LOOKED_AT)) return `${span} transactions ended after its restore point (${moved})`;
  if (w.ended.length === 0) return undefined;
  const status = await query<{ x: string; status: string | null }>('SELECT x, pg_xact_status(x::xid8) AS status FROM unnest($1::text[]) AS x', [w.ended]);
  // Keyed by the 32-bit id pg_statistic's xmin holds.
  const left = new Map(status.rows.filter((r) => r.status === 'committed').map((r) => [short(r.x), r.x]));
  let analyzed = 0;
  /** Databases not looked in, by why. */
  const unread = new Map<string, string[]>();
  const notIn = (database: string, why: string) => unread.set(why, [...(unread.get(why) ?? []), database]);
  const lookIn = async (q: Query, database: string) => {
    if (!(await q<{ ok: boolean }>(READABLE, [])).rows[0]?.ok) {
      notIn(database, 'the role may not read pg_statistic: GRANT SELECT ON pg_statistic, pg_statistic_ext_data to it');
      return;
    }
    for (const r of (await q<{ x: string }>(ANALYZED, [[...left.keys()]])).rows) if (left.delete(r.x)) analyzed++;
  };
  if (left.size > 0) {
    const here = await query<{ db: string; others: string[] }>(
      'SELECT current_database() AS db, ARRAY(SELECT datname::text FROM pg_database WHERE datallowconn AND datname <> current_database() ORDER BY datname LIMIT $1) AS others',
      [MAX_DATABASES],
    );
    const { db, others } = here.rows[0] as { db: string; others: string[] };
    await lookIn(query, db);
    const until = performance.now() + LOOK_MS;
    for (const other of others) {
      if (left.size === 0) break;
      if (performance.now() > until) {
        notIn(other, `out of time: ${LOOK_MS / 1000} s for the look`);
        continue;
      }
      let c: pg.Client | undefined;
      try {
        c = await connectTo(other);
        const client = c;
        await lookIn((text, values) => client.query(text, values), other);
      } catch (err) {
        // The server's own words (connectTo's error names the member's dsn, not this database).
        const why = err instanceof Error && err.cause instanceof Error ? err.cause : err;
        notIn(other, why instanceof Error ? (why.message.split('\n')[0] as string) : String(why));
      } finally {
        await c?.end().catch(() => {});
      }
    }
  }
  if (left.size === 0) return undefined;
  const ids = [...left.values()];
  return (
    `transactions ended after its restore point (${moved}): ${ids.length} committed that ${ids.length === 1 ? 'was' : 'were'} not an ANALYZE (id${ids.length === 1 ? '' : 's'} ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''})` +
    (analyzed > 0 ? `, ${analyzed} ANALYZE not counted` : '') +
    (unread.size > 0 ? `; not looked in: ${[...unread].map(([why, dbs]) => `${dbs.join(', ')} (${why})`).join(', ')}` : '')
  );
}
