/**
 * Pieces the PostgreSQL streaming torture scenarios share: options, a writer that
 * commits rows with known ids and remembers when each was sent and acknowledged, a
 * restore of `--latest` counted against what the writer knows, and small statistics.
 */
import { promises as fs, rmSync } from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { lifeboatAsPostgres, type ScratchCluster } from '../../test/pg-cluster.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function minutesArg(defaultMinutes: number): number {
  const i = process.argv.indexOf('--minutes');
  const v = i >= 0 ? Number(process.argv[i + 1]) : defaultMinutes;
  if (!(v > 0)) throw new Error('--minutes N: a positive number of minutes');
  return v;
}

export function stats(xs: number[]): string {
  if (xs.length === 0) return 'n=0';
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] as number;
  return `n=${s.length} median ${q(0.5).toFixed(0)} ms, p90 ${q(0.9).toFixed(0)} ms, max ${(s[s.length - 1] as number).toFixed(0)} ms`;
}

export interface Commit {
  /** Just before the INSERT was sent: the commit happened after this. */
  sent: number;
  /** When the commit was acknowledged: it happened before this. */
  acked: number;
}

/**
 * Commits rows 1, 2, 3, ... one per transaction, about `rateHz` a second. An id whose
 * INSERT got no answer (the server went away mid-commit) is uncertain: it may or may
 * not have committed, so it counts neither as lost nor as phantom.
 */
export class Writer {
  readonly acked = new Map<number, Commit>();
  readonly uncertain = new Set<number>();
  next = 1;
  errors = 0;
  private stopped = false;
  private client: pg.Client | undefined;
  private done: Promise<void> | undefined;

  constructor(
    private readonly dsn: string,
    private readonly rateHz = 50,
  ) {}

  /** Starts (or resumes after stop) committing from the next id. */
  start(): void {
    this.stopped = false;
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    await this.client?.end().catch(() => {});
    this.client = undefined;
  }

  private async loop(): Promise<void> {
    /** When an id was first sent: a retry after a lost answer may find it committed back then. */
    let firstSent: number | undefined;
    while (!this.stopped) {
      const id = this.next;
      const sent = firstSent ?? Date.now();
      try {
        this.client ??= await connect(this.dsn);
        await this.client.query('insert into rows (id) values ($1) on conflict do nothing', [id]);
        this.acked.set(id, { sent, acked: Date.now() });
        this.uncertain.delete(id);
        firstSent = undefined;
        this.next++;
      } catch {
        this.errors++;
        // Sent but unanswered: it may have committed. Retried with the same id.
        if (this.client) {
          this.uncertain.add(id);
          firstSent = sent;
        }
        await this.client?.end().catch(() => {});
        this.client = undefined;
        await sleep(200);
        continue;
      }
      await sleep(1000 / this.rateHz);
    }
  }
}

async function connect(dsn: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: dsn, connectionTimeoutMillis: 3000, query_timeout: 5000 });
  c.on('error', () => {});
  try {
    await c.connect();
  } catch (err) {
    await c.end().catch(() => {});
    throw err;
  }
  return c;
}

export interface RestoreCount {
  ids: Set<number>;
  lost: number[];
  phantom: number[];
  restoreMs: number;
}

/**
 * `pg restore --latest` into a new directory, started (archiving off, so the copy
 * never writes to the archive) while the primary is stopped, and its ids compared
 * with the writer's.
 */
export async function restoreAndCount(o: { cluster: ScratchCluster; repo: string; pw: string; base: string; writer: Writer; tag: string }): Promise<RestoreCount> {
  const dir = path.join(o.base, `restored-${o.tag}`);
  const t0 = Date.now();
  const r = await lifeboatAsPostgres(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest', '--repo', o.repo, '--password-file', o.pw]);
  if (r.code !== 0) throw new Error(`pg restore failed: ${r.stderr}`);
  await fs.appendFile(path.join(dir, 'postgresql.conf'), `\narchive_mode = off\nport = ${o.cluster.port}\n`);
  await o.cluster.start(dir);
  await o.cluster.waitPromoted();
  const restoreMs = Date.now() - t0;
  const rows = await o.cluster.query<{ id: string }>('select id from rows');
  await o.cluster.stop(dir);
  rmSync(dir, { recursive: true, force: true });
  const ids = new Set(rows.map((x) => Number(x.id)));
  const lost = [...o.writer.acked.keys()].filter((id) => !ids.has(id));
  const phantom = [...ids].filter((id) => !o.writer.acked.has(id) && !o.writer.uncertain.has(id));
  return { ids, lost, phantom, restoreMs };
}
