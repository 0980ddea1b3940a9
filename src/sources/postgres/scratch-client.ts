/**
 * Talking to a PostgreSQL server Lifeboat started from a restored data directory
 * (pg verify's scratch copy, pg restore --start): over its private socket, as a
 * superuser whose name is not recorded anywhere outside the catalog, and waiting for
 * recovery to end in promotion.
 */
import { errno } from '../../errors.js';
import { connect, type PgClient } from './connect.js';

export interface ScratchCheck {
  name: string;
  ok: boolean;
  detail: string;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Connects to a server listening on a socket in `socketDir`, remembering the superuser name that worked. */
export class ScratchClient {
  private user: string | undefined;

  constructor(
    private readonly socketDir: string,
    private readonly port: number,
    /** The data directory owner's name: initdb names the bootstrap superuser after it by default. */
    private readonly ownerName: string | undefined,
    /** Connection options (`-c name=value ...`), or none. */
    private readonly options?: string,
  ) {}

  async connect(db: string): Promise<PgClient> {
    const candidates = this.user ? [this.user] : [...new Set([process.env.PGUSER, this.ownerName, 'postgres'].filter((u): u is string => !!u))];
    const e = encodeURIComponent;
    const query = this.options ? `?options=${e(this.options)}` : '';
    let last: unknown;
    for (const user of candidates) {
      try {
        const client = await connect(`postgresql://${e(user)}@${e(this.socketDir)}:${this.port}/${e(db)}${query}`);
        this.user = user;
        return client;
      } catch (err) {
        last = err;
        // 28000: no such role; try the next name. Anything else is not about the name.
        if (errno((err as Error).cause) !== '28000') throw err;
      }
    }
    throw last;
  }

  /**
   * Returns once the server accepts connections and is out of recovery. `dead` is asked
   * after each refused connection (normal while it starts and replays) and names why
   * the server will never come up, or returns undefined.
   */
  async waitPromoted(deadline: number, dead: () => Promise<string | undefined>): Promise<void> {
    for (;;) {
      let client: PgClient | undefined;
      try {
        client = await this.connect('template1');
        const r = await client.query<{ rec: boolean }>('select pg_is_in_recovery() as rec');
        if (r.rows[0]?.rec === false) return;
      } catch (err) {
        if (errno((err as Error).cause) === '28000') throw err;
        const why = await dead();
        if (why) throw new Error(why);
      } finally {
        await client?.end().catch(() => {});
      }
      if (Date.now() > deadline) throw new Error('recovery did not finish in time');
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The databases that take connections, by name. */
  async databases(): Promise<string[]> {
    const client = await this.connect('template1');
    try {
      return (await client.query<{ datname: string }>('select datname from pg_database where datallowconn order by datname')).rows.map((r) => r.datname);
    } finally {
      await client.end().catch(() => {});
    }
  }

  /**
   * Runs an operator's query: passes when the first column of the first row is there
   * and is not false, null or zero (several statements give one result each; the last answers).
   */
  async check(name: string, sql: string): Promise<ScratchCheck> {
    let client: PgClient | undefined;
    try {
      client = await this.connect('postgres');
      const res = (await client.query({ text: sql, rowMode: 'array' })) as unknown;
      const last = (Array.isArray(res) ? res.at(-1) : res) as { rows?: unknown[][] } | undefined;
      const row = last?.rows?.[0];
      if (!row || row.length === 0) return { name, ok: false, detail: 'returned no rows' };
      const v = row[0];
      const falsy = v === null || v === false || v === 0 || v === 0n || (typeof v === 'string' && v.trim() !== '' && Number(v) === 0);
      return { name, ok: !falsy, detail: `first value: ${v instanceof Date ? v.toISOString() : String(v)}` };
    } catch (err) {
      return { name, ok: false, detail: message(err) };
    } finally {
      await client?.end().catch(() => {});
    }
  }
}
